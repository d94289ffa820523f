"""Which records are the first of their text: repeats are not independent evidence.

A retweet wave, a syndicated headline or a bot posting the same line again is one voice
copied, not many voices; the detector's likelihood counts records as independent, so copies
would count one opinion many times (on the StockNet stream, 14 % of the records repeat a
text, and retweet waves of a single tweet were a quarter of the false topic alerts). The
detector's evidence therefore counts each distinct text once per series and aligned window
of event time (:attr:`Repeats.window_s`, an hour by default); the rolling figures on the
dashboards still count every record.

Which record of a text counts is the one with the earliest ``(ts, id)`` in its window, so
the choice is a function of the set of records, not of their arrival order: when an earlier
copy arrives late, it displaces the one counted before, and the caller moves the count.
Memory is bounded like :class:`~sentimon.monitor.dedup.Deduplicator`: by time (windows whose
records are too old to be counted anyway) and by ``capacity`` (beyond it the oldest windows'
texts are forgotten, and a later copy of one of them counts again: :attr:`Repeats.evicted`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")


class Repeats(Generic[T]):
    """``offer`` says whether a record is the first of its text in its window."""

    def __init__(self, *, window_s: float, capacity: int) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.window_s = window_s
        self.capacity = capacity
        # (text key, window) -> (ts, id, what the caller counted), in arrival order.
        self._first: OrderedDict[tuple[str, int], tuple[float, str, T]] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._first)

    def offer(self, key: str, ts: float, rec_id: str, counted: T) -> tuple[bool, T | None]:
        """``(first, displaced)`` for a record of text ``key``.

        ``first`` is True when the record is now the first of its text in its window; then
        ``displaced`` is what was counted for the copy it replaces (to be taken back), or None
        when it is the window's first copy so far. ``counted`` is kept to be returned so.
        """
        slot = (key, math.floor(ts / self.window_s))
        held = self._first.get(slot)
        if held is None:
            self._first[slot] = (ts, rec_id, counted)
            if len(self._first) > self.capacity:
                self._first.popitem(last=False)
                self.evicted += 1
            return True, None
        if (ts, rec_id) < held[:2]:
            self._first[slot] = (ts, rec_id, counted)
            return True, held[2]
        return False, None

    def expire(self, before: float) -> int:
        """Forget windows that end before ``before``, oldest arrivals first; return how many.

        Like the id memory, this stops at the first window still young; the rest go later.
        """
        dropped = 0
        while self._first:
            (_, window), _held = next(iter(self._first.items()))
            if (window + 1) * self.window_s > before:
                break
            self._first.popitem(last=False)
            dropped += 1
        return dropped

    def clear(self) -> None:
        self._first.clear()
