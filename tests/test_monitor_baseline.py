"""Baselines: time of day, robustness to past bursts, thin series borrowing from the market."""

from __future__ import annotations

import numpy as np
import pytest

from sentimon.monitor.baseline import fit_market, fit_series
from sentimon.monitor.history import EventHistory

T0 = 1_767_571_200.0  # a midnight, UTC
MARKET = ("market", "")
BUSY, THIN = ("topic", "Busy"), ("topic", "Thin")


def history() -> EventHistory:
    return EventHistory(bucket_s=15, horizon_s=3600, slot_s=900, history_s=7 * 86400)


def add(h: EventHistory, ts: float, key: tuple[str, str], p: float) -> None:
    h.add(ts, [MARKET, key], p_negative=p, negative=p >= 0.5)


def day_night_stream(h: EventHistory, days: int = 3, *, thin_every: int = 0) -> None:
    """Busy topic: 240 records an hour by day (8-20 UTC), 24 by night; 20 % negative."""
    rng = np.random.default_rng(1)
    i = 0
    for d in range(days):
        for hour in range(24):
            n = 240 if 8 <= hour < 20 else 24
            for ts in np.sort(rng.uniform(0, 3600, n)):
                add(h, T0 + d * 86400 + hour * 3600 + ts, BUSY, 0.2)
                i += 1
                if thin_every and i % thin_every == 0:
                    add(h, T0 + d * 86400 + hour * 3600 + ts + 1, THIN, 0.9)


def test_rate_follows_the_time_of_day() -> None:
    h = history()
    day_night_stream(h)
    market = fit_market(h, MARKET, end_slot=h.baseline_end_slot(), soft=True)
    assert market is not None
    base = fit_series(h, BUSY, market, family_size=1, soft=True)
    noon = base.expected(np.array([int((T0 + 12 * 3600) / 15)]), bucket_s=15, slot_s=900)[0]
    night = base.expected(np.array([int((T0 + 2 * 3600) / 15)]), bucket_s=15, slot_s=900)[0]
    # 240 records an hour at 20 %: 48 negatives an hour, 0.2 per 15-second bucket.
    assert noon == pytest.approx(0.2, rel=0.15)
    assert night == pytest.approx(0.02, rel=0.3)
    assert base.share == pytest.approx(0.2, abs=0.01)


def test_a_past_burst_does_not_inflate_the_baseline() -> None:
    clean, burst = history(), history()
    day_night_stream(clean)
    day_night_stream(burst)
    for ts in np.linspace(T0 + 86400 + 10 * 3600, T0 + 86400 + 10 * 3600 + 600, 80):
        add(burst, float(ts), BUSY, 0.95)
    fits = []
    for h in (clean, burst):
        market = fit_market(h, MARKET, end_slot=h.baseline_end_slot(), soft=True)
        assert market is not None
        fits.append(fit_series(h, BUSY, market, family_size=1, soft=True))
    assert fits[1].excluded >= 1
    assert fits[1].share == pytest.approx(fits[0].share, abs=0.01)
    assert fits[1].rate == pytest.approx(fits[0].rate, rel=0.05)


def test_a_thin_series_borrows_the_market_share() -> None:
    h = history()
    day_night_stream(h, thin_every=1600)  # a handful of very negative records
    market = fit_market(h, MARKET, end_slot=h.baseline_end_slot(), soft=True)
    assert market is not None
    thin = fit_series(h, THIN, market, family_size=2, soft=True)
    raw_share = 0.9
    assert market.share < thin.share < raw_share  # shrunk toward the market
    assert thin.rate > 0


def test_no_baseline_without_an_hour_of_history() -> None:
    h = history()
    add(h, T0, BUSY, 0.5)
    add(h, T0 + 1800, BUSY, 0.5)
    assert fit_market(h, MARKET, end_slot=h.baseline_end_slot(), soft=True) is None


def test_an_outage_lowers_no_rate() -> None:
    """Slots without any market record are not exposure: a dead stream is not a quiet one."""
    full, gap = history(), history()
    day_night_stream(full, days=2)
    rng = np.random.default_rng(1)
    for d in range(2):
        for hour in range(24):
            n = 240 if 8 <= hour < 20 else 24
            for ts in np.sort(rng.uniform(0, 3600, n)):
                if not (d == 0 and 9 <= hour < 15):  # six hours without data
                    add(gap, T0 + d * 86400 + hour * 3600 + ts, BUSY, 0.2)
    noon = np.array([int((T0 + 86400 + 12 * 3600) / 15)])
    expected = []
    for h in (full, gap):
        market = fit_market(h, MARKET, end_slot=h.baseline_end_slot(), soft=True)
        assert market is not None
        base = fit_series(h, BUSY, market, family_size=1, soft=True)
        expected.append(base.expected(noon, bucket_s=15, slot_s=900)[0])
    assert expected[1] == pytest.approx(expected[0], rel=0.1)


