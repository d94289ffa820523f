"""Consumer lag per assigned partition (log end offset minus position)."""

from __future__ import annotations

from kafka import KafkaConsumer
from kafka.structs import TopicPartition


def consumer_lag(consumer: KafkaConsumer) -> dict[TopicPartition, int]:
    """Lag of each partition currently assigned to ``consumer``; empty when none is."""
    assigned = list(consumer.assignment())
    if not assigned:
        return {}
    ends = consumer.end_offsets(assigned)
    lag: dict[TopicPartition, int] = {}
    for tp in assigned:
        try:
            position = consumer.position(tp)
        except Exception:  # partition revoked between the two calls
            continue
        lag[tp] = max(0, int(ends.get(tp, position)) - int(position))
    return lag
