"""Sliding event-time windows: per key, a ring of time buckets with running sums.

Time is cut into buckets of ``bucket_s`` seconds (by default 1/60 of the short window).
Every key (a topic, a ticker, the market) owns a ring with one slot per bucket of the
baseline window, and keeps two running sums: over the last ``short_buckets`` buckets and
over the last ``baseline_buckets`` buckets, both ending at the watermark's bucket (the
bucket of the newest event time seen). Adding a record touches one slot and two sums;
moving the watermark subtracts the buckets that leave each window. Nothing is rescanned.

Counts are integers (scores are kept in micro-units) so that adding and subtracting
never drifts: the figures depend only on the set of records inside the windows, not on
the order they came in. That is what makes a restart, which re-reads the records in a
different order, give the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

#: A series: (family, name), e.g. ("topic", "Macro"), ("ticker", "AAPL"), ("market", "").
Key = tuple[str, str]

#: Scores are summed as integers in these units (1e-6) so that sums never drift.
SCORE_UNITS = 1_000_000


@dataclass(frozen=True, slots=True)
class Counts:
    """Sums over a window: volume, negatives, positives and the summed score."""

    n: int = 0
    negative: int = 0
    positive: int = 0
    score_units: int = 0

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.n - other.n,
            self.negative - other.negative,
            self.positive - other.positive,
            self.score_units - other.score_units,
        )

    @property
    def negative_share(self) -> float | None:
        return self.negative / self.n if self.n else None

    @property
    def positive_share(self) -> float | None:
        return self.positive / self.n if self.n else None

    @property
    def mean_score(self) -> float | None:
        return self.score_units / SCORE_UNITS / self.n if self.n else None


class _Ring:
    """One key's buckets. Lists of ints beat numpy here: updates touch single slots."""

    __slots__ = ("base", "ids", "n", "neg", "pos", "score", "short")

    def __init__(self, size: int) -> None:
        self.ids = [-1] * size  # absolute bucket number held by each slot, -1 = empty
        self.n = [0] * size
        self.neg = [0] * size
        self.pos = [0] * size
        self.score = [0] * size
        self.short = [0, 0, 0, 0]  # n, neg, pos, score over the short window
        self.base = [0, 0, 0, 0]  # the same over the whole baseline window (short included)

    def slot_values(self, slot: int) -> tuple[int, int, int, int]:
        return self.n[slot], self.neg[slot], self.pos[slot], self.score[slot]


def _sub(acc: list[int], vals: tuple[int, int, int, int]) -> None:
    for i in range(4):
        acc[i] -= vals[i]


class SlidingWindows:
    """Short and baseline sliding sums for many keys, sharing one event-time watermark."""

    def __init__(self, *, short_window_s: float, baseline_window_s: float,
                 buckets_per_short_window: int = 60) -> None:
        if short_window_s <= 0 or baseline_window_s <= 0:
            raise ValueError("window lengths must be positive")
        if baseline_window_s < short_window_s:
            raise ValueError(
                f"baseline window ({baseline_window_s}s) must be at least the short window "
                f"({short_window_s}s)"
            )
        self.bucket_s = short_window_s / buckets_per_short_window
        self.short_buckets = buckets_per_short_window
        self.baseline_buckets = max(self.short_buckets,
                                    math.ceil(baseline_window_s / self.bucket_s - 1e-9))
        self._rings: dict[Key, _Ring] = {}
        self._watermark_bucket: int | None = None
        self.watermark: float | None = None  # newest event time seen, seconds

    def bucket_of(self, ts: float) -> int:
        return math.floor(ts / self.bucket_s)

    def too_old(self, ts: float) -> bool:
        """True when ``ts`` falls before the baseline window that ends at the watermark."""
        wm = self._watermark_bucket
        return wm is not None and self.bucket_of(ts) <= wm - self.baseline_buckets

    def add(self, ts: float, keys: Iterable[Key], *, negative: bool, positive: bool,
            score: float) -> bool:
        """Count one record under every key; False (and nothing counted) when too old."""
        bucket = self.bucket_of(ts)
        if self.watermark is None or ts > self.watermark:
            self._advance(bucket)
            self.watermark = ts
        wm = self._watermark_bucket
        assert wm is not None
        if bucket <= wm - self.baseline_buckets:
            return False
        in_short = bucket > wm - self.short_buckets
        vals = (1, int(negative), int(positive), round(score * SCORE_UNITS))
        size = self.baseline_buckets
        slot = bucket % size
        for key in keys:
            ring = self._rings.get(key)
            if ring is None:
                ring = self._rings[key] = _Ring(size)
            if ring.ids[slot] != bucket:
                # Expired slots were zeroed when the watermark passed them.
                ring.ids[slot] = bucket
            ring.n[slot] += 1
            ring.neg[slot] += vals[1]
            ring.pos[slot] += vals[2]
            ring.score[slot] += vals[3]
            for i in range(4):
                ring.base[i] += vals[i]
                if in_short:
                    ring.short[i] += vals[i]
        return True

    def advance_to(self, ts: float) -> None:
        """Move the watermark to ``ts`` without a record (never back)."""
        if self.watermark is None or ts > self.watermark:
            self._advance(self.bucket_of(ts))
            self.watermark = ts

    def _advance(self, new: int) -> None:
        old = self._watermark_bucket
        self._watermark_bucket = new if old is None else max(old, new)
        if old is None or new <= old:
            return
        size, short = self.baseline_buckets, self.short_buckets
        if new - old >= size:
            self._rings.clear()  # every bucket left the baseline window
            return
        # Buckets in (old - short, new - short] leave the short window,
        # buckets in (old - size, new - size] leave the baseline window.
        short_out = range(old - short + 1, new - short + 1)
        base_out = range(old - size + 1, new - size + 1)
        empty: list[Key] = []
        for key, ring in self._rings.items():
            for b in short_out:
                slot = b % size
                if ring.ids[slot] == b:
                    _sub(ring.short, ring.slot_values(slot))
            for b in base_out:
                slot = b % size
                if ring.ids[slot] == b:
                    _sub(ring.base, ring.slot_values(slot))
                    ring.ids[slot] = -1
                    ring.n[slot] = ring.neg[slot] = ring.pos[slot] = ring.score[slot] = 0
            if ring.base[0] == 0:
                empty.append(key)
        for key in empty:
            del self._rings[key]  # keys with nothing left disappear from the metrics

    def __contains__(self, key: object) -> bool:
        return key in self._rings

    def __iter__(self) -> Iterator[Key]:
        """The keys with records in the baseline window (a copy: safe while adding)."""
        return iter(list(self._rings))

    def figures(self, key: Key) -> tuple[Counts, Counts]:
        """(short window, baseline window without the short window) for ``key``."""
        ring = self._rings.get(key)
        if ring is None:
            return Counts(), Counts()
        short = Counts(*ring.short)
        return short, Counts(*ring.base) - short

    def reset(self) -> None:
        """Forget every key and the watermark (before a rebuild)."""
        self._rings.clear()
        self._watermark_bucket = None
        self.watermark = None