def test_the_quiet_hours_of_a_sparse_feed_are_exposure() -> None:
    """A feed of a few headlines a day: the hours between them are quiet, not an outage, so
    the feed gets a baseline (at its true rate) after a day, as a busy one does."""
    h = history()
    rng = np.random.default_rng(4)
    for ts in np.sort(rng.uniform(T0, T0 + 3 * 86400, 12)):  # 4 a day
        add(h, float(ts), BUSY, 0.3)
    market = fit_market(h, MARKET, end_slot=h.baseline_end_slot(), soft=True, min_slots=96)
    assert market is not None
    assert len(market.observed) > 2 * 96
    per_day = market.rate * 96
    assert 2 < per_day < 8


@pytest.mark.parametrize(("copies", "low", "high"), [(1, 1.0, 1.25), (4, 3.0, 4.6)])
def test_dispersion_counts_clusters(copies: int, low: float, high: float) -> None:
    """Independent negatives give dispersion ~1; each arriving as 4 copies gives ~4."""
    h = history()
    rng = np.random.default_rng(2)
    for slot in range(3 * 96):
        start = T0 + slot * 900
        for ts in rng.uniform(0, 900, 40):
            add(h, start + ts, BUSY, 0.0)
        for ts in rng.uniform(0, 900, rng.poisson(6 / copies)):
            for c in range(copies):
                add(h, start + ts + c, BUSY, 1.0)
    market = fit_market(h, MARKET, end_slot=h.baseline_end_slot(), soft=True)
    assert market is not None
    base = fit_series(h, BUSY, market, family_size=1, soft=True)
    assert low <= base.dispersion <= high, base.dispersion


def test_weekends_get_their_own_level_once_the_history_holds_one() -> None:
    """60 records an hour on weekdays, 20 at weekends (T0 is a Monday)."""
    h = history()
    rng = np.random.default_rng(4)

    def fit(end_day: int) -> tuple[object, float, float]:
        market = fit_market(h, MARKET, end_slot=h.baseline_end_slot(), soft=True)
        assert market is not None
        base = fit_series(h, BUSY, market, family_size=1, soft=True)
        per_hour = [base.expected(np.arange(b, b + 240), bucket_s=15, slot_s=900).sum() / 0.2
                    for b in (int((T0 + d * 86400 + 12 * 3600) / 15) for d in (end_day, 5))]
        return base, per_hour[0], per_hour[1]

    for day in range(10):
        n = 20 if day in (5, 6) else 60
        for hour in range(24):
            for ts in np.sort(rng.uniform(0, 3600, n)):
                add(h, T0 + day * 86400 + hour * 3600 + ts, BUSY, 0.2)
        if day == 3:  # Monday to Thursday: no weekend seen, no weekend factor
            base, _, saturday = fit(4)
            assert base.week[1] == 1.0
            assert saturday == pytest.approx(60, rel=0.15)
    base, monday, saturday = fit(10)  # the next Thursday, after a weekend
    assert monday == pytest.approx(60, rel=0.15)
    assert saturday == pytest.approx(20, rel=0.25)


def _scored_stream(h: EventHistory, *, days: int = 2, confident_every: int = 50) -> None:
    """A busy topic of mostly confident non-negatives; one record in 50 confidently negative."""
    rng = np.random.default_rng(6)
    for i, ts in enumerate(np.sort(rng.uniform(0, days * 86400, days * 96 * 60))):
        add(h, T0 + float(ts), BUSY, 0.95 if i % confident_every == 0 else 0.03)


def test_score_ratio_weighs_the_deciles_a_surge_fills_and_the_baseline_does_not() -> None:
    h = history()
    _scored_stream(h)
    market = fit_market(h, MARKET, end_slot=h.baseline_end_slot(), soft=True, scores=True)
    assert market is not None
    base = fit_series(h, BUSY, market, family_size=1, soft=True, scores=True)
    assert base.score_ratio is not None
    # The surge profile is the confident negatives: all in the top decile (less pseudo-records).
    assert market.profile[-1] > 0.9
    # share (~0.049) * profile (~1) / bins (~0.02): a confident negative weighs ~2.4 records.
    assert base.score_ratio[-1] == pytest.approx(base.share / 0.02, rel=0.1)
    assert base.score_ratio[0] < 0.01
    # Independent records: the weighted statistic varies like Poisson.
    assert 1.0 <= base.dispersion <= 1.3


def test_a_past_burst_of_confident_negatives_does_not_dull_the_scores() -> None:
    """A burst of confident negatives would double the top decile's share if counted; the
    outlier tests leave its slot out, so the next burst weighs as much."""
    clean, burst = history(), history()
    _scored_stream(clean)
    _scored_stream(burst)
    for ts in np.linspace(T0 + 86400 + 10 * 3600, T0 + 86400 + 10 * 3600 + 600, 30):
        add(burst, float(ts), BUSY, 0.95)
    ratios = []
    for h in (clean, burst):
        market = fit_market(h, MARKET, end_slot=h.baseline_end_slot(), soft=True, scores=True)
        assert market is not None
        base = fit_series(h, BUSY, market, family_size=1, soft=True, scores=True)
        assert base.score_ratio is not None
        ratios.append(base.score_ratio[-1])
        if h is burst:
            assert base.excluded >= 1
    assert ratios[1] == pytest.approx(ratios[0], rel=0.1)
