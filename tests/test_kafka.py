"""Shared Kafka plumbing against the real broker: round trip, groups, committed offsets."""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import ConsumerRebalanceListener
from kafka.structs import TopicPartition

from sentimon.config import KafkaSettings, Settings
from sentimon.kafka import consumer_lag, ensure_topics, make_consumer, make_producer, subscribe
from sentimon.kafka.clients import security_config

pytestmark = pytest.mark.integration


def test_security_config_maps_sasl_and_ssl() -> None:
    k = KafkaSettings(
        bootstrap_servers="a:1, b:2", security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512", sasl_username="u", sasl_password="p",  # type: ignore[arg-type]
        ssl_cafile="/ca.pem",  # type: ignore[arg-type]
    )
    cfg = security_config(k)
    assert cfg["bootstrap_servers"] == ["a:1", "b:2"]
    assert cfg["sasl_mechanism"] == "SCRAM-SHA-512"
    assert cfg["sasl_plain_username"] == "u" and cfg["sasl_plain_password"] == "p"
    assert cfg["ssl_cafile"] == "/ca.pem"
    plain = security_config(KafkaSettings())
    assert "sasl_mechanism" not in plain and "ssl_cafile" not in plain


def test_round_trip_commit_and_resume(kafka_settings: Settings) -> None:
    topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    assert ensure_topics(kafka_settings.kafka, [topic], partitions=1) == [topic]
    assert ensure_topics(kafka_settings.kafka, [topic], partitions=1) == []  # idempotent

    producer = make_producer(kafka_settings.kafka)
    for i in range(20):
        producer.send(topic, key=b"k", value=f"m{i}".encode())
    producer.flush()
    producer.close()

    group = f"g-{uuid.uuid4().hex[:6]}"
    tp = TopicPartition(topic, 0)
    first = make_consumer(kafka_settings.kafka, group_id=group)
    first.subscribe([topic])
    got: list[bytes] = []
    while len(got) < 10:
        for records in first.poll(timeout_ms=1000, max_records=10 - len(got)).values():
            got.extend(r.value for r in records)
    first.commit()  # commits the position after the 10 records read
    assert first.committed(tp) == 10
    assert consumer_lag(first) == {tp: 10}
    first.close()

    second = make_consumer(kafka_settings.kafka, group_id=group)
    second.subscribe([topic])
    rest: list[bytes] = []
    while len(rest) < 10:
        for records in second.poll(timeout_ms=1000).values():
            rest.extend(r.value for r in records)
    second.close()
    assert got == [f"m{i}".encode() for i in range(10)]
    assert rest == [f"m{i}".encode() for i in range(10, 20)]  # resumed at the committed offset


class _Calls(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.calls.append(("revoked", len(revoked)))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.calls.append(("assigned", len(assigned)))


def test_subscribe_assigns_once_on_freshly_created_topics(kafka_settings: Settings) -> None:
    # Subscribing to topics whose metadata the client has not fetched yet used to end in a
    # second rebalance right after the first (the leader's assignment was made without the
    # metadata); kafka-python 3.0.12 can lose the end of that one and leave the member
    # without partitions. `subscribe` fetches the metadata first: one assignment, final.
    names = [f"test.fresh.{uuid.uuid4().hex[:8]}" for _ in range(2)]
    ensure_topics(kafka_settings.kafka, names, partitions=6)
    consumer = make_consumer(kafka_settings.kafka, group_id=f"g-{uuid.uuid4().hex[:6]}")
    listener = _Calls()
    try:
        assert set(names) <= consumer.topics()  # what the daemons check before subscribing
        subscribe(consumer, names, listener=listener)
        # White-box, because the race depends on timing: the group coordinator must know
        # the partitions before the first JoinGroup goes out.
        snapshot = consumer._coordinator._metadata_snapshot
        assert {t: len(p) for t, p in snapshot.items()} == {t: 6 for t in names}
        deadline = time.monotonic() + 30
        while ("assigned", 12) not in listener.calls and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
        # Any later metadata refresh (lag checks do them) used to start the second one.
        quiet_until = time.monotonic() + 5
        while time.monotonic() < quiet_until:
            consumer.end_offsets(list(consumer.assignment()))
            consumer.topics()
            consumer.poll(timeout_ms=200)
    finally:
        consumer.close()
    assert listener.calls[:2] == [("revoked", 0), ("assigned", 12)], listener.calls
    assert listener.calls[2:] in ([], [("revoked", 12)]), listener.calls  # the close
