"""Per-topic, per-ticker and market figures from scored records, in event time.

:class:`Aggregator` is pure logic (no Kafka, no HTTP): feed it :class:`ScoredRecord` s with
:meth:`Aggregator.add`, read figures with :meth:`Aggregator.snapshot`. Duplicated ids are
counted once; records older than the baseline window are counted in ``too_old`` and
otherwise ignored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from sentimon.monitor.dedup import Deduplicator
from sentimon.monitor.records import ScoredRecord
from sentimon.monitor.spike import UNINFORMED_PRIOR, SpikeResult, SpikeRule, evaluate, smoothed_share
from sentimon.monitor.windows import Counts, Key, SlidingWindows

#: At most this many topics have their own series; the model has 20.
MAX_TOPICS = 64

MARKET: Key = ("market", "")


class Outcome(Enum):
    COUNTED = "counted"
    DUPLICATE = "duplicate"
    TOO_OLD = "too_old"
    TOO_MANY_TOPICS = "too_many_topics"


@dataclass(frozen=True, slots=True)
class SeriesFigures:
    """Figures of one series: short window, baseline without the short window, spike."""

    short: Counts
    baseline: Counts
    spike: SpikeResult


@dataclass(frozen=True)
class Snapshot:
    """Everything ``/metrics`` shows, taken at one instant."""

    topics: dict[str, SeriesFigures]
    tickers: dict[str, SeriesFigures]
    market: SeriesFigures | None
    records: dict[str, int]
    duplicates: int
    too_old: int
    malformed: dict[str, int]
    last_event: dict[str, float]
    watermark: float | None
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    ready: bool = True


class Aggregator:
    """Sliding-window figures per topic, per watchlist ticker and for the market."""

    def __init__(
        self,
        *,
        short_window_s: float,
        baseline_window_s: float,
        watchlist: Iterable[str],
        rule: SpikeRule,
        dedup_capacity: int,
        buckets_per_short_window: int = 60,
        max_topics: int = MAX_TOPICS,
    ) -> None:
        self.baseline_window_s = baseline_window_s
        self.windows = SlidingWindows(
            short_window_s=short_window_s,
            baseline_window_s=baseline_window_s,
            buckets_per_short_window=buckets_per_short_window,
        )
        self.watchlist = frozenset(t.strip().upper() for t in watchlist if t.strip())
        self.rule = rule
        self.dedup = Deduplicator(capacity=dedup_capacity)
        self.max_topics = max_topics
        # Counters live for the whole process, across rebuilds (see Monitor for replays).
        self.records: Counter[str] = Counter()
        self.duplicates = 0
        self.too_old = 0
        self.malformed: Counter[str] = Counter()
        self.last_event: dict[str, float] = {}

    def add(self, rec: ScoredRecord, *, count: bool = True) -> Outcome:
        """Aggregate one record. ``count=False`` updates figures but no counter (a replay)."""
        if self.windows.too_old(rec.ts):
            self.too_old += count
            return Outcome.TOO_OLD
        topic_key = ("topic", rec.topic)
        if topic_key not in self.windows and self._topic_count() >= self.max_topics:
            if count:
                self.malformed["too_many_topics"] += 1
            return Outcome.TOO_MANY_TOPICS
        if not self.dedup.first_time(rec.id, rec.ts):
            self.duplicates += count
            return Outcome.DUPLICATE
        keys = [MARKET, topic_key]
        keys.extend(("ticker", t) for t in rec.tickers if t in self.watchlist)
        self.windows.add(rec.ts, keys, negative=rec.sentiment == "negative",
                         positive=rec.sentiment == "positive", score=rec.score)
        wm = self.windows.watermark
        if wm is not None:
            self.dedup.expire(wm - self.baseline_window_s)
        if count:
            self.records[rec.kind] += 1
        if rec.ts > self.last_event.get(rec.kind, float("-inf")):
            self.last_event[rec.kind] = rec.ts
        return Outcome.COUNTED

    def note_malformed(self, reason: str) -> None:
        self.malformed[reason] += 1

    def _topic_count(self) -> int:
        return sum(1 for family, _ in self.windows if family == "topic")

    def reset(self) -> None:
        """Forget windows and remembered ids (before re-reading the records); keep counters."""
        self.windows.reset()
        self.dedup.clear()

    def snapshot(self) -> Snapshot:
        """Current figures of every series that has records in the baseline window."""
        _, m_base = self.windows.figures(MARKET)
        # The market baseline, itself shrunk toward 1/3, is the prior of every other series.
        prior = smoothed_share(m_base.negative, m_base.n, prior=UNINFORMED_PRIOR)
        topics: dict[str, SeriesFigures] = {}
        tickers: dict[str, SeriesFigures] = {}
        market: SeriesFigures | None = None
        for key in self.windows:
            kind, name = key
            short, base = self.windows.figures(key)
            fig = SeriesFigures(short, base, evaluate(
                n_short=short.n, neg_short=short.negative, n_base=base.n,
                neg_base=base.negative, prior=UNINFORMED_PRIOR if key == MARKET else prior,
                rule=self.rule,
            ))
            if kind == "topic":
                topics[name] = fig
            elif kind == "ticker":
                tickers[name] = fig
            else:
                market = fig
        return Snapshot(
            topics=topics, tickers=tickers, market=market, records=dict(self.records),
            duplicates=self.duplicates, too_old=self.too_old, malformed=dict(self.malformed),
            last_event=dict(self.last_event), watermark=self.windows.watermark,
        )
