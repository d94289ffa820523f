"""Exemplars: the most negative recent texts of each series, for alerts people can act on.

A spike notification should say *what* the news is without anyone opening Kafka: the few
most negative texts of the burst in that series (topic, watchlist ticker, market) with their
source, time and tickers, and the tickers its negative records mention most. The monitor
keeps them here, beside its figures, and serves them on ``GET /exemplars``
(:mod:`sentimon.monitor.daemon`); ``sentimon notify`` fetches them for a firing spike.

What is kept, and why it is bounded and independent of record order:

* Event time is cut into :data:`BUCKETS` buckets per detection horizon
  (``monitor.detection_horizon_s``, the span in which the detector looks for a surge). A
  series keeps, per bucket, its :data:`TOP` records of highest P(negative) and a count of
  the tickers its negative-labelled records mention. So a series holds at most
  ``(BUCKETS + 1) * TOP`` records, whatever the rate.
* The reported exemplars are the best :data:`TOP` over the buckets that overlap the horizon
  behind the watermark (the newest event time seen, or a later time given to
  :meth:`Exemplars.advance_to`). The best of a union is the best of each part's best, so
  keeping only each bucket's top loses nothing; older buckets are dropped.
* Records are ranked by (P(negative), event time, id), a total order, and an id is held
  once: the state is a function of the set of records and the watermark only, as the
  monitor's figures are, so a restart that re-reads the topic in another order shows the
  same texts.

Ticker counts are exact up to :data:`MAX_SYMBOLS` distinct symbols per series and bucket
(far more than one bucket of one series mentions in practice); beyond it a new symbol is
not counted, the one place where order can matter, and only in a flood of distinct symbols.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sentimon.monitor.records import ScoredRecord

#: A series: (family, name), e.g. ("topic", "Macro"), ("ticker", "AAPL"), ("market", "").
Key = tuple[str, str]

#: Texts kept per series and bucket, and reported per series (a notification quotes 3-5).
TOP = 5
#: Buckets per detection horizon: the horizon is rounded out to whole buckets of this size.
BUCKETS = 12
#: Distinct ticker symbols counted per series and bucket (a bound on memory, see above).
MAX_SYMBOLS = 256
#: Ticker symbols reported per series, most mentioned first.
TOP_SYMBOLS = 10


def _rank(rec: ScoredRecord) -> tuple[float, float, str]:
    """Higher is more worth quoting: more negative, then newer, then (for a total order) id."""
    return (rec.p_negative, rec.ts, rec.id)


@dataclass(slots=True)
class _Bucket:
    """One series' bucket: its best records (a min-heap by rank) and negative ticker counts."""

    best: list[tuple[tuple[float, float, str], ScoredRecord]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    symbols: Counter[str] = field(default_factory=Counter)

    def add(self, rec: ScoredRecord, *, top: int) -> None:
        if rec.id in self.ids:
            return
        item = (_rank(rec), rec)
        if len(self.best) < top:
            heapq.heappush(self.best, item)
            self.ids.add(rec.id)
        elif item[0] > self.best[0][0]:
            dropped = heapq.heapreplace(self.best, item)
            self.ids.discard(dropped[1].id)
            self.ids.add(rec.id)

    def count(self, symbols: Iterable[str]) -> None:
        for s in symbols:
            if s in self.symbols or len(self.symbols) < MAX_SYMBOLS:
                self.symbols[s] += 1


@dataclass(frozen=True, slots=True)
class SeriesExemplars:
    """What :meth:`Exemplars.get` reports for one series."""

    records: tuple[ScoredRecord, ...]  # most negative first
    tickers: tuple[tuple[str, int], ...]  # (symbol, mentions in negative records), most first
    since: float  # start of the oldest bucket they come from (event time, seconds)
    watermark: float  # the newest event time seen (or given to advance_to)


class Exemplars:
    """Per series, the most negative records of the last detection horizon (see module doc)."""

    def __init__(self, *, horizon_s: float, watchlist: Iterable[str], top: int = TOP,
                 buckets: int = BUCKETS) -> None:
        if horizon_s <= 0 or top < 1 or buckets < 1:
            raise ValueError("horizon_s, top and buckets must be positive")
        self.horizon_s = float(horizon_s)
        self.bucket_s = self.horizon_s / buckets
        self.buckets = buckets
        self.top = top
        self.watchlist = frozenset(t.strip().upper() for t in watchlist if t.strip())
        self._series: dict[Key, dict[int, _Bucket]] = {}
        self._now: int | None = None  # the watermark's bucket
        self._watermark: float | None = None

    def _bucket_of(self, ts: float) -> int:
        return math.floor(ts / self.bucket_s)

    def _oldest(self) -> int | None:
        """The oldest bucket that overlaps the horizon behind the watermark."""
        if self._now is None:
            return None
        return self._now - self.buckets

    def keys_of(self, rec: ScoredRecord) -> list[Key]:
        """The series a record belongs to: the market, its topic, its watchlist tickers."""
        keys: list[Key] = [("market", ""), ("topic", rec.topic)]
        keys.extend(("ticker", t) for t in rec.tickers if t in self.watchlist)
        return keys

    def add(self, rec: ScoredRecord, keys: Iterable[Key] | None = None) -> None:
        """Consider ``rec`` for its series (``keys``, by default :meth:`keys_of`).

        The monitor calls this only for records its aggregator counted, so ids it has seen
        before never come here; an id already held in a bucket is skipped all the same. A
        record without text counts its tickers but is never quoted.
        """
        bucket = self._bucket_of(rec.ts)
        oldest = self._oldest()
        if oldest is not None and bucket < oldest:
            return  # already out of the horizon: it could never be reported
        negative = rec.sentiment == "negative"
        for key in (self.keys_of(rec) if keys is None else keys):
            b = self._series.setdefault(key, {}).get(bucket)
            if b is None:
                b = self._series[key][bucket] = _Bucket()
            if rec.text:  # one without text (written before records had it) cannot be quoted
                b.add(rec, top=self.top)
            if negative:
                b.count(rec.tickers)
        self._move(rec.ts)

    def advance_to(self, ts: float) -> None:
        """Move the watermark to event time ``ts`` (a live stream gone quiet); never back."""
        self._move(ts)

    def _move(self, ts: float) -> None:
        if self._watermark is not None and ts <= self._watermark:
            return
        self._watermark = ts
        bucket = self._bucket_of(ts)
        if self._now is None or bucket > self._now:
            self._now = bucket
            self._expire()

    def _expire(self) -> None:
        oldest = self._oldest()
        assert oldest is not None
        for key in list(self._series):
            buckets = self._series[key]
            for b in [b for b in buckets if b < oldest]:
                del buckets[b]
            if not buckets:
                del self._series[key]

    def reset(self) -> None:
        """Forget everything (before the monitor re-reads the records)."""
        self._series.clear()
        self._now = None
        self._watermark = None

    def series(self) -> list[Key]:
        """Series holding at least one record in the horizon."""
        return list(self._series)

    def __len__(self) -> int:
        """Records held over every series and bucket (the memory bound's unit)."""
        return sum(len(b.best) for buckets in self._series.values() for b in buckets.values())

    def get(self, key: Key, *, top: int | None = None,
            top_symbols: int = TOP_SYMBOLS) -> SeriesExemplars | None:
        """The series' most negative records and most mentioned tickers; None if it has none."""
        buckets = self._series.get(key)
        if not buckets or self._now is None or self._watermark is None:
            return None
        oldest = self._oldest()
        assert oldest is not None
        held: dict[str, tuple[tuple[float, float, str], ScoredRecord]] = {}
        symbols: Counter[str] = Counter()
        for b_index, b in buckets.items():
            if b_index < oldest:
                continue
            symbols.update(b.symbols)
            for rank, rec in b.best:
                # An id in two buckets (a producer that reused it with another time): once.
                if rec.id not in held or rank > held[rec.id][0]:
                    held[rec.id] = (rank, rec)
        best = heapq.nlargest(top or self.top, held.values(), key=lambda item: item[0])
        # Most mentioned first; equal counts by symbol, so the order is deterministic.
        ranked = sorted(symbols.items(), key=lambda kv: (-kv[1], kv[0]))[:top_symbols]
        return SeriesExemplars(
            records=tuple(rec for _, rec in best), tickers=tuple(ranked),
            since=oldest * self.bucket_s, watermark=self._watermark)
