"""End to end on the real stack: replay -> score -> monitor -> Prometheus -> Alertmanager -> notify.

A baseline stream raises no spike alert; an injected negative burst about one topic reaches
the notifier as ``NegativeSentimentSpike`` for that topic within a bound; a monitor killed and
restarted after the stream reports the same figures as before.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sentimon.config import Settings, TopicSettings
from sentimon.demo import DEMO_DIR, Pipeline, read_notifications, scrape, wait_for_alert
from sentimon.ingest import replay
from sentimon.kafka import make_producer
from tests.conftest import Observability

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BURST_TOPIC = "Stock Movement"
ALERT_BOUND_S = 90  # burst end -> notification: detector ~1s + scrape 1s + for 5s + group_wait 1s, with slack


def _monitor_figures(pipeline: Pipeline) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = scrape(pipeline.health_url("monitor") + "/metrics")
    return {k: v for k, v in samples.items()
            if k[0].startswith(("sentimon_topic_", "sentimon_ticker_", "sentimon_market_"))}


def _diagnosis(pipeline: Pipeline, settings: Settings) -> str:
    """Where the burst stopped: each stage's own figures and the end of each daemon's log."""
    out = []
    for name, prefixes in (("scorer", ("sentimon_scorer_records", "sentimon_scorer_consumer_lag")),
                           ("monitor", ("sentimon_topic_spike_zscore", "sentimon_topic_volume"))):
        try:
            samples = scrape(pipeline.health_url(name) + "/metrics")
            out.append(f"{name}: " + ", ".join(
                f"{n}{dict(labels)}={v:g}" for (n, labels), v in sorted(samples.items())
                if n.startswith(prefixes) and (name == "scorer" or dict(labels).get("topic") == BURST_TOPIC)))
        except OSError as exc:
            out.append(f"{name}: metrics unavailable ({exc})")
    for name in ("scorer", "monitor", "notify"):
        log = settings.home / "logs" / f"{name}.log"
        if log.exists():
            out.append(f"--- {log} (end)\n" + "\n".join(log.read_text().splitlines()[-15:]))
    return "\n".join(out)


def _send(settings: Settings, topic: str, items: list[replay.ReplayItem], offsets: list[float]) -> int:
    producer = make_producer(settings.kafka, client_suffix="e2e")
    try:
        return replay.send(producer, topic, items, offsets, retime=True, progress=False)
    finally:
        producer.close()


@pytest.fixture
def e2e_settings(observability: Observability, topics: TopicSettings, tmp_path: Path) -> Settings:
    s = observability.settings
    return s.model_copy(update={
        "topics": topics,
        "monitor": s.monitor.model_copy(update={
            "short_window_s": 20, "baseline_window_s": 600, "min_volume": 25,
            "min_lift": 0.15, "spike_z": 3.0, "group_id": f"mon-{topics.scored}",
            # The detector scaled to a one-minute history (1/3-second buckets).
            "detection_horizon_s": 10, "baseline_slot_s": 5, "min_history_s": 15,
            "history_s": 600, "baseline_half_life_s": 3600,
            # Event time only: the restart check compares figures at two wall-clock moments.
            "live_idle_s": 1e9,
        }),
        "scorer": s.scorer.model_copy(update={"group_id": f"sc-{topics.scored}"}),
        "notify": s.notify.model_copy(update={"jsonl_path": tmp_path / "notifications.jsonl"}),
    })


def test_baseline_quiet_burst_alerts_restart_keeps_figures(e2e_settings: Settings) -> None:
    settings = e2e_settings
    pipeline = Pipeline(settings)
    notes = settings.notifications_path()
    try:
        pipeline.start_all()
        t0 = datetime.now(UTC)

        # 1) baseline: 60 s of real comments and news side by side, 900 messages, so that
        #    every busy topic has a baseline history before the burst.
        comments = replay.load_items(DEMO_DIR / "comments.csv", kind="comment", limit=600)
        news = replay.load_items(DEMO_DIR / "news.csv", kind="news", limit=300)
        with ThreadPoolExecutor(2) as pool:
            sent = sum(pool.map(
                lambda args: _send(settings, *args),
                [(settings.topics.comments, comments, replay.Schedule(rate=10).offsets(comments)),
                 (settings.topics.news, news, replay.Schedule(rate=5).offsets(news))],
            ))
        assert sent == len(comments) + len(news)
        # Watched while the windows, the rules' `for:` and Alertmanager act on the baseline.
        quiet_until = time.monotonic() + 15
        while time.monotonic() < quiet_until:
            early = [r for r in read_notifications(notes)
                     if r.get("alertname") == "NegativeSentimentSpike"]
            assert early == [], f"spike alert on the baseline stream: {early}"
            time.sleep(0.5)

        # 2) burst: real Bearish texts that the model assigns to one topic.
        from sentimon.model.inference import SentimentModel

        burst = replay.burst_items(DEMO_DIR / "negative.csv", topic=BURST_TOPIC, count=120,
                                   model=SentimentModel.from_settings(settings), kind="news")
        burst_start = datetime.now(UTC)
        assert _send(settings, settings.topics.news, burst, replay.Schedule(rate=20).offsets(burst)) == 120
        burst_end = time.monotonic()
        note = wait_for_alert(notes, alertname="NegativeSentimentSpike",
                              labels={"topic": BURST_TOPIC}, timeout_s=ALERT_BOUND_S, after=burst_start)
        assert note is not None, (
            f"no NegativeSentimentSpike for {BURST_TOPIC!r} within {ALERT_BOUND_S}s of the burst; "
            f"notifications: {read_notifications(notes)}\n{_diagnosis(pipeline, settings)}"
        )
        print(f"alert {time.monotonic() - burst_end:.1f}s after the burst ended: {note['text']}")
        assert note["labels"]["topic"] == BURST_TOPIC
        assert t0 < burst_start
        # Self-contained: the notification quotes the burst's own texts (as the scorer wrote
        # them, cut to 280 characters), fetched by notify from the monitor's /exemplars.
        quoted = note["exemplars"]
        assert 3 <= len(quoted) <= 5, note
        stripped = [str(item.value["text"]).strip() for item in burst]
        burst_texts = {t if len(t) <= 280 else t[:279].rstrip() + "\u2026" for t in stripped}
        for q in quoted:
            assert q["source"] == "sentimon-inject" and q["text"] in burst_texts, q
        assert [q["p_negative"] for q in quoted] == sorted(
            (q["p_negative"] for q in quoted), reverse=True)

        # 3) the monitor is killed and restarted: it rebuilds the same figures from the topic.
        scored = scrape(pipeline.health_url("scorer") + "/metrics")
        consumed = sum(v for (n, _), v in scored.items() if n == "sentimon_scorer_records_consumed_total")
        assert consumed == len(comments) + len(news) + len(burst)
        before = _monitor_figures(pipeline)
        assert before, "monitor exported no figures"
        pipeline.kill("monitor")
        pipeline.start("monitor")
        after = _monitor_figures(pipeline)
        assert after == before
    finally:
        pipeline.stop_all()
