"""Micro-batching by record count, total tokens and wait time (fake clock)."""

from __future__ import annotations

import pytest

from sentimon.ingest.batching import MicroBatcher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(max_items: int = 3, max_tokens: int = 100, max_wait_s: float = 0.05,
         clock: Clock | None = None) -> MicroBatcher[int]:
    return MicroBatcher(max_items=max_items, max_tokens=max_tokens, max_wait_s=max_wait_s,
                        clock=clock or Clock())


def test_closes_on_count() -> None:
    b = make(max_items=3)
    assert b.add(1, 1) == [] and b.add(2, 1) == []
    assert b.room == 1
    [batch] = b.add(3, 1)
    assert batch.items == [1, 2, 3] and batch.tokens == 3
    assert len(b) == 0 and b.room == 3


def test_closes_before_exceeding_tokens() -> None:
    b = make(max_items=100, max_tokens=100)
    b.add(1, 60)
    [batch] = b.add(2, 50)  # 110 > 100: the open batch closes, 2 starts the next
    assert batch.items == [1] and batch.tokens == 60
    assert len(b) == 1
    [batch] = b.add(3, 50)  # exactly 100: closes with 3 in it
    assert batch.items == [2, 3] and batch.tokens == 100


def test_one_oversized_item_is_a_batch_of_its_own() -> None:
    b = make(max_items=100, max_tokens=100)
    b.add(1, 10)
    closed = b.add(2, 500)
    assert [c.items for c in closed] == [[1], [2]]
    assert len(b) == 0


def test_due_after_max_wait_from_first_item() -> None:
    clock = Clock()
    b = make(max_wait_s=0.05, clock=clock)
    assert not b.due() and b.time_left() == pytest.approx(0.05)
    b.add(1, 1)
    clock.now += 0.03
    b.add(2, 1)
    assert not b.due() and b.time_left() == pytest.approx(0.02)
    clock.now += 0.02
    assert b.due() and b.time_left() == 0
    batch = b.flush()
    assert batch is not None and batch.items == [1, 2]
    assert b.flush() is None and not b.due()


def test_order_is_kept_across_batches() -> None:
    b = make(max_items=4, max_tokens=10)
    out: list[int] = []
    for i in range(50):
        for batch in b.add(i, i % 7):
            assert len(batch) <= 4 and (batch.tokens <= 10 or len(batch) == 1)
            out.extend(batch.items)
    last = b.flush()
    out.extend(last.items if last else [])
    assert out == list(range(50))


def test_zero_wait_is_due_at_once() -> None:
    b = make(max_wait_s=0)
    b.add(1, 1)
    assert b.due()


@pytest.mark.parametrize("kw", [{"max_items": 0}, {"max_tokens": 0}, {"max_wait_s": -1}])
def test_bad_limits(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        make(**kw)  # type: ignore[arg-type]
