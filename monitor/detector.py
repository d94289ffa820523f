"""The change detector: a mixture Shiryaev-Roberts statistic on expected negatives.

Per series (a topic, a watchlist ticker, the market) and per bucket ``b`` of event time the
monitor knows ``x_b``, the negatives observed (the sum of the model's P(negative) over the
bucket's records, or their count with argmax labels), and ``mu_b``, the negatives its
baseline expects in that bucket at that time of day (:mod:`sentimon.monitor.baseline`). A
surge multiplies the expected negatives by some ``rho > 1`` from an unknown bucket on. For
one ``rho`` the Poisson log-likelihood ratio of bucket ``b`` is

    l_b(rho) = x_b log(rho) - mu_b (rho - 1)

(with the default ``scores`` evidence, ``x_b log(rho)`` becomes the weighted count of the
bucket's records by P(negative) decile of :func:`score_gain`, the same likelihood ratio for
records whose P(negative) is informative beyond its mean) and the Shiryaev-Roberts
statistic sums the likelihood ratio of "the change began at tau" over every candidate
``tau`` in the detection horizon, mixed over a few multiples ``rho`` with equal weights (a
surge of unknown size):

    R_B = sum_rho w_rho sum_tau exp(sum_{b=tau..B} l_b(rho))

Why this statistic: under no change ``R_n - n`` is a martingale when the ``l_b`` are true
log-likelihood ratios, so the expected number of buckets to a false alarm at threshold
``A`` is at least ``A`` (Pollak 1985; Polunchenko & Tartakovsky 2010), for every rate and
share, with no simulation. That turns **false alerts per day** into a threshold directly:
``A = K * buckets_per_day / F`` for ``K`` series sharing a budget of ``F`` a day. Soft counts
only help: for ``x = sum p_i`` with ``p_i`` in [0, 1], ``rho**p <= 1 + p (rho - 1)`` makes
``E[exp(l)] <= 1`` (a supermartingale), so the bound still holds. Its detection delay
matches CUSUM's, ``log(A) / KL`` per bucket (Lorden 1971; Pollak 1985).

The sum runs over the last ``horizon`` buckets only (window-limited, Lai 1998): the figures
are then a function of the records in the windows alone, whatever their order, and a
restart rebuilds them exactly; a change older than the horizon is the baseline's business.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Multiples of the expected negatives that the mixture looks for.
RISE_MULTIPLES: tuple[float, ...] = (1.5, 2.0, 4.0, 8.0, 16.0, 32.0)
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Detection:
    """The detector's verdict for one series at the watermark."""

    evidence: float  # log R (natural log): how strongly the data favour a surge
    threshold: float  # log A, from the false-alert budget
    expected: float  # negatives the baseline expects over the short window
    observed: float  # negatives observed over the short window
    rise: float  # the multiple rho that carries most of the evidence
    has_baseline: bool = True  # False while the series has no history (cold start)

    @property
    def alarm(self) -> bool:
        return self.has_baseline and self.evidence >= self.threshold


def threshold(*, false_alerts_per_day: float, n_series: int, bucket_s: float) -> float:
    """log A for ``n_series`` series sharing ``false_alerts_per_day`` false alerts a day.

    Each series then gets an average run length of ``n_series / false_alerts_per_day`` days
    between false alarms, i.e. ``A`` buckets.
    """
    if false_alerts_per_day <= 0:
        raise ValueError("false_alerts_per_day must be positive")
    arl_buckets = max(1, n_series) * (SECONDS_PER_DAY / bucket_s) / false_alerts_per_day
    return math.log(max(arl_buckets, 1.0))


def log_sr(x: np.ndarray, mu: np.ndarray, *, y: np.ndarray | None = None,
           nu: np.ndarray | None = None, counts: np.ndarray | None = None,
           ratio: np.ndarray | None = None, phi: float = 1.0,
           rises: Sequence[float] = RISE_MULTIPLES) -> tuple[float, float]:
    """(log R at the last bucket, the multiple with the most evidence) for buckets in order.

    ``x`` and ``mu`` are observed and expected negatives per bucket, oldest first; the
    change may have begun at any of them. With ``y`` and ``nu`` (observed and expected
    other records), the expectation from each candidate start on is scaled up by how far
    the other records exceed theirs (:func:`volume_factor`): a surge of *all* records (a
    busy market hour the baseline has not seen yet, a bot) is not a surge of negatives.

    With ``counts`` (records per P(negative) bin in each bucket) and ``ratio`` (per bin,
    the surge's records over the baseline's per unit of negative share), the evidence is
    the marked-Poisson likelihood ratio of :func:`score_gain` instead of ``x log(rho)``.
    ``phi`` (the dispersion) divides every log-likelihood ratio (quasi-likelihood).
    """
    if len(x) == 0:
        return -math.inf, rises[0]
    # Suffix sums: everything from a candidate change point tau to the last bucket.
    ms = np.cumsum(mu[::-1])
    if y is not None and nu is not None:
        ms = ms * volume_factor(np.cumsum(y[::-1]), np.cumsum(nu[::-1]))
    rho = np.asarray(rises, dtype=np.float64)
    # One column per multiple: the log-likelihood ratio of "the change began at tau", per tau.
    if counts is not None and ratio is not None:
        gain = np.cumsum(counts[::-1], axis=0) @ score_gain(rho[None, :], ratio[:, None])
    else:
        gain = np.cumsum(x[::-1])[:, None] * np.log(rho)[None, :]
    suffix = (gain - ms[:, None] * (rho - 1.0)[None, :]) / phi
    top = suffix.max(axis=0)
    terms = top + np.log(np.exp(suffix - top).sum(axis=0)) - math.log(len(rises))
    best = int(terms.argmax())
    peak = float(terms[best])
    return peak + math.log(float(np.exp(terms - peak).sum())), rises[best]


def score_gain(rho: float | np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Log-likelihood gain of one record in each P(negative) bin when negatives rise ``rho``-fold.

    The baseline expects ``m_k`` records in bin ``k`` and ``M = sum_k m_k p_k`` negatives;
    a surge adds ``(rho - 1) M`` records shaped like the surge profile ``q``. Per bucket the
    Poisson log-likelihood ratio is then ``sum_k c_k log(1 + (rho - 1) M q_k / m_k) -
    (rho - 1) M``, and ``M q_k / m_k = share q_k / s_k`` is the bin's ``ratio``: a record
    where the baseline puts few records and surges put many (a confident negative in a
    topic that rarely has one) weighs most. Under no change ``E[exp(.)] = 1`` exactly, so
    the false-alarm bound is kept.
    """
    return np.log1p((rho - 1.0) * ratio)


#: Pseudo-records that keep the volume factor near 1 on thin series.
VOLUME_PSEUDO = 5.0


def volume_factor(others: np.ndarray, expected_others: np.ndarray) -> np.ndarray:
    """How many times more non-negative records came than expected (never below 1).

    Scaling the expected negatives by it judges negatives against the records that did
    come: the conditional (binomial) view when volume is up, the Poisson view otherwise.
    It only ever lowers the statistic, so the false-alarm bound still holds.
    """
    return np.maximum(1.0, (others + VOLUME_PSEUDO) / (expected_others + VOLUME_PSEUDO))
