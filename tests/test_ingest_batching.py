"""Micro-batching by record count, total tokens and wait time (fake clock)."""

from __future__ import annotations

import pytest

from sentimon.ingest.batching import MicroBatcher, plan_runs


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


# -- plan_runs: model runs of similar length -------------------------------------------------


def brute_force_cost(lengths: list[int], max_run: int, overhead: int) -> int:
    """Cheapest cost over every cut of the sorted lengths into consecutive runs."""
    ls = sorted(max(1, x) for x in lengths)
    best = [0] + [10**9] * len(ls)
    for j in range(1, len(ls) + 1):
        for i in range(max(0, j - max_run), j):
            best[j] = min(best[j], best[i] + overhead + (j - i) * ls[j - 1])
    return best[-1]


def plan_cost(lengths: list[int], runs: list[list[int]], overhead: int) -> int:
    return sum(overhead + len(r) * max(max(1, lengths[i]) for i in r) for r in runs)


@pytest.mark.parametrize("seed", range(20))
def test_plan_runs_covers_each_text_once_and_is_cheapest(seed: int) -> None:
    import random

    rng = random.Random(seed)
    lengths = [rng.choice([rng.randint(3, 30), rng.randint(30, 128)]) for _ in range(rng.randint(1, 40))]
    max_run, overhead = rng.choice([1, 4, 16, 64]), rng.choice([0, 8, 16, 200])
    runs = plan_runs(lengths, max_run=max_run, run_overhead=overhead)
    assert sorted(i for r in runs for i in r) == list(range(len(lengths)))
    assert all(1 <= len(r) <= max_run for r in runs)
    flat = [lengths[i] for r in runs for i in r]
    assert flat == sorted(flat)  # shortest first, each run a slice of the sorted order
    assert plan_cost(lengths, runs, overhead) == brute_force_cost(lengths, max_run, overhead)


def test_plan_runs_keeps_one_long_text_from_padding_the_rest() -> None:
    lengths = [12] * 40 + [120]
    runs = plan_runs(lengths, max_run=64, run_overhead=16)
    assert [len(r) for r in runs] == [40, 1] and runs[1] == [40]
    # A large fixed cost per run (a GPU) keeps everything in one run.
    assert [len(r) for r in plan_runs(lengths, max_run=64, run_overhead=10_000)] == [41]
    assert plan_runs([], max_run=64, run_overhead=16) == []


def test_a_batch_is_due_max_wait_after_its_oldest_item_arrived() -> None:
    clock = Clock()
    b = make(max_items=10, max_wait_s=0.05, clock=clock)
    b.add(1, 1, age_s=0.0)
    assert not b.due() and b.time_left() == pytest.approx(0.05)
    b.add(2, 1, age_s=0.03)  # came in while the scorer was busy: waited 30 ms already
    assert b.time_left() == pytest.approx(0.02)
    b.add(3, 1, age_s=3600)  # an old record (a backlog): due now, not before now
    assert b.due() and b.time_left() == 0
    batch = b.flush()
    assert batch is not None and batch.opened_at == pytest.approx(clock.now - 0.05)
    b.add(4, 1, age_s=-5)  # a producer clock ahead of ours counts as just arrived
    assert b.time_left() == pytest.approx(0.05)
