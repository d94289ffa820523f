"""Faults of issue 13 injected into a running scorer, against the real broker and model.

Each test breaks one thing while records flow (the model, a dead letter's size, the group,
the dead-letter topic) and checks that no input is lost or committed past unacknowledged
output, and that the scorer recovers or stops loudly. The scorer runs in a thread so that
the fault can be put into it; Kafka, the topics and the model are the real ones.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka.structs import TopicPartition

from sentimon.config import Settings, TopicSettings
from sentimon.ingest.deadletter import MAX_DLQ_KEY_BYTES, MAX_DLQ_RECORD_BYTES
from sentimon.ingest.scorer import Scorer
from sentimon.kafka import GracefulStop, ensure_topics, make_admin, make_consumer, make_producer
from tests.conftest import free_ports
from tests.test_ingest_scorer import (
    Running,
    _model_dir,
    committed,
    json_values,
    produce,
    read_all,
    scorer_settings,
    tweets,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model() -> Any:
    d = _model_dir()
    if d is None:
        pytest.skip("model release not built yet (no model.*.onnx + tokenizer.json)")
    from sentimon.model.inference import SentimentModel

    return SentimentModel.load(d, device="cpu")


def _values(msgs: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(m).encode() for m in msgs]


def _giving_up(caplog: pytest.LogCaptureFixture) -> str:
    [rec] = [r for r in caplog.records if r.getMessage().startswith("scorer giving up")]
    return str(rec.error)  # type: ignore[attr-defined]


class BreakingModel:
    """The real model until ``broken`` is set; then every run fails as a lost GPU would."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.name, self.version, self.variant = model.name, model.version, model.variant
        self.provider = model.provider
        self.broken = False
        self.runs = 0

    @property
    def session_providers(self) -> tuple[str, ...]:
        return tuple(self._model.session_providers)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return list(self._model.token_counts(texts))

    def predict(self, texts: Sequence[str], *, batch_size: int = 64,
                sort_by_length: bool = True) -> Any:
        self.runs += 1
        if self.broken:
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : CUDA failure 999: unknown error")
        return self._model.predict(texts, batch_size=batch_size, sort_by_length=sort_by_length)


