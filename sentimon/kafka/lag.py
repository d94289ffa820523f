"""Consumer lag per partition: from a consumer's position, or from a group's committed offsets."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from sentimon.config import KafkaSettings


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


class GroupLag:
    """A group's lag as the broker sees it: log end offset minus the group's committed offset.

    It has clients of its own (a group-less consumer and an admin client), so a thread can
    measure it while the daemon's own consumer is stuck in a batch: the lag then keeps
    growing on ``/metrics`` instead of freezing at its last value. A partition the group has
    never committed counts from its earliest offset (``auto_offset_reset=earliest``).
    """

    def __init__(self, kafka: KafkaSettings, group: str) -> None:
        from sentimon.kafka.clients import make_admin, make_consumer

        self.group = group
        self.consumer = make_consumer(kafka, group_id=None, client_suffix="lag")
        self.admin = make_admin(kafka)

    def __call__(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        tps = list(partitions)
        if not tps:
            return {}
        ends = self.consumer.end_offsets(tps)
        found = self.admin.list_group_offsets({self.group: None}).get(self.group, {})
        committed = {tp: o.offset for tp, o in found.items() if o.offset >= 0}
        missing = [tp for tp in tps if tp not in committed]
        if missing:
            committed.update(self.consumer.beginning_offsets(missing))
        return {tp: max(0, int(ends[tp]) - int(committed[tp])) for tp in tps if tp in ends}

    def close(self) -> None:
        for client in (self.consumer, self.admin):
            # Closing after a broker loss must not hide the daemon's result.
            with contextlib.suppress(Exception):
                client.close()
