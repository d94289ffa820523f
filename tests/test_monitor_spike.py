"""The spike statistic: z of the short-window negative share against the baseline share."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentimon.monitor.spike import (
    PRIOR_WEIGHT,
    SpikeRule,
    evaluate,
    smoothed_share,
    spike_z,
)

RULE = SpikeRule(spike_z=3.0, min_volume=30, min_lift=0.15)
# A large baseline with a 20 % negative share: the prior barely moves it.
BASE_N, BASE_NEG = 100_000, 20_000


def textbook_z(k: int, n: int, p: float) -> float:
    return (k / n - p) / math.sqrt(p * (1 - p) / n)


def test_five_of_six_is_not_a_spike() -> None:
    res = evaluate(n_short=6, neg_short=5, n_base=BASE_N, neg_base=BASE_NEG, prior=1 / 3,
                   rule=RULE)
    # The share is high and so is z (3.88), but six records are no evidence of a spike.
    assert res.z == pytest.approx(textbook_z(5, 6, 0.2), abs=0.01)
    assert res.z == pytest.approx(3.876, abs=0.01)
    assert res.lift == pytest.approx(5 / 6 - 0.2, abs=1e-3)
    assert res.spike is False


def test_three_hundred_of_six_hundred_against_twenty_percent_is_a_spike() -> None:
    res = evaluate(n_short=600, neg_short=300, n_base=BASE_N, neg_base=BASE_NEG, prior=1 / 3,
                   rule=RULE)
    assert res.z == pytest.approx(18.37, abs=0.02)
    assert res.lift == pytest.approx(0.30, abs=1e-3)
    assert res.spike is True


def test_high_volume_at_baseline_share_is_not_a_spike() -> None:
    res = evaluate(n_short=600, neg_short=120, n_base=BASE_N, neg_base=BASE_NEG, prior=1 / 3,
                   rule=RULE)
    assert abs(res.z) < 0.1
    assert res.spike is False


def test_small_lift_with_huge_volume_is_not_a_spike() -> None:
    # 26 % against 20 % on 10,000 records: z is large (15) but the lift (0.06) is below 0.15.
    res = evaluate(n_short=10_000, neg_short=2_600, n_base=BASE_N, neg_base=BASE_NEG,
                   prior=1 / 3, rule=RULE)
    assert res.z > 10
    assert res.spike is False


def test_each_threshold_is_inclusive() -> None:
    # Exactly at every threshold: a spike.
    z_at = textbook_z(15, 30, 0.2)
    rule = SpikeRule(spike_z=z_at - 1e-6, min_volume=30, min_lift=0.3 - 1e-3)
    res = evaluate(n_short=30, neg_short=15, n_base=BASE_N, neg_base=BASE_NEG, prior=0.2,
                   rule=rule)
    assert res.spike is True
    one_short = evaluate(n_short=29, neg_short=15, n_base=BASE_N, neg_base=BASE_NEG, prior=0.2,
                         rule=rule)
    assert one_short.spike is False


def test_empty_baseline_uses_the_prior() -> None:
    rule = SpikeRule(spike_z=3.0, min_volume=30, min_lift=0.15, min_baseline_volume=0)
    res = evaluate(n_short=40, neg_short=30, n_base=0, neg_base=0, prior=0.25, rule=rule)
    assert res.p_base == pytest.approx(0.25)
    assert res.z == pytest.approx(textbook_z(30, 40, 0.25))
    assert res.spike is True


def test_cold_start_without_baseline_history_is_not_a_spike() -> None:
    for n_base, expected in ((0, False), (29, False), (30, True)):
        res = evaluate(n_short=40, neg_short=30, n_base=n_base, neg_base=n_base // 5, prior=0.2,
                       rule=RULE)
        assert res.z > 3 and res.lift > 0.15
        assert res.spike is expected, n_base


def test_tiny_all_negative_baseline_keeps_a_finite_z() -> None:
    # One negative baseline record must not make p_base 1 (division by zero).
    res = evaluate(n_short=50, neg_short=50, n_base=1, neg_base=1, prior=0.2, rule=RULE)
    assert res.p_base == pytest.approx((1 + PRIOR_WEIGHT * 0.2) / (1 + PRIOR_WEIGHT))
    assert math.isfinite(res.z)


def test_empty_short_window_is_zero() -> None:
    assert spike_z(n_short=0, neg_short=0, p_base=0.2) == 0.0
    res = evaluate(n_short=0, neg_short=0, n_base=10, neg_base=2, prior=0.2, rule=RULE)
    assert res.z == 0.0 and res.p_short is None and res.spike is False


def test_falling_share_gives_negative_z() -> None:
    assert spike_z(n_short=100, neg_short=5, p_base=0.2) < -3


def test_p_base_must_be_inside_the_unit_interval() -> None:
    with pytest.raises(ValueError, match="strictly between"):
        spike_z(n_short=10, neg_short=1, p_base=0.0)


@given(
    n_base=st.integers(0, 10**6),
    frac=st.floats(0, 1),
    prior=st.floats(0.01, 0.99),
)
def test_smoothed_share_stays_strictly_inside(n_base: int, frac: float, prior: float) -> None:
    p = smoothed_share(int(n_base * frac), n_base, prior=prior)
    assert 0 < p < 1


@given(k=st.integers(0, 500), extra=st.integers(0, 500), p=st.floats(0.05, 0.95))
def test_z_grows_with_negatives(k: int, extra: int, p: float) -> None:
    n = k + extra + 1
    assert spike_z(n_short=n, neg_short=min(k + 1, n), p_base=p) > spike_z(
        n_short=n, neg_short=k, p_base=p)
