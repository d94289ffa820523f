"""The oracle: the best any detector could do on a backtest's injected bursts.

For an injected burst the truth is known: the topic's negatives arrive at a baseline rate
``mu0`` per bucket (its average at that hour of day on the clean stream) and, during a burst,
at ``mu1 = mu0 + negatives injected per bucket``. A CUSUM with exactly these rates is the
optimal detector for that change (Lorden 1971; Moustakides 1986). Its threshold is set,
by simulating its own null (Poisson counts at ``mu0``), to the same false-alarm rate per
series that the monitor's detector is given, so recall and delay can be read as a ratio:
how much of the signal the monitor uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sentimon.monitor.records import ScoredRecord
from sentimon.monitor.scenario import DAY, Burst

#: mu0 is floored here: an hour without a single negative must not make a negative infinite
#: evidence.
MU_FLOOR = 1e-4


@dataclass(frozen=True)
class Oracle:
    """A known-rate CUSUM for one topic, on buckets of ``bucket_s`` from ``start``."""

    start: float
    bucket_s: float
    mu0: np.ndarray  # baseline negatives per bucket, one day's worth (by bucket of day)
    extra: float  # negatives a burst adds per bucket
    threshold: float

    def path(self, negatives: np.ndarray, *, reset: bool = True) -> np.ndarray:
        """CUSUM over buckets (counts from :func:`negatives_per_bucket`), reset on alarm
        unless ``reset`` is False."""
        mu0 = self._mu0_for(len(negatives))
        llr = negatives * np.log((mu0 + self.extra) / mu0) - self.extra
        out = np.empty(len(llr))
        s = 0.0
        for i, v in enumerate(llr.tolist()):
            s = max(0.0, s + v)
            out[i] = s
            if reset and s >= self.threshold:
                s = 0.0
        return out

    def alarms(self, negatives: np.ndarray) -> list[float]:
        """Event times (bucket ends) at which the oracle alarms."""
        return _alarm_times(self.path(negatives), self.threshold, start=self.start,
                            bucket_s=self.bucket_s)

    def alerts(self, negatives: np.ndarray, *, for_s: float, keep_s: float) -> list[float]:
        """Times the oracle's alerts fire, through the rule's ``for:`` and ``keep_firing_for:``.

        The CUSUM is not reset here and is evaluated at every bucket end, as the monitor's
        evidence is: an alert needs the statistic above the threshold for ``for_s``, so a
        crossing that falls back at once (one negative on a topic that rarely has one, under
        a large expected burst) is no alert, for the oracle as for the monitor.
        """
        return rule_alerts(self.path(negatives, reset=False), self.threshold, start=self.start,
                           bucket_s=self.bucket_s, for_s=for_s, keep_s=keep_s)

    def _mu0_for(self, n: int) -> np.ndarray:
        return _by_bucket_of_day(self.mu0, start=self.start, bucket_s=self.bucket_s, n=n)


@dataclass(frozen=True)
class MixtureOracle:
    """The oracle without the burst's size: it knows ``mu0`` but not how much a burst adds.

    The monitor's own statistic (a Shiryaev-Roberts mixture over ``rises``, multiples of
    ``mu0``) on the true baseline and the negative labels, thresholded by simulation at the
    same false-alarm rate as :class:`Oracle`. Between the two, the price of not knowing the
    size; between this and the monitor, the price of estimating the baseline (and of a
    bound-based threshold, see :func:`calibrate_mixture`).
    """

    start: float
    bucket_s: float
    mu0: np.ndarray
    rises: tuple[float, ...]
    threshold: float
    horizon: int = 240  # buckets a change may lie back (the monitor's hour of 15 s buckets)

    def path(self, negatives: np.ndarray, *, reset: bool = True) -> np.ndarray:
        """log R over buckets, reset on alarm; with ``reset`` False, the monitor's form.

        Unreset, a Shiryaev-Roberts statistic grows without bound (``E[R_n] = n`` under no
        change), so the monitor sums only the change points of the last ``horizon`` buckets
        (``monitor.detection_horizon_s``); so does this path then.
        """
        mu0 = _by_bucket_of_day(self.mu0, start=self.start, bucket_s=self.bucket_s,
                                n=len(negatives))
        rho = np.asarray(self.rises, dtype=np.float64)
        llr = np.outer(negatives, np.log(rho)) - np.outer(mu0, rho - 1.0)
        if not reset:
            return _window_log_sr(llr, self.horizon)
        factors = np.exp(llr)
        out = np.empty(len(negatives))
        r = np.zeros(len(rho))
        for i, f in enumerate(factors):
            r = (1.0 + r) * f
            out[i] = math.log(r.mean())
            if out[i] >= self.threshold:
                r[:] = 0.0
        return out

    def alarms(self, negatives: np.ndarray) -> list[float]:
        """Event times (bucket ends) at which it alarms."""
        return _alarm_times(self.path(negatives), self.threshold, start=self.start,
                            bucket_s=self.bucket_s)

    def alerts(self, negatives: np.ndarray, *, for_s: float, keep_s: float) -> list[float]:
        """Times its alerts fire through the rule, as :meth:`Oracle.alerts`."""
        return rule_alerts(self.path(negatives, reset=False), self.threshold, start=self.start,
                           bucket_s=self.bucket_s, for_s=for_s, keep_s=keep_s)


def _window_log_sr(llr: np.ndarray, horizon: int) -> np.ndarray:
    """Window-limited log R per bucket for ``llr`` (buckets x multiples), equal weights.

    With ``L`` the cumulative log-likelihood ratio, the term of change point ``tau`` at
    bucket ``B`` is ``exp(L_B - L_(tau-1))``, so log R_B is ``L_B`` plus a log-sum-exp of
    ``-L`` over the window: computed in logs, it cannot overflow.
    """
    n, k = llr.shape
    cum = np.vstack([np.zeros((1, k)), np.cumsum(llr, axis=0)])  # L_(-1) = 0, then L_0..
    padded = np.vstack([np.full((horizon - 1, k), -np.inf), -cum[:-1]])
    out = np.empty(n)
    step = 2048  # rows at a time: the windows are a (rows x horizon x multiples) array
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        win = np.lib.stride_tricks.sliding_window_view(padded[lo:hi + horizon - 1], horizon,
                                                       axis=0)  # (rows, k, horizon)
        top = win.max(axis=2)
        per_rise = cum[lo + 1:hi + 1] + top + np.log(np.exp(win - top[..., None]).sum(axis=2))
        peak = per_rise.max(axis=1)
        out[lo:hi] = peak + np.log(np.exp(per_rise - peak[:, None]).sum(axis=1)) - math.log(k)
    return out


def rule_alerts(path: np.ndarray, threshold: float, *, start: float, bucket_s: float,
                for_s: float, keep_s: float) -> list[float]:
    """Times an alert on ``path >= threshold`` (evaluated at bucket ends) fires through the
    rule's ``for:`` and ``keep_firing_for:``, as the backtest applies them to the monitor."""
    from sentimon.monitor.backtest import AlertRule

    rule, fired = AlertRule(for_s, keep_s), []
    for i, s in enumerate(path.tolist()):
        before = rule.fired
        rule.step(start + (i + 1) * bucket_s, s >= threshold)
        if before is None and rule.fired is not None:
            fired.append(rule.fired)
    return fired


