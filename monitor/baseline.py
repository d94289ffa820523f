"""Baselines: the negatives a series is expected to carry in a bucket, at that time of day.

Fitted from the coarse slots of :class:`~sentimon.monitor.history.EventHistory` that lie
wholly before the detection horizon (so a surge in progress never raises its own baseline):

- **Observed time.** Slots count as exposure from the market's first record on, except
  runs of :data:`OUTAGE_SLOTS` or more slots without a single market record in which the
  stream's average rate would have put :data:`OUTAGE_RECORDS` records: an outage of the
  whole stream lowers no rate, while a quiet quarter-hour at night, or the hours between
  the headlines of a feed that carries a few a day, still count.
- **Time of day.** The market's records per slot by hour of day, divided by its mean, give
  24 factors, each shrunk toward 1 with :data:`TOD_PRIOR_RECORDS` pseudo-records (an hour
  seen with few records borrows from the day). Every series uses the market's shape: a topic with 20 records a day
  has no shape of its own to estimate.
- **Day of week.** Once the history holds both weekdays and a weekend (UTC), the market's
  rate on each kind of day against the time-of-day fit gives two more factors, shrunk toward
  1 with :data:`WEEK_PRIOR_RECORDS` pseudo-records; until then both are 1.
- **Rate.** A series' records per slot at an average hour: its records over its
  time-of-day-weighted exposure, with a gamma prior worth :data:`RATE_PRIOR_RECORDS`
  records at an equal share of the market (a new, thin series is neither silent nor
  alarmed by its first record).
- **Share.** Negative mass per record, shrunk toward the parent's share (market for topics
  and tickers; 1/3 for the market) with :data:`SHARE_PRIOR_RECORDS` pseudo-records.
- **Recent history counts more.** Each slot is weighted ``0.5 ** (age / half-life)`` (one
  day by default), so the baseline follows a level that moves over days while a burst
  shorter than the detection horizon is judged against what came before it.
- **Dispersion.** Real streams vary more than Poisson counts (retweets and syndicated
  copies arrive in clusters, the mix drifts within a day): Pearson's ratio of the slot
  negatives' squared deviations to their expectation over the kept slots, shrunk toward 1
  with :data:`DISPERSION_PRIOR_SLOTS` pseudo-slots and never below 1, divides the
  detector's evidence (the quasi-Poisson adjustment of outbreak detection, Farrington et
  al. 1996), so that the false-alert budget holds on such series too.
- **Score profile** (``scores`` evidence). The share of a series' records in each
  P(negative) decile, shrunk toward the parent's (the market's toward equal deciles), and
  the profile of a surge: the market's records that the model more likely than not calls
  negative (P >= 0.5), spread over their deciles. Their ratio per decile is how much more
  likely a record there is under a surge than under the baseline (see
  :mod:`sentimon.monitor.detector`); the dispersion is then that of the statistic the
  detector sums, the records weighted by those ratios.
- **Robust to past surges.** After a first fit, slots whose negatives exceed the fit's
  expectation by more than ``4 sqrt(m) + 2`` are left out and the fit is repeated: a burst
  that was alerted on (or missed) does not inflate the baseline that judges the next one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sentimon.monitor.history import BIN0, SCORE_BINS, EventHistory
from sentimon.monitor.windows import SCORE_UNITS, Key

TOD_PRIOR_RECORDS = 5.0
RATE_PRIOR_RECORDS = 2.0
SHARE_PRIOR_RECORDS = 20.0
#: This many consecutive slots without any market record are an outage, not a quiet spell.
OUTAGE_SLOTS = 4
#: Records the stream's average rate would put in a gap before it counts as an outage.
OUTAGE_RECORDS = 10.0
#: Observed slots of history needed before a series can alarm (1 hour at 15-minute slots).
MIN_HISTORY_SLOTS = 4
#: A slot is an outlier when its negatives exceed ``m + OUTLIER_Z sqrt(m) + OUTLIER_ADD``.
OUTLIER_Z, OUTLIER_ADD = 4.0, 2.0
HOURS = 24
#: Pseudo-records at factor 1 for the weekday/weekend rates.
WEEK_PRIOR_RECORDS = 100.0
#: Pseudo-slots at dispersion 1: a few hours of history cannot make a series deaf.
DISPERSION_PRIOR_SLOTS = 8.0
MAX_DISPERSION = 8.0
#: Older history counts less: a slot a day old weighs half as much as the newest.
DEFAULT_HALF_LIFE_S = 86_400.0
#: Pseudo-records per decile in the surge profile: no decile is ruled out of a surge.
PROFILE_PRIOR_RECORDS = 1.0
#: The market's deciles before any record: equal.
EVEN_BINS = np.full(SCORE_BINS, 1.0 / SCORE_BINS)
#: The rise at which the dispersion of the ``scores`` statistic is measured.
DISPERSION_RISE = 2.0


@dataclass(frozen=True)
class Baseline:
    """Expected records and negative share of one series, by hour of day."""

    rate: float  # records per slot at an average hour
    share: float  # negative mass per record
    tod: np.ndarray  # 24 factors of the rate by hour of day (UTC)
    slots: int  # observed slots of history behind the fit
    excluded: int  # slots left out as outliers
    dispersion: float = 1.0  # variance of the slot statistic over its Poisson variance (>= 1)
    week: tuple[float, float] = (1.0, 1.0)  # factors of the rate on weekdays, at weekends
    #: Per P(negative) decile: a surge's share of records there over the baseline's, per
    #: unit of negative share (``share * profile / bins``); None before a fit with deciles.
    score_ratio: np.ndarray | None = None

    def expected(self, buckets: np.ndarray, *, bucket_s: float, slot_s: float) -> np.ndarray:
        """Expected negatives in each of ``buckets`` (absolute bucket numbers)."""
        t = buckets * bucket_s
        hours = (t % 86_400 // 3_600).astype(np.int64)
        week = np.asarray(self.week)[_weekend(t)]
        return self.rate * self.tod[hours] * week * self.share * (bucket_s / slot_s)


@dataclass(frozen=True)
class MarketFit:
    """What every series borrows from the market: observed slots, time of day, share."""

    observed: np.ndarray  # slot numbers counted as exposure
    hours: np.ndarray  # hour of day of each observed slot
    factor: np.ndarray  # time-of-day times day-of-week factor of each observed slot
    recency: np.ndarray  # weight of each observed slot (half-life decay with age)
    tod: np.ndarray
    rate: float  # market records per observed slot
    share: float
    baseline: Baseline
    bins: np.ndarray  # the market's share of records in each P(negative) decile
    profile: np.ndarray  # a surge's share of records in each decile


def _weekend(t: np.ndarray) -> np.ndarray:
    """1 for times (seconds since the epoch) on a Saturday or Sunday (UTC), else 0."""
    return (((np.floor(t / 86_400).astype(np.int64) + 3) % 7) >= 5).astype(np.int64)


def _week(n: np.ndarray, tod: np.ndarray, weekend: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Rate factors for weekdays and weekends, each shrunk toward 1 (WEEK_PRIOR_RECORDS).

    A kind of day not yet in the history gets 1: the day-of-week shape is learnt only when
    the history holds both, and firms up as it holds more of them.
    """
    level = (w * n).sum() / max((w * tod).sum(), 1e-12)
    obs = np.bincount(weekend, weights=w * n, minlength=2)
    exp = np.bincount(weekend, weights=w * tod, minlength=2) * level
    return (obs + WEEK_PRIOR_RECORDS) / (exp + WEEK_PRIOR_RECORDS)


