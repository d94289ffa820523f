"""The scorer SIGKILLed at random points and restarted: nothing lost, duplicates bounded.

Modelled on Kafka's own system tests (a consumer killed with SIGKILL while a known set of
messages flows; at the end the output is compared with the input by id). Real tweets, the
real released model, the real broker.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from sentimon.config import ModelSettings, ScorerSettings, Settings, TopicSettings
from tests.conftest import free_ports
from tests.reliability.helpers import (
    SEED,
    Daemon,
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
    [port] = free_ports(1)
    return kafka_settings.model_copy(update={
        "home": home, "topics": topics, "log_json": True,
        "scorer": ScorerSettings(group_id=f"rel-scorer-{uuid.uuid4().hex[:8]}",  # type: ignore[call-arg]
                                 max_batch=MAX_BATCH, metrics_port=port),
        "model": ModelSettings(device="cpu"),  # type: ignore[call-arg]
    })


@needs_model
@pytest.mark.timeout(900)
def test_sigkill_at_random_points_loses_nothing(
        kafka_settings: Settings, topics: TopicSettings, data_dir: Path, tmp_path: Path) -> None:
    settings = scorer_settings(kafka_settings, topics, tmp_path)
    n = scaled(MESSAGES)
    msgs = messages(data_dir, n, prefix="crash")
    produce(settings.kafka, topics.comments, encode_all(msgs))
    progress = GroupProgress(settings.kafka, settings.scorer.group_id, topics.inputs)
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
            time.sleep(rnd.uniform(0.0, 1.5))
            before = progress()
            scorer.kill()
            kills.append({"at": before, "point": point})
            assert before < n, "the kill came after the scorer had finished"
            scorer.start().wait_ready(timeout_s=180)
        wait_for(lambda: progress() == n, "every record committed", timeout_s=900, interval_s=0.5)
        assert scorer.terminate() == 0, scorer.tail()
    finally:
        stop_all([scorer])
        progress.close()
    elapsed = time.monotonic() - started

    out = read_topic(settings.kafka, topics.scored, timeout_s=120)
    ids = Counter(json.loads(r.value)["id"] for r in out)
    want = {m["id"] for m in msgs}
    lost = want - set(ids)
    extra = set(ids) - want
    duplicates = sum(ids.values()) - len(ids)
    print(f"\ncrash test: {n} messages, {len(kills)} SIGKILLs at "
          f"{[int(k['at']) for k in kills]} committed, {sum(ids.values())} scored records, "
          f"{len(lost)} lost, {duplicates} duplicates (bound {len(kills) * MAX_BATCH}), "
          f"{elapsed:.0f}s")
    assert not lost, f"{len(lost)} ids never scored, e.g. {sorted(lost)[:5]}"
    assert not extra
    assert read_topic(settings.kafka, topics.dlq) == []
    # Output is acknowledged before offsets are committed, and one batch (at most max_batch
    # records) is processed at a time, so each kill can repeat at most the batch in hand.
    assert duplicates <= len(kills) * MAX_BATCH
    lives = [e for e in scorer.events() if e.get("event") == "scorer started"]
    assert len(lives) == KILLS + 1
