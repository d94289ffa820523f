"""The spike statistic: is the short-window negative share unusually high for its volume?

With ``p_short`` the negative share of the ``n_short`` records in the short window and
``p_base`` the negative share of the baseline window without the short window,

    z = (p_short - p_base) / sqrt(p_base * (1 - p_base) / n_short)

is the one-sample z statistic of a proportion: how many standard errors the short share
stands above what the baseline predicts for that many records. 5 negatives out of 6 is a
high share but few records; 300 out of 600 against a 20 % baseline is 18 standard errors.

``p_base`` is shrunk toward a prior share with ``prior_weight`` pseudo-records,
``(neg_base + w * prior) / (n_base + w)``: with an empty baseline it is the prior, with a
large one it is the plain baseline share, and it is never exactly 0 or 1 (which would make
the denominator vanish on a handful of baseline records).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Pseudo-records of the prior in the baseline share.
PRIOR_WEIGHT = 10.0
#: Prior negative share when nothing is known (three classes).
UNINFORMED_PRIOR = 1.0 / 3.0


@dataclass(frozen=True, slots=True)
class SpikeRule:
    """Thresholds for a spike (config ``monitor.spike_z``, ``min_volume``, ``min_lift``)."""

    spike_z: float = 3.0
    min_volume: int = 30
    min_lift: float = 0.15
    # Cold start: with too little history there is no baseline to stand above, only the
    # prior, and a topic that is simply more negative than the market would "spike".
    min_baseline_volume: int = 30


@dataclass(frozen=True, slots=True)
class SpikeResult:
    z: float
    p_short: float | None
    p_base: float
    lift: float
    spike: bool


def smoothed_share(negative: int, n: int, *, prior: float,
                   prior_weight: float = PRIOR_WEIGHT) -> float:
    """Negative share shrunk toward ``prior`` (which must lie strictly between 0 and 1)."""
    return (negative + prior_weight * prior) / (n + prior_weight)


def spike_z(*, n_short: int, neg_short: int, p_base: float) -> float:
    """z of ``neg_short / n_short`` against ``p_base``; 0 when the short window is empty."""
    if n_short <= 0:
        return 0.0
    if not 0.0 < p_base < 1.0:
        raise ValueError(f"p_base must lie strictly between 0 and 1, got {p_base}")
    p_short = neg_short / n_short
    return (p_short - p_base) / math.sqrt(p_base * (1.0 - p_base) / n_short)


def evaluate(*, n_short: int, neg_short: int, n_base: int, neg_base: int, prior: float,
             rule: SpikeRule, prior_weight: float = PRIOR_WEIGHT) -> SpikeResult:
    """z, lift and the spike flag of one series (topic, ticker or market)."""
    p_base = smoothed_share(neg_base, n_base, prior=prior, prior_weight=prior_weight)
    z = spike_z(n_short=n_short, neg_short=neg_short, p_base=p_base)
    p_short = neg_short / n_short if n_short else None
    lift = (p_short - p_base) if p_short is not None else 0.0
    spike = (z >= rule.spike_z and n_short >= rule.min_volume and lift >= rule.min_lift
             and n_base >= rule.min_baseline_volume)
    return SpikeResult(z=z, p_short=p_short, p_base=p_base, lift=lift, spike=spike)
