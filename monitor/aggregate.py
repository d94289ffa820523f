"""Per-topic, per-ticker and market figures from scored records, in event time.

:class:`Aggregator` is pure logic (no Kafka, no HTTP): feed it :class:`ScoredRecord` s with
:meth:`Aggregator.add`, read figures with :meth:`Aggregator.snapshot` and the change
detector's verdicts with :meth:`Aggregator.detect`. Duplicated ids are counted once; records
older than the history are counted in ``too_old`` and otherwise ignored. With
``repeat_window_s`` the detector's evidence counts each distinct text once per series and
window of event time (:mod:`sentimon.monitor.repeats`); the rolling figures count every record.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

import numpy as np

from sentimon.config import MonitorSettings
from sentimon.monitor.baseline import Baseline, MarketFit, fit_market, fit_series
from sentimon.monitor.dedup import Deduplicator
from sentimon.monitor.detector import RISE_MULTIPLES, Detection, log_sr, threshold
from sentimon.monitor.history import EventHistory
from sentimon.monitor.records import ScoredRecord, text_key
from sentimon.monitor.repeats import Repeats
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
class DetectorConfig:
    """The change detector's settings (``monitor.*`` in the configuration)."""

    false_alerts_per_day_topics: float = 1.0  # shared by every topic series and the market
    false_alerts_per_day_tickers: float = 1.0  # shared by the watchlist tickers
    horizon_s: float = 3_600.0  # how far back a change may have begun
    slot_s: float = 900.0  # baseline resolution
    history_s: float = 7 * 86_400.0  # how much history the baselines see
    half_life_s: float = 86_400.0  # older history counts less
    min_history_s: float = 86_400.0  # observed history before a series can alarm
    #: ``scores``: records weighted by their P(negative) bin (marked Poisson likelihood);
    #: ``probability``: the sum of P(negative); ``argmax``: the count of negative labels.
    evidence: Literal["scores", "probability", "argmax"] = "scores"
    rises: tuple[float, ...] = RISE_MULTIPLES
    #: When > 0, each distinct text counts once per this much event time in the evidence.
    repeat_window_s: float = 0.0

    @property
    def soft(self) -> bool:
        """Negatives as the sum of P(negative) (else the count of negative labels)."""
        return self.evidence != "argmax"

    @property
    def scores(self) -> bool:
        return self.evidence == "scores"


NO_DETECTION = Detection(evidence=0.0, threshold=float("inf"), expected=0.0, observed=0.0,
                         rise=RISE_MULTIPLES[0], has_baseline=False)


@dataclass(frozen=True, slots=True)
class SeriesFigures:
    """Figures of one series: short window, baseline without the short window, detector."""

    short: Counts
    baseline: Counts
    spike: SpikeResult  # the z statistic of the short-window share (shown, not alerted on)
    detection: Detection = NO_DETECTION


@dataclass(frozen=True)
class Snapshot:
    """Everything ``/metrics`` shows, taken at one instant."""

    topics: dict[str, SeriesFigures]
    tickers: dict[str, SeriesFigures]
    market: SeriesFigures | None
    records: dict[str, int]
    duplicates: int
    repeats: int
    too_old: int
    malformed: dict[str, int]
    last_event: dict[str, float]
    watermark: float | None
    lag: dict[tuple[str, int], int] = field(default_factory=dict)
    ready: bool = True


