"""The first copy of each text per aligned window: order-free choice, displacement, memory."""

from __future__ import annotations

import pytest

from sentimon.monitor.repeats import Repeats


def test_the_first_copy_counts_and_later_copies_do_not() -> None:
    r: Repeats[str] = Repeats(window_s=3600, capacity=100)
    assert r.offer("k", 100.0, "a", "A") == (True, None)
    assert r.offer("k", 200.0, "b", "B") == (False, None)
    assert r.offer("other", 200.0, "c", "C") == (True, None)
    # The next aligned window starts afresh.
    assert r.offer("k", 3600.0, "d", "D") == (True, None)


def test_an_earlier_copy_arriving_late_displaces_the_one_counted() -> None:
    r: Repeats[str] = Repeats(window_s=3600, capacity=100)
    assert r.offer("k", 500.0, "b", "B") == (True, None)
    assert r.offer("k", 100.0, "a", "A") == (True, "B")  # the caller takes B back
    assert r.offer("k", 500.0, "c", "C") == (False, None)
    # Same time: the smaller id is the first, so the choice does not depend on arrival.
    assert r.offer("k", 100.0, "0", "Z") == (True, "A")
    assert r.offer("k", 100.0, "b2", "Y") == (False, None)


def test_expire_forgets_whole_windows_that_ended() -> None:
    r: Repeats[str] = Repeats(window_s=100, capacity=100)
    r.offer("k", 10.0, "a", "A")
    r.offer("k", 150.0, "b", "B")
    assert r.expire(before=99.0) == 0  # window [0, 100) has not ended before 99
    assert r.expire(before=100.0) == 1
    assert len(r) == 1
    assert r.offer("k", 160.0, "c", "C") == (False, None)


def test_capacity_bounds_memory_and_counts_what_it_forgot() -> None:
    r: Repeats[str] = Repeats(window_s=3600, capacity=2)
    for i in range(3):
        r.offer(f"k{i}", 10.0, f"id{i}", "x")
    assert len(r) == 2 and r.evicted == 1
    assert r.offer("k0", 20.0, "again", "y") == (True, None)  # forgotten: counts again


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Repeats(window_s=0, capacity=1)
    with pytest.raises(ValueError):
        Repeats(window_s=1, capacity=0)
