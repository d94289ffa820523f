"""JoinWatch against the real broker: an abandoned completed join is noticed and redone."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import ConsumerRebalanceListener
from kafka.structs import TopicPartition

from sentimon.config import Settings
from sentimon.kafka import JoinWatch, ensure_topics, make_consumer, subscribe

pytestmark = pytest.mark.integration


class _Assigned(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.count = 0

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.count += 1


def _poll_until(consumer, done, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        consumer.poll(timeout_ms=200)
    assert done()


def test_join_watch_rejoins_after_an_abandoned_join(kafka_settings: Settings) -> None:
    topic = f"test.joinwatch.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_settings.kafka, [topic], partitions=2)
    consumer = make_consumer(kafka_settings.kafka, group_id=f"g-{uuid.uuid4().hex[:6]}")
    listener = _Assigned()
    now = [0.0]
    watch = JoinWatch(consumer, stall_s=5, clock=lambda: now[0])
    try:
        subscribe(consumer, [topic], listener=listener)
        _poll_until(consumer, lambda: listener.count == 1)
        assert not watch.check()  # healthy member: nothing to do

        # The state kafka-python 3.0.12 leaves behind: a join prepared (heartbeats off),
        # completed out of sight, and no rejoin requested any more.
        coordinator = consumer._coordinator
        coordinator.rejoining = True
        coordinator._disable_heartbeat()
        for _ in range(3):
            consumer.poll(timeout_ms=200)
        assert listener.count == 1 and coordinator.rejoining  # stuck: polls change nothing

        assert not watch.check()  # first sighting starts the clock
        now[0] += 4.9
        assert not watch.check()
        now[0] += 0.2
        assert watch.check() and watch.healed == 1
        _poll_until(consumer, lambda: listener.count == 2)
        assert not coordinator.rejoining
        assert consumer.assignment() == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
        assert not watch.check()
    finally:
        consumer.close()
