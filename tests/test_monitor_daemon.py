"""The monitor daemon against a real Kafka broker, scraped over HTTP like Prometheus does."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sentimon.config import MonitorSettings, Settings, TopicSettings
from sentimon.kafka import GracefulStop, make_producer
from sentimon.monitor.daemon import Monitor

REPO = Path(__file__).resolve().parents[1]
SHORT_S, BASELINE_S = 60, 600  # 1 s buckets, so whole seconds are bucket edges
TOPICS = ("Earnings", "Macro", "Markets", "M&A | Investments", "Fed | Central Banks")
Sample = tuple[str, frozenset[tuple[str, str]]]

pytestmark = pytest.mark.integration


# -- helpers shared with test_monitor_report -------------------------------------------


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def scored(rec_id: str, ts: float, *, topic: str = "Earnings", sentiment: str = "neutral",
           score: float = 0.0, kind: str = "news", tickers: Iterable[str] = (),
           text: str | None = None) -> dict[str, Any]:
    """A scored record as the scorer writes it (docs/contracts.md); ``text`` if given."""
    neg = max(0.0, -score)
    pos = max(0.0, score)
    extra = {} if text is None else {"text": text}
    return extra | {
        "id": rec_id, "ts": rfc3339(ts), "kind": kind, "source": "test",
        "tickers": sorted(tickers), "topic": topic, "topic_prob": 0.9, "sentiment": sentiment,
        "sentiment_probs": {"negative": neg, "neutral": 1 - neg - pos, "positive": pos},
        "score": score, "model": "test@1", "scored_at": rfc3339(time.time()),
    }


def produce(settings: Settings, records: Iterable[dict[str, Any] | bytes], *,
            pause_s: float = 0.0, every: int = 1) -> int:
    """Send records to the scored topic keyed by their topic, like the scorer; wait for acks."""
    producer = make_producer(settings.kafka, client_suffix="test")
    n = 0
    try:
        for rec in records:
            if isinstance(rec, bytes):
                producer.send(settings.topics.scored, key=b"Earnings", value=rec)
            else:
                producer.send(settings.topics.scored, key=rec["topic"].encode(),
                              value=json.dumps(rec).encode())
            n += 1
            if pause_s and n % every == 0:
                producer.flush()
                time.sleep(pause_s)
        producer.flush(timeout=30)
    finally:
        producer.close()
    return n


def monitor_settings(kafka_settings: Settings, topics: TopicSettings, *, port: int = 0,
                     group: str | None = None, **monitor: Any) -> Settings:
    opts: dict[str, Any] = {
        "group_id": group or f"test-monitor-{uuid.uuid4().hex[:8]}",
        "short_window_s": SHORT_S, "baseline_window_s": BASELINE_S,
        "watchlist": ["AAPL", "TSLA"], "min_volume": 5, "metrics_port": port,
        # The detector's history no longer than the baseline window: "too old" is older than
        # both. Event time only, unless a test asks for the live watermark.
        "history_s": BASELINE_S, "baseline_slot_s": 60, "detection_horizon_s": 60,
        "min_history_s": 120, "live_idle_s": 1e9,
    }
    opts.update(monitor)
    return kafka_settings.model_copy(
        update={"topics": topics, "monitor": MonitorSettings(**opts)})


def scrape(port: int) -> dict[Sample, float]:
    """Every sentimon_* sample of ``/metrics`` as {(name, labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[Sample, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith("sentimon_"):
                out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def exemplars(port: int, query: str) -> dict[str, Any]:
    """``GET /exemplars?<query>`` of the monitor on ``port``, without its readiness flag."""
    url = f"http://127.0.0.1:{port}/exemplars?{query}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    body.pop("ready")
    return body


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def records_total(metrics: dict[Sample, float]) -> float:
    return sum(v for (name, _), v in metrics.items() if name == "sentimon_monitor_records_total")


def wait_for(check: Callable[[], bool], what: str, *, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (urllib.error.URLError, OSError):
            pass  # not listening yet
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def wait_records(port: int, n: int, *, timeout_s: float = 60.0) -> dict[Sample, float]:
    wait_for(lambda: ready(port) and records_total(scrape(port)) == n,
             f"{n} records on :{port}", timeout_s=timeout_s)
    return scrape(port)


class ThreadMonitor:
    """A monitor running in a thread of the test process (stopped like SIGTERM would)."""

    def __init__(self, settings: Settings) -> None:
        self.monitor = Monitor(settings, stop=GracefulStop())
        self.result: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.result.append(self.monitor.run()), daemon=True)

    def __enter__(self) -> ThreadMonitor:
        self.thread.start()
        wait_for(lambda: self.monitor.http is not None, "the metrics server", timeout_s=30)
        return self

    @property
    def port(self) -> int:
        assert self.monitor.http is not None
        return self.monitor.http.port

    def __exit__(self, *exc: object) -> None:
        self.monitor.stop.set()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "monitor did not stop"
        assert self.result == [0]


def lags(metrics: dict[Sample, float]) -> dict[str, float]:
    return {dict(labels)["partition"]: v for (name, labels), v in metrics.items()
            if name == "sentimon_monitor_consumer_lag"}


def figures(metrics: dict[Sample, float]) -> dict[Sample, float]:
    """The aggregate series and counters: what must survive a restart unchanged."""
    keep = ("sentimon_topic_", "sentimon_ticker_", "sentimon_market_",
            "sentimon_monitor_records_total", "sentimon_monitor_duplicates_total",
            "sentimon_monitor_last_event_timestamp_seconds")
    return {k: v for k, v in metrics.items() if k[0].startswith(keep)}


def expected_series(records: list[dict[str, Any]], watchlist: set[str]) -> dict[Sample, float]:
    """Reference figures by brute force over the unique records (1 s buckets)."""
    unique = {r["id"]: r for r in reversed(records)}.values()  # first delivery wins
    parsed = [(math.floor(datetime.fromisoformat(r["ts"]).timestamp()), r) for r in unique]
    wm = max(b for b, _ in parsed)
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for b, r in parsed:
        if b <= wm - BASELINE_S:
            continue
        window = "short" if b > wm - SHORT_S else "baseline"
        keys = [("market", "", window), ("topic", r["topic"], window)]
        keys += [("ticker", t, window) for t in r["tickers"] if t in watchlist]
        for key in keys:
            groups.setdefault(key, []).append(r)
    out: dict[Sample, float] = {}
    series = {(fam, name) for fam, name, _ in groups}
    for fam, name in series:
        for window in ("short", "baseline"):
            rs = groups.get((fam, name, window), [])
            labels = {("window", window)} | ({(fam, name)} if fam != "market" else set())
            lab = frozenset(labels)
            out[(f"sentimon_{fam}_volume", lab)] = len(rs)
            if rs:
                n = len(rs)
                out[(f"sentimon_{fam}_negative_share", lab)] = sum(
                    r["sentiment"] == "negative" for r in rs) / n
                out[(f"sentimon_{fam}_positive_share", lab)] = sum(
                    r["sentiment"] == "positive" for r in rs) / n
                out[(f"sentimon_{fam}_mean_score", lab)] = sum(r["score"] for r in rs) / n
    return out


def assert_matches(metrics: dict[Sample, float], expected: dict[Sample, float]) -> None:
    got = {k: v for k, v in metrics.items() if k[0].endswith(
        ("_volume", "_negative_share", "_positive_share", "_mean_score"))}
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


def random_stream(n: int, *, start: int, end: int, seed: int, prefix: str,
                  dup_every: int = 7) -> list[dict[str, Any]]:
    """``n`` records with event times in [start, end), ~1/dup_every of them delivered twice."""
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        sentiment = rnd.choices(["negative", "neutral", "positive"], [3, 5, 2])[0]
        score = {"negative": -0.5, "neutral": 0.0, "positive": 0.75}[sentiment]
        rec = scored(f"{prefix}{i}", rnd.randrange(start, end), topic=rnd.choice(TOPICS),
                     sentiment=sentiment, score=score, kind=rnd.choice(["news", "comment"]),
                     tickers=rnd.sample(["AAPL", "TSLA", "GME", "MSFT"], rnd.randrange(0, 3)),
                     text=f"text of {prefix}{i}")
        out.append(rec)
        if i % dup_every == 0:
            out.append(dict(rec))
    return out


# -- tests -----------------------------------------------------------------------------


def test_exact_figures_duplicates_late_and_bad_records(
        kafka_settings: Settings, topics: TopicSettings) -> None:
    settings = monitor_settings(kafka_settings, topics)
    w = math.floor(time.time()) - 20  # the watermark: newest event time, whole second
    recs = [
        # Earnings, short window: 3 negative, 1 positive (AAPL on two of them).
        scored("e1", w, sentiment="negative", score=-0.8, tickers=["AAPL"]),
        scored("e2", w - 5, sentiment="negative", score=-0.8, tickers=["AAPL", "GME"]),
        scored("e3", w - 59, sentiment="negative", score=-0.8),
        scored("e4", w - 30, sentiment="positive", score=0.6, kind="comment"),
        # Earnings, baseline: 6 neutral, 2 negative, one just past the short window edge.
        *[scored(f"b{i}", w - 100 - 10 * i) for i in range(6)],
        scored("b6", w - 60, sentiment="negative", score=-0.4, tickers=["TSLA"]),
        scored("b7", w - 599, sentiment="negative", score=-0.4),
        # Macro: 2 positive now, 1 negative in the baseline.
        scored("m1", w - 1, topic="Macro", sentiment="positive", score=0.5, kind="comment"),
        scored("m2", w - 2, topic="Macro", sentiment="positive", score=0.5),
        scored("m3", w - 400, topic="Macro", sentiment="negative", score=-0.5),
    ]
    bad = [b"{not json", json.dumps(scored("f1", time.time() + 3600)).encode()]
    produce(settings, [*recs, recs[0], *bad])  # recs[0] twice: at-least-once redelivery

    with ThreadMonitor(settings) as mon:
        m = wait_records(mon.port, len(recs))
        # A second wave: a record older than the baseline window, and one more redelivery.
        produce(settings, [scored("old", w - 5000, sentiment="negative"), recs[3]])
        wait_for(lambda: scrape(mon.port)[("sentimon_monitor_duplicates_total", frozenset())]
                 == 2, "the second duplicate")
        wait_for(lambda: len(lags(scrape(mon.port))) == 3, "the lag of 3 partitions", timeout_s=10)
        m = scrape(mon.port)

    assert_matches(m, expected_series(recs, {"AAPL", "TSLA"}))
    earn = ("topic", "Earnings")
    # The same figures by hand, so the reference above cannot hide a shared mistake.
    assert m[("sentimon_topic_volume", frozenset({earn, ("window", "short")}))] == 4
    assert m[("sentimon_topic_volume", frozenset({earn, ("window", "baseline")}))] == 8
    assert m[("sentimon_topic_negative_share", frozenset({earn, ("window", "short")}))] == 0.75
    assert m[("sentimon_topic_negative_share", frozenset({earn, ("window", "baseline")}))] \
        == 0.25
    assert m[("sentimon_topic_mean_score", frozenset({earn, ("window", "short")}))] \
        == pytest.approx(-0.45)
    assert m[("sentimon_ticker_volume", frozenset({("ticker", "AAPL"), ("window", "short")}))] \
        == 2
    assert m[("sentimon_ticker_volume", frozenset({("ticker", "TSLA"), ("window", "baseline")}))] \
        == 1
    assert not any(("ticker", "GME") in labels for _, labels in m)
    assert m[("sentimon_market_volume", frozenset({("window", "short")}))] == 6
    assert m[("sentimon_market_volume", frozenset({("window", "baseline")}))] == 9
    assert m[("sentimon_monitor_records_total", frozenset({("kind", "news")}))] == 13
    assert m[("sentimon_monitor_records_total", frozenset({("kind", "comment")}))] == 2
    assert m[("sentimon_monitor_duplicates_total", frozenset())] == 2
    assert m[("sentimon_monitor_records_too_old_total", frozenset())] == 1
    assert m[("sentimon_monitor_malformed_records_total",
              frozenset({("reason", "not_json")}))] == 1
    assert m[("sentimon_monitor_malformed_records_total",
              frozenset({("reason", "future_ts")}))] == 1
    assert m[("sentimon_monitor_last_event_timestamp_seconds",
              frozenset({("kind", "news")}))] == w
    assert m[("sentimon_monitor_last_event_timestamp_seconds",
              frozenset({("kind", "comment")}))] == w - 1
    # Earnings: 3 of 4 against a baseline of 2 of 8 -> z about 2, below spike_z=3.
    assert 0 < m[("sentimon_topic_spike_zscore", frozenset({earn}))] < 3
    assert m[("sentimon_topic_spike", frozenset({earn}))] == 0
    assert lags(m) == {"0": 0, "1": 0, "2": 0}


def test_spike_turns_on_then_decays_when_the_live_stream_goes_quiet(
        kafka_settings: Settings, topics: TopicSettings) -> None:
    """A burst raises the detector's evidence over its threshold; once records stop, the
    watermark follows the wall clock (live stream) and the spike clears by itself."""
    settings = monitor_settings(kafka_settings, topics, live_idle_s=2.0)
    w = math.floor(time.time()) - 5
    # Baseline: 400 Macro records over 400 s, 20 % negative.
    base = [scored(f"b{i}", w - 60 - i, topic="Macro",
                   sentiment="negative" if i % 5 == 0 else "neutral",
                   score=-0.8 if i % 5 == 0 else 0.0) for i in range(400)]
    produce(settings, base)
    macro = frozenset({("topic", "Macro")})
    with ThreadMonitor(settings) as mon:
        m = wait_records(mon.port, 400)
        assert m[("sentimon_topic_spike", macro)] == 0
        assert ("sentimon_topic_evidence_threshold", macro) in m
        burst = [scored(f"s{i}", w - i % 20, topic="Macro", sentiment="negative",
                        score=-0.9 + i / 1000, text=f"burst {i}", tickers=["TSLA", "XOM"])
                 for i in range(60)]
        produce(settings, burst)
        m = wait_records(mon.port, 460)
        assert m[("sentimon_topic_spike", macro)] == 1
        # What the spike notification will quote: the most negative texts of the burst.
        ex = exemplars(mon.port, "topic=Macro")
        assert [t["text"] for t in ex["texts"]] == [f"burst {i}" for i in range(5)]
        assert ex["tickers"] == [["TSLA", 60], ["XOM", 60]] and ex["spike"] is True
        assert ex["observed"] == pytest.approx(
            m[("sentimon_topic_observed_negatives", macro)], rel=1e-6)
        assert m[("sentimon_topic_evidence", macro)] >= m[("sentimon_topic_evidence_threshold", macro)]
        assert m[("sentimon_topic_observed_negatives", macro)] > \
            3 * m[("sentimon_topic_expected_negatives", macro)]
        # Nothing more arrives: within the 60 s horizon (plus slack) the burst is behind the
        # watermark, which now follows the clock.
        wait_for(lambda: scrape(mon.port)[("sentimon_topic_spike", macro)] == 0,
                 "the spike to clear on a quiet live stream", timeout_s=120)
        wm = scrape(mon.port)[("sentimon_monitor_watermark_timestamp_seconds", frozenset())]
        assert wm > w + 30


def test_a_replay_of_old_records_stays_in_event_time(
        kafka_settings: Settings, topics: TopicSettings) -> None:
    settings = monitor_settings(kafka_settings, topics, live_idle_s=0.5)
    old = 1_451_606_400  # 2016-01-01: a replay, far from the wall clock
    produce(settings, [scored(f"o{i}", old + i, topic="Macro") for i in range(30)])
    with ThreadMonitor(settings) as mon:
        wait_records(mon.port, 30)
        # Well past live_idle_s without records, polled: the watermark never moves.
        until = time.monotonic() + 3
        while time.monotonic() < until:
            m = scrape(mon.port)
            assert m[("sentimon_monitor_watermark_timestamp_seconds", frozenset())] == old + 29
            time.sleep(0.3)


@pytest.mark.slow
def test_restart_after_sigkill_changes_no_figure(
        kafka_settings: Settings, topics: TopicSettings, tmp_path: Path) -> None:
    w = math.floor(time.time()) - 5
    first = random_stream(250, start=w - 550, end=w - 100, seed=1, prefix="a")
    second = random_stream(250, start=w - 100, end=w + 1, seed=2, prefix="b")
    second += [dict(r) for r in first[::10]]  # redeliveries of old records after the crash
    total = len({r["id"] for r in first + second})

    sub_settings = monitor_settings(kafka_settings, topics, port=kafka_settings.monitor.metrics_port)
    config = tmp_path / "monitor.yml"
    config.write_text(yaml.safe_dump(sub_settings.model_dump(mode="json")))
    log = (tmp_path / "monitor.log").open("ab")
    port = sub_settings.monitor.metrics_port

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "sentimon", "--config", str(config), "monitor"],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    produce(sub_settings, first)
    with ThreadMonitor(monitor_settings(kafka_settings, topics)) as ref:
        proc = start()
        try:
            wait_records(port, len({r["id"] for r in first}))
            writer = threading.Thread(
                target=produce, args=(sub_settings, second), kwargs={"pause_s": 0.05, "every": 20})
            writer.start()
            time.sleep(0.3)
            before = records_total(scrape(port))
            proc.send_signal(signal.SIGKILL)  # mid-stream: no chance to clean up
            proc.wait(timeout=10)
            writer.join(timeout=60)
            proc = start()
            after = wait_records(port, total, timeout_s=90)
            uninterrupted = wait_records(ref.port, total)
            queries = [urllib.parse.urlencode({"topic": t}) for t in TOPICS]
            queries += ["ticker=AAPL", "ticker=TSLA", "market"]
            shown = {q: exemplars(port, q) for q in queries}
            reference = {q: exemplars(ref.port, q) for q in queries}
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
    assert len({r["id"] for r in first}) <= before < total, "the kill was not mid-stream"
    assert figures(after) == figures(uninterrupted)
    assert_matches(after, expected_series(first + second, {"AAPL", "TSLA"}))
    # The same exemplars too: they depend on the set of records, not on the reading order.
    assert shown == reference
    assert len(shown["market"]["texts"]) == 5
    dups = len(first) + len(second) - total
    assert after[("sentimon_monitor_duplicates_total", frozenset())] == dups


@pytest.mark.slow
def test_two_monitors_own_disjoint_series_with_the_figures_of_one(
        kafka_settings: Settings, topics: TopicSettings) -> None:
    """Each monitor reads the whole stream but exports only the series it owns: topics by
    their partition, tickers and market with partition 0. Together they export every series
    once, each with the figures a single monitor shows."""
    w = math.floor(time.time()) - 5
    # Its five topics hash to all three partitions, so both monitors get some.
    stream = random_stream(300, start=w - 500, end=w + 1, seed=3, prefix="p", dup_every=1000)
    unique = len({r["id"] for r in stream})
    produce(kafka_settings.model_copy(update={"topics": topics}), stream)
    group = f"test-monitor-split-{uuid.uuid4().hex[:8]}"

    def names(m: dict[Sample, float], family: str) -> set[str]:
        return {dict(labels).get(family, "") for name, labels in m
                if name == f"sentimon_{family}_volume"}

    with ThreadMonitor(monitor_settings(kafka_settings, topics, group=group)) as one:
        single = wait_records(one.port, unique)
        with ThreadMonitor(monitor_settings(kafka_settings, topics, group=group)) as two:
            def split() -> bool:
                a, b = scrape(one.port), scrape(two.port)
                return ready(one.port) and ready(two.port) and bool(names(a, "topic")) \
                    and bool(names(b, "topic")) \
                    and names(a, "topic") | names(b, "topic") == names(single, "topic")
            wait_for(split, "the series to split between two monitors", timeout_s=60)
            a, b = scrape(one.port), scrape(two.port)

    assert names(a, "topic").isdisjoint(names(b, "topic"))
    assert names(single, "topic") == {r["topic"] for r in stream}
    # Exactly one of them exports the tickers and the market.
    leads = [m for m in (a, b) if any(name == "sentimon_market_volume" for name, _ in m)]
    assert len(leads) == 1 and names(leads[0], "ticker") == names(single, "ticker")
    assert not any(name.startswith("sentimon_ticker_") for m in (a, b) if m is not leads[0]
                   for name, _ in m)
    # Every exported series has the single monitor's figures.
    series = ("sentimon_topic_", "sentimon_ticker_", "sentimon_market_")
    for m in (a, b):
        for key, value in m.items():
            if key[0].startswith(series):
                assert single[key] == pytest.approx(value), key
    union = {k for m in (a, b) for k in m if k[0].startswith(series)}
    assert union == {k for k in single if k[0].startswith(series)}
    assert_matches(single, expected_series(stream, {"AAPL", "TSLA"}))
