"""What the detector remembers per series: fine buckets for detection, coarse slots for baselines.

- **Fine buckets** (``bucket_s``, 15 s by default) over the detection horizon (1 h): a numpy
  ring per series of record counts, negatives by label, negative mass (sum of P(negative))
  and records per P(negative) decile (:data:`SCORE_BINS`). The detector reads them as arrays.
- **Coarse slots** (``slot_s``, 15 min) over the history (7 days): the same sums, from
  which :mod:`sentimon.monitor.baseline` fits the time-of-day baseline.

Both are keyed by absolute bucket/slot number, so a record lands in the same place whatever
order records come in, and sums are integers (P(negative) in micro-units), so they never
drift: everything derived from them is a function of the set of records alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from sentimon.monitor.windows import SCORE_UNITS, Key

#: Slot sums: records, negatives by label, negative mass in micro-units, then the records
#: of each P(negative) bin (``Slot[BIN0 + k]``).
Slot = list[int]
#: Equal-width bins of P(negative): the score profile the ``scores`` evidence reads.
SCORE_BINS = 10
BIN0 = 3


def score_bin(p_negative: float) -> int:
    """The P(negative) bin of a record: ``[k/10, (k+1)/10)``, 1.0 in the last."""
    return min(SCORE_BINS - 1, max(0, math.floor(p_negative * SCORE_BINS)))


class _Ring:
    __slots__ = ("bins", "ids", "mass", "n", "neg")

    def __init__(self, size: int) -> None:
        self.ids = np.full(size, -1, dtype=np.int64)
        self.n = np.zeros(size, dtype=np.int64)
        self.neg = np.zeros(size, dtype=np.int64)
        self.mass = np.zeros(size, dtype=np.int64)
        self.bins = np.zeros((size, SCORE_BINS), dtype=np.int64)


class EventHistory:
    """Fine and coarse sums per series, sharing one event-time watermark."""

    def __init__(self, *, bucket_s: float, horizon_s: float, slot_s: float,
                 history_s: float) -> None:
        if horizon_s < bucket_s or slot_s < bucket_s or history_s < slot_s:
            raise ValueError("need bucket_s <= horizon_s, bucket_s <= slot_s <= history_s")
        self.bucket_s = bucket_s
        self.slot_s = slot_s
        self.horizon = max(1, round(horizon_s / bucket_s))  # buckets
        self.history_slots = max(1, math.ceil(history_s / slot_s))
        self._fine: dict[Key, _Ring] = {}
        self.coarse: dict[Key, dict[int, Slot]] = {}
        self.watermark_bucket: int | None = None
        #: Bumped when a record lands in a slot that baselines already cover: cached
        #: baselines are stale.
        self.late_version = 0
        self._newest_slot: int | None = None

    def bucket_of(self, ts: float) -> int:
        return math.floor(ts / self.bucket_s)

    def slot_of(self, ts: float) -> int:
        return math.floor(ts / self.slot_s)

    def add(self, ts: float, keys: Iterable[Key], *, p_negative: float, negative: bool) -> None:
        """Count one record under every key (the caller has checked it is not too old)."""
        self.advance(self.bucket_of(ts))
        self._apply(ts, keys, p_negative=p_negative, negative=negative, sign=1)

    def remove(self, ts: float, keys: Iterable[Key], *, p_negative: float, negative: bool) -> None:
        """Take back a record counted by :meth:`add` with the same arguments.

        What has been forgotten since (a bucket past the horizon, a slot past the history)
        stays forgotten, so the sums are those of the records counted and not taken back,
        whatever the order of the calls.
        """
        self._apply(ts, keys, p_negative=p_negative, negative=negative, sign=-1)

    def _apply(self, ts: float, keys: Iterable[Key], *, p_negative: float, negative: bool,
               sign: int) -> None:
        bucket, slot = self.bucket_of(ts), self.slot_of(ts)
        wm = self.watermark_bucket
        assert wm is not None
        mass = sign * round(p_negative * SCORE_UNITS)
        neg = sign * int(negative)
        k = BIN0 + score_bin(p_negative)
        in_fine = bucket > wm - self.horizon
        pos = bucket % self.horizon
        if slot < self.baseline_end_slot():
            self.late_version += 1
        for key in keys:
            if in_fine:
                self._apply_fine(key, bucket, pos, k, mass=mass, neg=neg, sign=sign)
            if self._newest_slot is not None and slot <= self._newest_slot - self.history_slots:
                continue  # that slot has been forgotten: counting it again would depend on order
            if sign < 0 and slot not in self.coarse.get(key, {}):
                continue  # not there any more
            slots = self.coarse.setdefault(key, {})
            acc = slots.get(slot)
            if acc is None:
                acc = slots[slot] = [0] * (BIN0 + SCORE_BINS)
            acc[0] += sign
            acc[1] += neg
            acc[2] += mass
            acc[k] += sign
            if acc[0] == 0:
                del slots[slot]  # as if never written
                if not slots:
                    del self.coarse[key]

    def _apply_fine(self, key: Key, bucket: int, pos: int, k: int, *, mass: int, neg: int,
                    sign: int) -> None:
        ring = self._fine.get(key)
        if sign < 0 and (ring is None or ring.ids[pos] != bucket):
            return  # not there any more (a newer bucket took its place)
        if ring is None:
            ring = self._fine[key] = _Ring(self.horizon)
        if ring.ids[pos] != bucket:
            ring.ids[pos] = bucket
            ring.n[pos] = ring.neg[pos] = ring.mass[pos] = 0
            ring.bins[pos] = 0
        ring.n[pos] += sign
        ring.neg[pos] += neg
        ring.mass[pos] += mass
        ring.bins[pos, k - BIN0] += sign
        if ring.n[pos] == 0:
            ring.ids[pos] = -1  # as if never written

    def baseline_end_slot(self) -> int:
        """First slot not wholly before the horizon: baselines use the slots before it."""
        wm = self.watermark_bucket
        if wm is None:
            return -(2**62)
        return math.floor(((wm + 1) * self.bucket_s - self.horizon * self.bucket_s) / self.slot_s)

    def too_old(self, ts: float) -> bool:
        """True when ``ts`` falls before the history that ends at the watermark (to a bucket)."""
        wm = self.watermark_bucket
        if wm is None:
            return False
        span = round(self.history_slots * self.slot_s / self.bucket_s)
        return self.bucket_of(ts) <= wm - span

    def advance(self, bucket: int) -> None:
        """Move the watermark to ``bucket`` (never back); forget slots past the history."""
        if self.watermark_bucket is not None and bucket <= self.watermark_bucket:
            return
        self.watermark_bucket = bucket
        slot = self.slot_of(bucket * self.bucket_s)
        if self._newest_slot is None or slot > self._newest_slot:
            self._newest_slot = slot
            oldest = slot - self.history_slots
            for key in list(self.coarse):
                slots = self.coarse[key]
                for s in [s for s in slots if s <= oldest]:
                    del slots[s]
                if not slots:
                    del self.coarse[key]
                    self._fine.pop(key, None)

    def window(self, key: Key, *, soft: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bucket numbers, records, negatives) over the horizon ending at the watermark.

        Oldest first; ``soft`` gives the negative mass (sum of P(negative)), else the count
        of negative labels. Buckets without records are zeros.
        """
        wm = self.watermark_bucket
        if wm is None:
            empty = np.zeros(0)
            return empty.astype(np.int64), empty, empty
        first = wm - self.horizon + 1
        buckets = np.arange(first, wm + 1, dtype=np.int64)
        n = np.zeros(self.horizon)
        neg = np.zeros(self.horizon)
        ring = self._fine.get(key)
        if ring is not None:
            valid = ring.ids >= first
            at = ring.ids[valid] - first
            n[at] = ring.n[valid]
            neg[at] = ring.mass[valid] / SCORE_UNITS if soft else ring.neg[valid]
        return buckets, n, neg

    def window_bins(self, key: Key) -> np.ndarray:
        """Records per P(negative) bin in each bucket of :meth:`window` (horizon x bins)."""
        out = np.zeros((self.horizon, SCORE_BINS))
        wm, ring = self.watermark_bucket, self._fine.get(key)
        if wm is None or ring is None:
            return out
        first = wm - self.horizon + 1
        valid = ring.ids >= first
        out[ring.ids[valid] - first] = ring.bins[valid]
        return out

    def series(self) -> list[Key]:
        """Every series with records in the history."""
        return list(self.coarse)

    def recent_series(self) -> set[Key]:
        """The series with at least one record over the horizon ending at the watermark."""
        if self.watermark_bucket is None:
            return set()
        first = self.watermark_bucket - self.horizon + 1
        return {key for key, ring in self._fine.items() if int(ring.ids.max()) >= first}

    def reset(self) -> None:
        self._fine.clear()
        self.coarse.clear()
        self.watermark_bucket = None
        self._newest_slot = None
        self.late_version += 1