def _hours(slots: np.ndarray, slot_s: float) -> np.ndarray:
    return ((slots * slot_s) % 86_400 // 3_600).astype(np.int64)


def _sums(history: EventHistory, key: Key, observed: np.ndarray, *,
          soft: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Records, negatives and records per P(negative) decile of ``key`` per observed slot."""
    slots = history.coarse.get(key, {})
    n = np.zeros(len(observed))
    x = np.zeros(len(observed))
    c = np.zeros((len(observed), SCORE_BINS))
    for i, s in enumerate(observed.tolist()):
        acc = slots.get(s)
        if acc is not None:
            n[i] = acc[0]
            x[i] = acc[2] / SCORE_UNITS if soft else acc[1]
            c[i] = acc[BIN0:]
    return n, x, c


def _bin_shares(c: np.ndarray, w: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Share of records per decile, shrunk toward ``prior`` by SHARE_PRIOR_RECORDS."""
    counts = w @ c
    return (counts + SHARE_PRIOR_RECORDS * prior) / (counts.sum() + SHARE_PRIOR_RECORDS)


def _profile(c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A surge's records per decile: those at P(negative) >= 0.5, plus a pseudo-record each."""
    counts = w @ c
    counts[: SCORE_BINS // 2] = 0.0
    counts += PROFILE_PRIOR_RECORDS
    return np.asarray(counts / counts.sum())


def _score_ratio(share: float, profile: np.ndarray, bins: np.ndarray) -> np.ndarray:
    return np.asarray(share * profile / np.maximum(bins, 1e-12))


def _weighted(c: np.ndarray, n_expected: np.ndarray, bins: np.ndarray,
              ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Per slot: the detector's weighted record sum, its Poisson mean and variance; max weight.

    The ``scores`` statistic adds records weighted by ``log(1 + (rho - 1) ratio)``, here at
    ``rho`` = :data:`DISPERSION_RISE`.
    """
    gain = np.log1p((DISPERSION_RISE - 1.0) * ratio)
    m = n_expected[:, None] * bins[None, :]
    return c @ gain, m @ gain, m @ gain**2, float(gain.max())


def _fit_outliers(x: np.ndarray, c: np.ndarray, n_expected: np.ndarray, share: float, *,
                  scores: bool, w: np.ndarray, prior_bins: np.ndarray,
                  profile: np.ndarray | None = None) -> np.ndarray:
    """Slots to leave out of the next fit: too many negatives or, with ``scores``, too
    heavy a weighted record sum against the deciles fitted with weights ``w`` (and the
    surge ``profile``; None: the series' own, for the market)."""
    out = _outliers(x, n_expected * share)
    if scores:
        bins = _bin_shares(c, w, prior_bins)
        q = _profile(c, w) if profile is None else profile
        out |= _score_outliers(c, n_expected, bins, _score_ratio(share, q, bins))
    return out


def _score_outliers(c: np.ndarray, n_expected: np.ndarray, bins: np.ndarray,
                    ratio: np.ndarray) -> np.ndarray:
    """Slots whose records, weighted as the detector weighs them, are far above the fit."""
    z, ez, var, top = _weighted(c, n_expected, bins, ratio)
    return np.asarray(z > ez + OUTLIER_Z * np.sqrt(var) + OUTLIER_ADD * top)


def _score_dispersion(c: np.ndarray, n_expected: np.ndarray, bins: np.ndarray,
                      ratio: np.ndarray, w: np.ndarray) -> float:
    """Pearson's ratio for the detector's weighted sum of slot records, shrunk toward 1.

    Its variance over the slots against the Poisson variance says how much of its evidence
    a slot really carries (clusters of copies of a very negative text weigh heavily).
    """
    z, ez, var, _ = _weighted(c, n_expected, bins, ratio)
    ok = var > 1e-12
    r2 = (z[ok] - ez[ok]) ** 2 / var[ok]
    phi = ((w[ok] * r2).sum() + DISPERSION_PRIOR_SLOTS) / (w[ok].sum() + DISPERSION_PRIOR_SLOTS)
    return float(min(max(phi, 1.0), MAX_DISPERSION))


def _observed(seen: np.ndarray, end_slot: int, *, records: float) -> np.ndarray:
    """Slots from the first seen one to ``end_slot``, less the gaps that are outages.

    A gap is an outage when it is at least OUTAGE_SLOTS long and the stream's average rate
    (``records`` over the span) would have put OUTAGE_RECORDS records in it: on a busy
    stream an hour without a record is a dead feed, on a feed of a few headlines a day it is
    an ordinary quiet spell, which is exposure like any other.
    """
    if len(seen) == 0:
        return seen
    per_slot = records / max(1, end_slot - int(seen[0]))
    outage = max(OUTAGE_SLOTS, math.ceil(OUTAGE_RECORDS / max(per_slot, 1e-12)))
    bounds = np.append(seen, end_slot)
    parts = [np.arange(a, b if b - a <= outage else a + 1, dtype=np.int64)
             for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]
    return np.concatenate(parts)


def _outliers(x: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return x > expected + OUTLIER_Z * np.sqrt(expected) + OUTLIER_ADD


def _dispersion(x: np.ndarray, expected: np.ndarray, w: np.ndarray) -> float:
    """Pearson's variance-to-mean ratio of slot negatives, shrunk toward 1, never below 1."""
    ok = expected > 1e-9
    r2 = (x[ok] - expected[ok]) ** 2 / expected[ok]
    phi = ((w[ok] * r2).sum() + DISPERSION_PRIOR_SLOTS) / (w[ok].sum() + DISPERSION_PRIOR_SLOTS)
    return float(min(max(phi, 1.0), MAX_DISPERSION))


def _tod(n: np.ndarray, hours: np.ndarray, w: np.ndarray) -> np.ndarray:
    """24 rate factors by hour of day from records ``n`` per slot, slots weighted by ``w``."""
    total = w.sum()
    mean = (w * n).sum() / total if total > 0 else 0.0
    if mean <= 0:
        return np.ones(HOURS)
    counts = np.bincount(hours, weights=w * n, minlength=HOURS)
    expected = np.bincount(hours, weights=w, minlength=HOURS) * mean
    return (counts + TOD_PRIOR_RECORDS) / (expected + TOD_PRIOR_RECORDS)


def fit_market(history: EventHistory, market: Key, *, end_slot: int, soft: bool,
               half_life_s: float = DEFAULT_HALF_LIFE_S,
               min_slots: int = MIN_HISTORY_SLOTS, scores: bool = False) -> MarketFit | None:
    """Fit the market from slots before ``end_slot``; None with too little history."""
    start = end_slot - history.history_slots
    slots = history.coarse.get(market, {})
    seen = np.array(sorted(s for s, acc in slots.items() if start <= s < end_slot and acc[0]),
                    dtype=np.int64)
    records = float(sum(slots[s][0] for s in seen.tolist()))
    observed = _observed(seen, end_slot, records=records)
    if len(observed) < min_slots:
        return None
    hours = _hours(observed, history.slot_s)
    weekend = _weekend(observed * history.slot_s)
    recency = 0.5 ** ((end_slot - 1 - observed) * history.slot_s / half_life_s)
    n, x, c = _sums(history, market, observed, soft=soft)
    keep = np.ones(len(observed), dtype=bool)
    for _ in range(2):
        w = recency * keep
        tod = _tod(n, hours, w)
        # The weekly shape changes slowly: the whole history counts, not the last days.
        week = _week(n, tod[hours], weekend, keep.astype(float))
        weight = tod[hours] * week[weekend]
        rate = (w * n).sum() / (w * weight).sum()
        share = ((w * x).sum() + SHARE_PRIOR_RECORDS / 3) / ((w * n).sum() + SHARE_PRIOR_RECORDS)
        keep = ~_fit_outliers(x, c, rate * weight, float(share), scores=scores, w=w,
                              prior_bins=EVEN_BINS)
    w = recency * keep
    week_t = (float(week[0]), float(week[1]))
    bins = _bin_shares(c, w, EVEN_BINS)
    profile = _profile(c, w)
    ratio = _score_ratio(float(share), profile, bins)
    phi = (_score_dispersion(c, rate * weight, bins, ratio, w) if scores
           else _dispersion(x, rate * weight * share, w))
    base = Baseline(rate=float(rate), share=float(share), tod=tod, slots=len(observed),
                    excluded=int((~keep).sum()), dispersion=phi, week=week_t,
                    score_ratio=ratio)
    return MarketFit(observed=observed, hours=hours, factor=weight, recency=recency, tod=tod,
                     rate=float((w * n).sum() / w.sum()), share=float(share), baseline=base,
                     bins=bins, profile=profile)


def fit_series(history: EventHistory, key: Key, market: MarketFit, *, family_size: int,
               soft: bool, scores: bool = False) -> Baseline:
    """Fit one series against the market's observed slots, time of day and share."""
    n, x, c = _sums(history, key, market.observed, soft=soft)
    weight = market.factor
    prior_rate = market.rate / max(1, family_size)
    keep = np.ones(len(n), dtype=bool)
    for _ in range(2):
        w = market.recency * keep
        rate = ((w * n).sum() + RATE_PRIOR_RECORDS) / (
            (w * weight).sum() + RATE_PRIOR_RECORDS / max(prior_rate, 1e-9))
        share = ((w * x).sum() + SHARE_PRIOR_RECORDS * market.share) / (
            (w * n).sum() + SHARE_PRIOR_RECORDS)
        keep = ~_fit_outliers(x, c, rate * weight, float(share), scores=scores, w=w,
                              prior_bins=market.bins, profile=market.profile)
    w = market.recency * keep
    bins = _bin_shares(c, w, market.bins)
    ratio = _score_ratio(float(share), market.profile, bins)
    phi = (_score_dispersion(c, rate * weight, bins, ratio, w) if scores
           else _dispersion(x, rate * weight * share, w))
    return Baseline(rate=float(rate), share=float(share), tod=market.tod, slots=len(n),
                    excluded=int((~keep).sum()), dispersion=phi, week=market.baseline.week,
                    score_ratio=ratio)


def expected_per_minute(base: Baseline, *, ts: float, slot_s: float) -> float:
    """Expected negatives per minute at event time ``ts`` (for people and dashboards)."""
    hour = int((ts % 86_400) // 3_600)
    week = base.week[int(_weekend(np.array([ts]))[0])]
    return float(base.rate * base.tod[hour] * week * base.share * 60.0 / slot_s)