def _others(expected_negatives: np.ndarray, share: float) -> np.ndarray:
    """Expected non-negative records from expected negatives and the negative share."""
    return expected_negatives * (1.0 - share) / max(share, 1e-9)


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
        detector: DetectorConfig | None = None,
    ) -> None:
        self.baseline_window_s = baseline_window_s
        self.windows = SlidingWindows(
            short_window_s=short_window_s,
            baseline_window_s=baseline_window_s,
            buckets_per_short_window=buckets_per_short_window,
        )
        self.watchlist = frozenset(t.strip().upper() for t in watchlist if t.strip())
        self.detector = detector if detector is not None else DetectorConfig()
        self.history = EventHistory(
            bucket_s=self.windows.bucket_s, horizon_s=self.detector.horizon_s,
            slot_s=self.detector.slot_s,
            history_s=max(self.detector.history_s, baseline_window_s))
        # Everything a record can still change lies within this span behind the watermark.
        self.memory_s = max(baseline_window_s, self.history.history_slots * self.history.slot_s)
        self._min_slots = max(1, math.ceil(self.detector.min_history_s / self.history.slot_s))
        self._fits: dict[Key, tuple[tuple[int, int], Baseline]] = {}
        self._market_fit: tuple[tuple[int, int], MarketFit | None] | None = None
        self.rule = rule
        self.dedup = Deduplicator(capacity=dedup_capacity)
        # What the evidence counted for the first copy of each text (to take back if an
        # earlier copy arrives late).
        self.repeats: Repeats[tuple[float, list[Key], float, bool]] | None = (
            Repeats(window_s=self.detector.repeat_window_s, capacity=dedup_capacity)
            if self.detector.repeat_window_s > 0 else None)
        self.max_topics = max_topics
        # Counters live for the whole process, across rebuilds (see Monitor for replays).
        self.records: Counter[str] = Counter()
        self.duplicates = 0
        self.repeated = 0  # records left out of the evidence as copies of an earlier text
        self.too_old = 0
        self.malformed: Counter[str] = Counter()
        self.last_event: dict[str, float] = {}

    @classmethod
    def from_settings(cls, m: MonitorSettings) -> Aggregator:
        """The aggregator a monitor daemon (or a backtest) runs with ``monitor.*`` settings."""
        return cls(
            short_window_s=m.short_window_s,
            baseline_window_s=m.baseline_window_s,
            watchlist=m.watchlist,
            rule=SpikeRule(spike_z=m.spike_z, min_volume=m.min_volume, min_lift=m.min_lift,
                           min_baseline_volume=m.min_baseline_volume),
            dedup_capacity=m.dedup_capacity,
            detector=DetectorConfig(
                false_alerts_per_day_topics=m.false_alerts_per_day_topics,
                false_alerts_per_day_tickers=m.false_alerts_per_day_tickers,
                horizon_s=m.detection_horizon_s, slot_s=m.baseline_slot_s,
                history_s=m.history_s, half_life_s=m.baseline_half_life_s,
                min_history_s=m.min_history_s,
                evidence=m.evidence, repeat_window_s=m.repeat_window_s),
        )

    def add(self, rec: ScoredRecord, *, count: bool = True) -> Outcome:
        """Aggregate one record. ``count=False`` updates figures but no counter (a replay)."""
        if self.history.too_old(rec.ts):
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
        negative = rec.sentiment == "negative"
        self.windows.add(rec.ts, keys, negative=negative,
                         positive=rec.sentiment == "positive", score=rec.score)
        # A copy moves event time on as any record does, whether or not it counts.
        self.history.advance(self.history.bucket_of(rec.ts))
        if self._first_of_text(rec, keys, negative=negative, count=count):
            self.history.add(rec.ts, keys, p_negative=rec.p_negative, negative=negative)
        wm = self.windows.watermark
        if wm is not None:
            self.dedup.expire(wm - self.memory_s)
            if self.repeats is not None:
                self.repeats.expire(wm - self.memory_s)
        if count:
            self.records[rec.kind] += 1
        if rec.ts > self.last_event.get(rec.kind, float("-inf")):
            self.last_event[rec.kind] = rec.ts
        return Outcome.COUNTED

    def _first_of_text(self, rec: ScoredRecord, keys: list[Key], *, negative: bool,
                       count: bool) -> bool:
        """Whether ``rec`` counts as evidence: the first copy of its text in its window.

        When it displaces a copy counted before (an earlier copy arriving late), that copy's
        count is taken back, so the evidence is the same in any arrival order.
        """
        if self.repeats is None:
            return True
        key = rec.text_key or (text_key(rec.text) if rec.text else "")
        if not key:
            return True
        first, displaced = self.repeats.offer(key, rec.ts, rec.id,
                                              (rec.ts, keys, rec.p_negative, negative))
        if displaced is not None:
            ts, old_keys, p_negative, old_negative = displaced
            self.history.remove(ts, old_keys, p_negative=p_negative, negative=old_negative)
        if not first or displaced is not None:
            self.repeated += count
        return first

    def note_malformed(self, reason: str) -> None:
        self.malformed[reason] += 1

    def _topic_count(self) -> int:
        return sum(1 for family, _ in self.windows if family == "topic")

    def advance_to(self, ts: float) -> None:
        """Move the watermark to event time ``ts`` without a record (live streams gone quiet)."""
        if self.windows.watermark is not None and ts <= self.windows.watermark:
            return
        self.windows.advance_to(ts)
        self.history.advance(self.history.bucket_of(ts))

    def reset(self) -> None:
        """Forget windows and remembered ids (before re-reading the records); keep counters."""
        self.windows.reset()
        self.history.reset()
        self.dedup.clear()
        if self.repeats is not None:
            self.repeats.clear()
        self._fits.clear()
        self._market_fit = None

    # -- the change detector -------------------------------------------------------------

    def thresholds(self) -> dict[str, float]:
        """log A per family: topics (the market shares their budget) and tickers."""
        cfg, bucket_s = self.detector, self.history.bucket_s
        topic = threshold(false_alerts_per_day=cfg.false_alerts_per_day_topics,
                          n_series=self._family_size("topic") + 1, bucket_s=bucket_s)
        return {
            "topic": topic,
            "market": topic,
            "ticker": threshold(false_alerts_per_day=cfg.false_alerts_per_day_tickers,
                                n_series=max(1, len(self.watchlist)), bucket_s=bucket_s),
        }

    def _family_size(self, family: str) -> int:
        """Series of a family: the watchlist for tickers, those with history for topics."""
        if family == "ticker":
            return len(self.watchlist)
        return sum(1 for f, _ in self.history.series() if f == family)

    def _market(self) -> MarketFit | None:
        stamp = (self.history.baseline_end_slot(), self.history.late_version)
        if self._market_fit is None or self._market_fit[0] != stamp:
            self._market_fit = (stamp, fit_market(self.history, MARKET, end_slot=stamp[0],
                                                  soft=self.detector.soft,
                                                  half_life_s=self.detector.half_life_s,
                                                  min_slots=self._min_slots,
                                                  scores=self.detector.scores))
            self._fits.clear()
        return self._market_fit[1]

    def baseline(self, key: Key) -> Baseline | None:
        """The fitted baseline of ``key`` at the watermark (None before enough history)."""
        market = self._market()
        if market is None:
            return None
        if key == MARKET:
            return market.baseline
        stamp = (self.history.baseline_end_slot(), self.history.late_version)
        cached = self._fits.get(key)
        if cached is None or cached[0] != stamp:
            cached = self._fits[key] = (stamp, fit_series(
                self.history, key, market, family_size=self._family_size(key[0]),
                soft=self.detector.soft, scores=self.detector.scores))
        return cached[1]

    def detect(self, keys: Iterable[Key] | None = None) -> dict[Key, Detection]:
        """The detector's verdict per series at the watermark (every series by default)."""
        out: dict[Key, Detection] = {}
        thresholds = self.thresholds()
        h = self.history
        short = self.windows.short_buckets
        market = self.baseline(MARKET)
        if market is not None:
            buckets, m_n, m_x = h.window(MARKET, soft=self.detector.soft)
            m_mu = market.expected(buckets, bucket_s=h.bucket_s, slot_s=h.slot_s)
            m_other, m_nu = m_n - m_x, _others(m_mu, market.share)
        for key in (h.series() if keys is None else keys):
            base = self.baseline(key)
            buckets, n, x = h.window(key, soft=self.detector.soft)
            if base is None or market is None or len(buckets) == 0:
                out[key] = NO_DETECTION
                continue
            mu = base.expected(buckets, bucket_s=h.bucket_s, slot_s=h.slot_s)
            # The rest of the market's non-negative records, against what it expects: when
            # everything is busier (an hour the baseline has not learned, a market-wide event)
            # this series is expected to be busier too; its own burst does not count.
            y, nu = m_other, m_nu
            if key != MARKET:
                y, nu = m_other - (n - x), m_nu - _others(mu, base.share)
            counts = h.window_bins(key) if self.detector.scores else None
            # Quasi-likelihood: counts that vary phi times more than Poisson carry 1/phi of the
            # evidence (a cluster of phi copies is one piece of news, not phi).
            evidence, rise = log_sr(x, mu, y=y, nu=np.maximum(nu, 0.0), counts=counts,
                                    ratio=base.score_ratio, phi=base.dispersion,
                                    rises=self.detector.rises)
            out[key] = Detection(evidence=evidence, threshold=thresholds[key[0]],
                                 expected=float(mu[-short:].sum()),
                                 observed=float(x[-short:].sum()), rise=rise)
        return out

    def legacy(self, key: Key, *, prior: float | None = None) -> SpikeResult:
        """The z statistic of ``key``'s short-window share (the statistic before the detector)."""
        short, base = self.windows.figures(key)
        if prior is None:
            _, m_base = self.windows.figures(MARKET)
            prior = smoothed_share(m_base.negative, m_base.n, prior=UNINFORMED_PRIOR)
        return evaluate(n_short=short.n, neg_short=short.negative, n_base=base.n,
                        neg_base=base.negative,
                        prior=UNINFORMED_PRIOR if key == MARKET else prior, rule=self.rule)

    def snapshot(self) -> Snapshot:
        """Current figures of every series that has records in the baseline window."""
        _, m_base = self.windows.figures(MARKET)
        # The market baseline, itself shrunk toward 1/3, is the prior of every other series.
        prior = smoothed_share(m_base.negative, m_base.n, prior=UNINFORMED_PRIOR)
        topics: dict[str, SeriesFigures] = {}
        tickers: dict[str, SeriesFigures] = {}
        market: SeriesFigures | None = None
        detections = self.detect()
        for key in self.windows:
            kind, name = key
            short, base = self.windows.figures(key)
            fig = SeriesFigures(short, base, self.legacy(key, prior=prior),
                                detections.get(key, NO_DETECTION))
            if kind == "topic":
                topics[name] = fig
            elif kind == "ticker":
                tickers[name] = fig
            else:
                market = fig
        return Snapshot(
            topics=topics, tickers=tickers, market=market, records=dict(self.records),
            duplicates=self.duplicates, repeats=self.repeated, too_old=self.too_old,
            malformed=dict(self.malformed),
            last_event=dict(self.last_event), watermark=self.windows.watermark,
        )
