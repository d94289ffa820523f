"""Sliding event-time windows: bucket rings with running sums."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentimon.monitor.windows import Counts, SlidingWindows

T0 = 1_700_000_000.0  # with 1 s buckets, whole seconds are bucket edges
K = ("topic", "Macro")


def windows(short: float = 60, baseline: float = 600) -> SlidingWindows:
    # 60 s short window -> 1 s buckets; 600 s baseline -> 600 buckets.
    return SlidingWindows(short_window_s=short, baseline_window_s=baseline)


def add(w: SlidingWindows, ts: float, *, neg: bool = False, pos: bool = False,
        score: float = 0.0, key: tuple[str, str] = K) -> bool:
    return w.add(ts, [key], negative=neg, positive=pos, score=score)


def test_counts_short_and_baseline_without_short() -> None:
    w = windows()
    add(w, T0, neg=True, score=-0.5)  # 100 s before the end: baseline only
    add(w, T0 + 30, pos=True, score=0.75)
    add(w, T0 + 100, neg=True, score=-1.0)  # watermark
    add(w, T0 + 100.5, score=0.25)  # same bucket as the watermark
    short, base = w.figures(K)
    assert short == Counts(n=2, negative=1, positive=0, score_units=-750_000)
    assert base == Counts(n=2, negative=1, positive=1, score_units=250_000)
    assert short.negative_share == 0.5
    assert short.mean_score == pytest.approx(-0.375)
    assert base.positive_share == 0.5
    assert w.watermark == T0 + 100.5


def test_short_window_edge_is_sixty_buckets() -> None:
    w = windows()
    add(w, T0 + 100)  # bucket 100 is the watermark; short = buckets 41..100
    add(w, T0 + 41)
    add(w, T0 + 40.99)
    short, base = w.figures(K)
    assert (short.n, base.n) == (2, 1)


def test_records_leave_the_short_window_then_the_baseline() -> None:
    w = windows()
    add(w, T0, neg=True)
    add(w, T0 + 30, key=("market", ""))  # moves the watermark only for another key
    assert w.figures(K)[0].n == 1
    add(w, T0 + 60, key=("market", ""))  # bucket T0 leaves the short window
    short, base = w.figures(K)
    assert (short.n, base.n, base.negative) == (0, 1, 1)
    add(w, T0 + 599, key=("market", ""))  # still inside the 600-bucket baseline
    assert w.figures(K)[1].n == 1
    add(w, T0 + 600, key=("market", ""))
    assert K not in w  # nothing left: the key disappears
    assert w.figures(K) == (Counts(), Counts())


def test_late_record_inside_baseline_counts_outside_does_not() -> None:
    w = windows()
    add(w, T0 + 1000)
    assert add(w, T0 + 500, neg=True)  # late but inside the baseline window
    assert w.figures(K)[1].negative == 1
    assert w.too_old(T0 + 400)
    assert not add(w, T0 + 400, neg=True)  # older than the baseline window: refused
    assert w.figures(K)[1].negative == 1


def test_late_record_inside_short_window_counts_in_short() -> None:
    w = windows()
    add(w, T0 + 1000)
    add(w, T0 + 990, neg=True)
    assert w.figures(K)[0] == Counts(n=2, negative=1, positive=0, score_units=0)


def test_jump_past_the_whole_baseline_empties_everything() -> None:
    w = windows()
    for i in range(100):
        add(w, T0 + i, neg=True)
    add(w, T0 + 10_000, key=("market", ""))
    assert list(w) == [("market", "")]


def test_bucket_width_follows_the_short_window() -> None:
    w = SlidingWindows(short_window_s=900, baseline_window_s=86_400)
    assert w.bucket_s == 15
    assert (w.short_buckets, w.baseline_buckets) == (60, 5760)


def test_baseline_shorter_than_short_is_refused() -> None:
    with pytest.raises(ValueError, match="at least the short window"):
        SlidingWindows(short_window_s=600, baseline_window_s=60)


def test_reset_forgets_everything() -> None:
    w = windows()
    add(w, T0)
    w.reset()
    assert list(w) == [] and w.watermark is None


def brute_force(events: list[tuple[float, bool, float]], bucket_s: float, short: int,
                base: int) -> tuple[Counts, Counts]:
    """Reference: rescan every record against the final watermark."""
    import math

    wm = math.floor(max(ts for ts, _, _ in events) / bucket_s)
    s = [0, 0, 0, 0]
    b = [0, 0, 0, 0]
    for ts, neg, score in events:
        bucket = math.floor(ts / bucket_s)
        vals = (1, int(neg), int(not neg), round(score * 1_000_000))
        if bucket > wm - base:
            b = [x + v for x, v in zip(b, vals, strict=True)]
        if bucket > wm - short:
            s = [x + v for x, v in zip(s, vals, strict=True)]
    return Counts(*s), Counts(*b) - Counts(*s)


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.floats(0, 2_000), st.booleans(), st.sampled_from([-1.0, -0.25, 0.5, 1.0])),
        min_size=1, max_size=200),
    seed=st.integers(0, 2**16),
)
def test_figures_do_not_depend_on_arrival_order(
        events: list[tuple[float, bool, float]], seed: int) -> None:
    """The figures equal a brute-force rescan, whatever order the records come in.

    Records that arrive when already too old are exactly those a rescan at the final
    watermark would leave out, so dropping them changes nothing.
    """
    expected = brute_force([(T0 + t, n, s) for t, n, s in events], 1.0, 60, 600)
    for order in (events, random.Random(seed).sample(events, len(events))):
        w = windows()
        for t, neg, score in order:
            add(w, T0 + t, neg=neg, pos=not neg, score=score)
        assert w.figures(K) == expected
