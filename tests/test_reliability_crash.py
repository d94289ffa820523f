"""The scorer SIGKILLed at random points and restarted: nothing lost, duplicates bounded.

Modelled on Kafka's own system tests (a consumer killed with SIGKILL while a known set of
messages flows; at the end the output is compared with the input by id). Real tweets, the
real released model, the real broker. Random kills mostly land while a batch is being
scored, which repeats nothing; the last kill is aimed at the window between a batch's
output being written and its offsets being committed, the only moment a crash can repeat
records. A monitor then reads the scored topic and must count every id once.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from sentimon.config import (
    ModelSettings,
    MonitorSettings,
    ScorerSettings,
    Settings,
    TopicSettings,
)
from tests.conftest import free_ports
from tests.reliability.helpers import (
    SEED,
    Daemon,
    EndOffsets,
    GroupProgress,
    encode_all,
    messages,
    needs_model,
    produce,
    read_topic,
    scaled,
    stop_all,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MESSAGES = 20_000
KILLS = 3
MAX_BATCH = 64


def scorer_settings(kafka_settings: Settings, topics: TopicSettings, home: Path) -> Settings:
    port, monitor_port = free_ports(2)
    return kafka_settings.model_copy(update={
        "home": home, "topics": topics, "log_json": True,
        "scorer": ScorerSettings(group_id=f"rel-scorer-{uuid.uuid4().hex[:8]}",  # type: ignore[call-arg]
                                 max_batch=MAX_BATCH, metrics_port=port),
        "monitor": MonitorSettings(group_id=f"rel-monitor-{uuid.uuid4().hex[:8]}",  # type: ignore[call-arg]
                                   metrics_port=monitor_port),
        "model": ModelSettings(device="cpu"),  # type: ignore[call-arg]
    })


@needs_model
@pytest.mark.timeout(900)
def test_sigkill_at_random_points_loses_nothing(
        kafka_settings: Settings, topics: TopicSettings, data_dir: Path, tmp_path: Path) -> None:
    settings = scorer_settings(kafka_settings, topics, tmp_path)
    n = scaled(MESSAGES)
    msgs = messages(data_dir, n, prefix="crash", now_ts=True)  # inside the monitor's windows
    produce(settings.kafka, topics.comments, encode_all(msgs))
    progress = GroupProgress(settings.kafka, settings.scorer.group_id, topics.inputs)
    written = EndOffsets(settings.kafka, [topics.scored, topics.dlq])
    rnd = random.Random(SEED)
    # Kill points as fractions of the input, spread over the run, each with a random delay
    # so that the kill lands anywhere in a batch: polling, scoring, producing or committing.
    points = sorted(rnd.uniform(0.1, 0.85) for _ in range(KILLS))
    scorer = Daemon(settings, ["score"], tmp_path / "scorer.log",
                    port=settings.scorer.metrics_port)
    kills: list[dict[str, float]] = []
    started = time.monotonic()
    try:
        scorer.start().wait_ready(timeout_s=180)
        for point in points:
            wait_for(lambda p=point: progress() >= p * n, f"{point:.0%} committed",  # type: ignore[misc]
                     timeout_s=600, interval_s=0.2)
            aimed, caught = len(kills) == KILLS - 1, False
            if aimed:
                caught = kill_between_write_and_commit(scorer, written, progress,
                                                       give_up_at=int(0.95 * n))
            else:
                time.sleep(rnd.uniform(0.0, 1.5))
                scorer.kill()
            before = progress()
            kills.append({"at": before, "point": point, "aimed": caught})
            assert before < n, "the kill came after the scorer had finished"
            scorer.start().wait_ready(timeout_s=180)
        wait_for(lambda: progress() == n, "every record committed", timeout_s=900, interval_s=0.5)
        assert scorer.terminate() == 0, scorer.tail()
    finally:
        stop_all([scorer])
        progress.close()
        written.close()
    elapsed = time.monotonic() - started

    out = read_topic(settings.kafka, topics.scored, timeout_s=120)
    ids = Counter(json.loads(r.value)["id"] for r in out)
    want = {m["id"] for m in msgs}
    lost = want - set(ids)
    extra = set(ids) - want
    duplicates = sum(ids.values()) - len(ids)
    print(f"\ncrash test: {n} messages, {len(kills)} SIGKILLs at "
          f"{[int(k['at']) for k in kills]} committed (last one aimed: "
          f"{'in the window' if kills[-1]['aimed'] else 'window not seen, killed anyway'}), "
          f"{sum(ids.values())} scored records, {len(lost)} lost, {duplicates} duplicates "
          f"(bound {len(kills) * MAX_BATCH}), {elapsed:.0f}s")
    assert not lost, f"{len(lost)} ids never scored, e.g. {sorted(lost)[:5]}"
    assert not extra
    assert read_topic(settings.kafka, topics.dlq) == []
    # Output is acknowledged before offsets are committed, and one batch (at most max_batch
    # records) is processed at a time, so each kill can repeat at most the batch in hand.
    assert duplicates <= len(kills) * MAX_BATCH
    lives = [e for e in scorer.events() if e.get("event") == "scorer started"]
    assert len(lives) == KILLS + 1

    # Downstream, the monitor counts each id once, however often it was scored.
    monitor = Daemon(settings, ["monitor"], tmp_path / "monitor.log",
                     port=settings.monitor.metrics_port)
    try:
        monitor.start().wait_ready(timeout_s=180)
        wait_for(lambda: monitor.metric_sum("sentimon_monitor_records_total") == n,
                 "the monitor to count every id", timeout_s=120)
        assert monitor.metric_sum("sentimon_monitor_duplicates_total") == duplicates
        assert monitor.metric_sum("sentimon_market_volume") == n
        assert monitor.terminate() == 0, monitor.tail()
    finally:
        stop_all([monitor])


def kill_between_write_and_commit(scorer: Daemon, written: EndOffsets,
                                  committed: GroupProgress, *, give_up_at: int,
                                  timeout_s: float = 30.0) -> bool:
    """SIGKILL once a batch's output is on the broker but its offsets are not committed.

    Outside that window the output topics hold exactly ``committed`` plus the duplicates so
    far; inside it they hold more. The output is read before the offsets, so a commit landing
    between the two reads can only hide a window, never fake one. True if the kill was aimed;
    without seeing the window for ``timeout_s``, or once ``give_up_at`` records are committed
    (so that the kill still comes mid-stream), the scorer is killed anyway.
    """
    base = min(written() - committed() for _ in range(5))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = written()
        done = committed()
        if out - done > base:
            scorer.kill()
            return True
        if done >= give_up_at:
            break
    scorer.kill()
    return False
