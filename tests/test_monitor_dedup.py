"""Bounded de-duplication of record ids."""

from __future__ import annotations

import pytest

from sentimon.monitor.dedup import Deduplicator


def test_second_sight_is_a_duplicate() -> None:
    d = Deduplicator(capacity=10)
    assert d.first_time("a", 1.0)
    assert not d.first_time("a", 1.0)
    assert d.first_time("b", 2.0)
    assert len(d) == 2


def test_capacity_forgets_oldest_arrivals_first() -> None:
    d = Deduplicator(capacity=3)
    for i in range(5):
        assert d.first_time(str(i), float(i))
    assert len(d) == 3 and d.evicted == 2
    assert "0" not in d and "1" not in d and "4" in d
    assert d.first_time("0", 0.0)  # forgotten, so counted again: why capacity must be large


def test_expire_drops_ids_older_than_the_cutoff() -> None:
    d = Deduplicator(capacity=100)
    for i in range(10):
        d.first_time(f"id{i}", 100.0 + i)
    assert d.expire(105.0) == 5
    assert len(d) == 5 and "id4" not in d and "id5" in d


def test_expire_stops_at_the_first_young_arrival() -> None:
    d = Deduplicator(capacity=100)
    d.first_time("young", 200.0)
    d.first_time("old", 50.0)  # arrived late; goes later or through capacity
    assert d.expire(100.0) == 0
    assert "old" in d


def test_memory_stays_bounded_under_a_long_stream() -> None:
    d = Deduplicator(capacity=1000)
    for i in range(50_000):
        d.first_time(f"r{i}", float(i))
        d.expire(float(i) - 100)
    assert len(d) <= 101


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Deduplicator(capacity=0)