def _alarm_times(path: np.ndarray, threshold: float, *, start: float,
                 bucket_s: float) -> list[float]:
    """Ends of the buckets where ``path`` reaches ``threshold``."""
    return [start + (int(i) + 1) * bucket_s for i in np.flatnonzero(path >= threshold)]


def _by_bucket_of_day(mu0: np.ndarray, *, start: float, bucket_s: float, n: int) -> np.ndarray:
    """``n`` buckets of a per-bucket-of-day profile, from the bucket holding ``start``."""
    offset = round((start % DAY) / bucket_s)
    return mu0[(offset + np.arange(n)) % len(mu0)]


def negatives_per_bucket(records: Sequence[ScoredRecord], topic: str, *, start: float,
                         end: float, bucket_s: float) -> np.ndarray:
    """Negative labels of ``topic`` per bucket over [start, end)."""
    n = max(1, math.ceil((end - start) / bucket_s))
    idx = [int((r.ts - start) // bucket_s) for r in records
           if r.topic == topic and r.sentiment == "negative" and start <= r.ts < end]
    return np.bincount(np.array(idx, dtype=np.int64), minlength=n)[:n].astype(float)


def baseline_rates(clean: Sequence[ScoredRecord], topic: str, *, bucket_s: float) -> np.ndarray:
    """The topic's true negatives per bucket by bucket of day: its hourly mean on ``clean``."""
    first, last = min(r.ts for r in clean), max(r.ts for r in clean)
    days = max((last - first) / DAY, 1e-9)
    hours = [int((r.ts % DAY) // 3600) for r in clean
             if r.topic == topic and r.sentiment == "negative"]
    per_hour = np.bincount(np.array(hours, dtype=np.int64), minlength=24) / days
    per_bucket = np.repeat(per_hour * bucket_s / 3600.0, int(3600 / bucket_s))
    return np.maximum(per_bucket, MU_FLOOR)


def calibrate(mu0: np.ndarray, extra: float, *, alarms_per_day: float, days: int = 600,
              seed: int = 11) -> float:
    """The CUSUM threshold with ``alarms_per_day`` false alarms under Poisson(``mu0``).

    ``days`` independent simulated days (each starting at 0, reset after an alarm); the
    threshold is found by bisection to 0.01 nats.
    """
    rng = np.random.default_rng(seed)
    counts = rng.poisson(np.broadcast_to(mu0, (days, len(mu0))))
    llr = counts * np.log((mu0 + extra) / mu0) - extra

    def rate(h: float) -> float:
        s = np.zeros(days)
        hits = 0
        for t in range(llr.shape[1]):
            s = np.maximum(0.0, s + llr[:, t])
            over = s >= h
            n = int(over.sum())
            if n:
                hits += n
                s[over] = 0.0
        return hits / days

    return _lowest_threshold(rate, alarms_per_day, start=5.0)


def calibrate_mixture(mu0: np.ndarray, rises: Sequence[float], *, alarms_per_day: float,
                      days: int = 300, seed: int = 11) -> float:
    """The :class:`MixtureOracle` threshold with ``alarms_per_day`` false alarms under Poisson(``mu0``).

    As :func:`calibrate`: ``days`` simulated days from a fresh start, reset after an alarm,
    bisection to 0.01 nats. (The monitor instead takes ``log A`` from the Shiryaev-Roberts
    bound, which needs no simulation and holds for any baseline, at the price of this slack.)
    """
    rng = np.random.default_rng(seed)
    counts = rng.poisson(np.broadcast_to(mu0, (days, len(mu0))))
    rho = np.asarray(rises, dtype=np.float64)
    log_rho = np.log(rho)

    def rate(h: float) -> float:
        r = np.zeros((days, len(rho)))
        hits = 0
        for t in range(counts.shape[1]):
            r = (1.0 + r) * np.exp(counts[:, t, None] * log_rho - mu0[t] * (rho - 1.0))
            over = np.log(r.mean(axis=1)) >= h
            n = int(over.sum())
            if n:
                hits += n
                r[over] = 0.0
        return hits / days

    return _lowest_threshold(rate, alarms_per_day, start=10.0)


def _lowest_threshold(rate: Callable[[float], float], alarms_per_day: float, *,
                      start: float) -> float:
    """The lowest threshold (to 0.01 nats) whose simulated ``rate`` is at most ``alarms_per_day``."""
    lo, hi = 0.0, start
    while rate(hi) > alarms_per_day and hi < 80:
        lo, hi = hi, hi * 2
    while hi - lo > 0.01:
        mid = (lo + hi) / 2
        if rate(mid) > alarms_per_day:
            lo = mid
        else:
            hi = mid
    return hi


def build(clean: Sequence[ScoredRecord], bursts: Sequence[Burst], *, topic: str, start: float,
          bucket_s: float, alarms_per_day: float) -> Oracle:
    """The oracle for ``topic``'s bursts, at ``alarms_per_day`` false alarms on that series."""
    mu0 = baseline_rates(clean, topic, bucket_s=bucket_s)
    duration = float(np.mean([b.end - b.start for b in bursts])) if bursts else bucket_s
    negatives = float(np.mean([b.negatives for b in bursts])) if bursts else 1.0
    extra = max(negatives, 1e-3) / (duration / bucket_s)
    threshold = calibrate(mu0, extra, alarms_per_day=alarms_per_day)
    return Oracle(start=start, bucket_s=bucket_s, mu0=mu0, extra=extra, threshold=threshold)