def test_model_outage_at_low_traffic_stops_without_dead_letters(
    kafka_settings: Settings, topics: TopicSettings, data_dir: Path, model: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One-record batches, as in a quiet period; the model breaks after the first ten.
    settings = scorer_settings(kafka_settings, topics, max_batch=1)
    msgs = tweets(data_dir, 30, skip=6000)
    produce(settings, topics.comments, _values(msgs))
    broken = BreakingModel(model)
    scorer = Scorer(settings, broken, once=True, stop=GracefulStop(), serve_http=False)
    running = Running(scorer)
    wait_until(lambda: scorer.done >= 10, 60, "ten records scored")
    broken.broken = True
    started = time.monotonic()
    assert running.finish(60) == 1
    print(f"\nmodel outage: exit 1 after {time.monotonic() - started:.1f}s, "
          f"{scorer.done} of {len(msgs)} done before it")
    error = _giving_up(caplog)
    assert "model is broken" in error and "canary" in error, error
    assert ",".join(model.session_providers) in error, error  # what ONNX Runtime really runs
    assert read_all(settings, topics.dlq) == []  # no flood of inference_error dead letters
    assert committed(settings, topics.comments) == scorer.done < len(msgs)

    # The model back: the next life scores everything that was not committed.
    again = Scorer(settings, model, once=True, stop=GracefulStop(), serve_http=False)
    assert Running(again).finish(120) == 0
    ids = Counter(d["id"] for d in json_values(read_all(settings, topics.scored)))
    assert set(ids) == {m["id"] for m in msgs} and max(ids.values()) == 1


def _produce_keyed(settings: Settings, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
    producer = make_producer(settings.kafka, client_suffix="test", max_request_size=4 * 2**20)
    try:
        futures = [producer.send(topic, key=k, value=v, partition=0) for k, v in records]
        producer.flush()
        for fut in futures:
            fut.get(timeout=30)
    finally:
        producer.close()


@pytest.mark.parametrize("dlq_limit", [None, 4000], ids=["default-dlq", "dlq-max-4000-bytes"])
def test_huge_key_and_value_go_to_the_dlq_and_the_partition_moves_on(
    kafka_settings: Settings, topics: TopicSettings, data_dir: Path, model: Any,
    dlq_limit: int | None,
) -> None:
    # The reproduction: a 150 kB key and an 850 kB non-JSON value, which a default
    # topic accepts, used to make a 1,083,690-byte dead letter that the producer refused on
    # every restart. With a dead-letter topic that takes only 4,000 bytes, the bounded dead
    # letter is refused by the broker and the smallest one goes instead.
    if dlq_limit is not None:
        dlq = f"{topics.dlq}.small"
        ensure_topics(kafka_settings.kafka, [dlq], partitions=1,
                      configs={"max.message.bytes": str(dlq_limit)})
        topics = topics.model_copy(update={"dlq": dlq})
    settings = scorer_settings(kafka_settings, topics, max_batch=8)
    good = tweets(data_dir, 16, skip=7000)
    big_key, big_value = b"k" * 150_000, b"\xfe not json " * 77_300
    records = [(None, v) for v in _values(good[:8])] + [(big_key, big_value)] \
        + [(None, v) for v in _values(good[8:])]
    _produce_keyed(settings, topics.comments, records)
    scorer = Scorer(settings, model, once=True, stop=GracefulStop(), serve_http=False)
    assert Running(scorer).finish(120) == 0
    [dead] = read_all(settings, topics.dlq)
    doc = json.loads(dead.value)
    size = len(dead.key or b"") + len(dead.value)
    print(f"\nhuge record, dlq limit {dlq_limit}: dead letter {size} bytes, key "
          f"{len(dead.key or b'')} bytes")
    assert doc["reason"] == "invalid_utf8" and doc["offset"] == 8
    assert doc["key_size"] == len(big_key) and doc["key_truncated"] is True
    assert doc["value_size"] == len(big_value) and doc["value_truncated"] is True
    assert size <= (dlq_limit or MAX_DLQ_RECORD_BYTES)
    assert dead.key == (big_key[:MAX_DLQ_KEY_BYTES] if dlq_limit is None else None)
    ids = Counter(d["id"] for d in json_values(read_all(settings, topics.scored)))
    assert set(ids) == {m["id"] for m in good} and max(ids.values()) == 1
    assert committed(settings, topics.comments) == len(records)


class SlowAcks:
    """The scorer's real producer with each ``flush`` (the wait for acks) held ``delay_s``."""

    def __init__(self, producer: Any, delay_s: float) -> None:
        self._producer = producer
        self.delay_s = delay_s

    def flush(self, timeout: float | None = None) -> None:
        time.sleep(self.delay_s)
        self._producer.flush(timeout=timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


def test_revocation_with_a_large_batch_in_hand_under_slow_acks(
    kafka_settings: Settings, topics: TopicSettings, data_dir: Path, model: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 300 records in hand and acks held 12 s, longer than the 10 s session timeout. A
    # revocation that scored and flushed the batch would keep the client from heartbeating
    # past the timeout; one that gives the batch up returns at once.
    settings = scorer_settings(kafka_settings, topics, max_batch=1000, max_wait_ms=30_000)
    msgs = tweets(data_dir, 300, skip=8000)
    produce(settings, topics.comments, _values(msgs))
    caplog.set_level(logging.INFO, logger="sentimon.ingest.scorer")
    first = Scorer(settings, model, stop=GracefulStop(), serve_http=False)
    r1 = Running(first)
    wait_until(lambda: first.consumed == len(msgs) and first._producer is not None, 60,
               "the first member to hold every record")
    slow = SlowAcks(first._producer, 12.0)
    first._producer = slow
    second = Scorer(settings, model, stop=GracefulStop(), serve_http=False)
    joined = time.monotonic()
    r2 = Running(second)
    wait_until(lambda: second.ready() and len(first.assignment) > 0, 60, "the rebalance")
    rebalance_s = time.monotonic() - joined
    slow.delay_s = 0.0
    wait_until(lambda: committed(settings, topics.comments) == len(msgs), 120,
               "every record committed")
    for scorer in (first, second):
        scorer.stop.set()
    assert r1.finish(60) == 0 and r2.finish(60) == 0
    print(f"\nrevocation with {len(msgs)} in hand, acks held 12 s: rebalance {rebalance_s:.1f}s")
    gave_up = [getattr(r, "gave_up", 0) for r in caplog.records
               if r.getMessage() == "partitions revoked"]
    assert len(msgs) in gave_up
    assert rebalance_s < 10, rebalance_s  # the old listener needed > 12 s (scoring + acks)
    assert not [r for r in caplog.records if "commit failed" in r.getMessage()]
    ids = Counter(d["id"] for d in json_values(read_all(settings, topics.scored)))
    assert set(ids) == {m["id"] for m in msgs} and max(ids.values()) == 1


def committed_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The scorer group's committed offset per partition of ``topic``."""
    consumer = make_consumer(settings.kafka, group_id=settings.scorer.group_id,
                             client_suffix="test-offsets")
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) or 0
                for p in consumer.partitions_for_topic(topic)}
    finally:
        consumer.close()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError as exc:
        return exc.code == 200
    except OSError:
        return False


def test_deleted_dead_letter_topic_turns_readiness_off_and_exits_naming_it(
    kafka_settings: Settings, topics: TopicSettings, data_dir: Path, model: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [port] = free_ports(1)
    settings = scorer_settings(kafka_settings, topics, max_batch=8, metrics_port=port,
                               output_timeout_s=15.0, stall_s=4.0)
    msgs = tweets(data_dir, 40, skip=9000)
    produce(settings, topics.comments, [*_values(msgs[:20]), b"not json"])
    caplog.set_level(logging.WARNING)
    scorer = Scorer(settings, model, stop=GracefulStop())
    scorer.lag_every_s = 0.5
    running = Running(scorer)
    wait_until(lambda: scorer.done == 21 and _ready(port), 60, "the first records done")
    admin = make_admin(settings.kafka)
    try:
        admin.delete_topics([topics.dlq])
    finally:
        admin.close()
    before = committed(settings, topics.comments)
    deleted = time.monotonic()
    produce(settings, topics.comments, [b"\xff bad", *_values(msgs[20:])])
    wait_until(lambda: not _ready(port), 4.0 + 10, "/readyz to turn 503")
    not_ready_s = time.monotonic() - deleted
    lag = {p: scorer.metrics.consumer_lag.labels(topic=topics.comments, partition=str(p))._value.get()
           for p in range(3)}
    assert running.finish(60) == 1
    exit_s = time.monotonic() - deleted
    error = _giving_up(caplog)
    kafka_lines = Counter((r.name, r.msg) for r in caplog.records if r.name.startswith("kafka"))
    print(f"\ndeleted DLQ: not ready after {not_ready_s:.1f}s, exit after {exit_s:.1f}s, "
          f"lag while stuck {sum(lag.values()):.0f}, kafka log lines {sum(kafka_lines.values())}")
    assert repr(topics.dlq) in error and "dead-letter topic" in error, error
    assert exit_s < 15 + 30
    assert sum(lag.values()) >= 1  # measured beside the stuck loop, not frozen at 0
    assert max(kafka_lines.values(), default=0) <= 2, kafka_lines.most_common(3)
    # Nothing committed past output that was never acknowledged: the partition holding the
    # new bad record stopped before it (batches without a dead letter may have gone on), and
    # every committed record has its output.
    scored_ids = {d["id"] for d in json_values(read_all(settings, topics.scored))}
    offsets = committed_offsets(settings, topics.comments)
    assert sum(offsets.values()) >= before == 21
    for rec in read_all(settings, topics.comments):
        if rec.offset < offsets.get(rec.partition, 0):
            assert rec.value == b"not json" or json.loads(rec.value)["id"] in scored_ids, rec
        if rec.value == b"\xff bad":
            assert offsets.get(rec.partition, 0) <= rec.offset

    # With the topic back, a new life finishes: every input scored or dead-lettered.
    ensure_topics(settings.kafka, [topics.dlq], partitions=3)
    again = Scorer(settings.model_copy(update={"scorer": settings.scorer.model_copy(
        update={"metrics_port": 0})}), model, once=True, stop=GracefulStop())
    assert Running(again).finish(120) == 0
    ids = Counter(d["id"] for d in json_values(read_all(settings, topics.scored)))
    assert set(ids) == {m["id"] for m in msgs}
    assert [json.loads(r.value)["reason"] for r in read_all(settings, topics.dlq)] == ["invalid_utf8"]
