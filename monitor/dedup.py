"""Bounded memory of record ids, so at-least-once redeliveries are counted once.

Ids are kept in arrival order with their event time. Memory is bounded twice: by
``capacity`` (the oldest arrivals are forgotten first) and by time (ids whose event time
left the baseline window are dropped; a redelivery of such a record is too old to be
counted anyway, so forgetting it cannot double-count).
"""

from __future__ import annotations

from collections import OrderedDict


class Deduplicator:
    """``first_time(id, ts)`` is True once per id while the id is remembered."""

    def __init__(self, *, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()
        self.evicted = 0  # ids forgotten for lack of room (a redelivery of one would count twice)

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, rec_id: object) -> bool:
        return rec_id in self._seen

    def first_time(self, rec_id: str, ts: float) -> bool:
        """Remember ``rec_id``; False when it was already seen (a duplicate)."""
        if rec_id in self._seen:
            return False
        self._seen[rec_id] = ts
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
            self.evicted += 1
        return True

    def expire(self, before: float) -> int:
        """Forget ids with event time before ``before``, oldest arrivals first; return how many.

        Arrival order follows event time only roughly, so this stops at the first id that
        is still young; older ones behind it go later or through ``capacity``.
        """
        dropped = 0
        while self._seen:
            rec_id, ts = next(iter(self._seen.items()))
            if ts >= before:
                break
            del self._seen[rec_id]
            dropped += 1
        return dropped

    def clear(self) -> None:
        self._seen.clear()
