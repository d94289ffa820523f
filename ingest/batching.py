"""Micro-batches closed by record count, total tokens or age, whichever comes first.

Pure logic with an injectable clock, so the limits are unit-tested without Kafka or a model.
Items keep their arrival order across batches, which is what lets the scorer commit the
highest offset of a batch once it has been produced.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class Batch(Generic[T]):
    """Items in arrival order and the tokens they hold."""

    items: list[T] = field(default_factory=list)
    tokens: int = 0
    opened_at: float = 0.0

    def __len__(self) -> int:
        return len(self.items)


class MicroBatcher(Generic[T]):
    """Collects items into batches of at most ``max_items`` items and ``max_tokens`` tokens.

    A batch is also due ``max_wait_s`` after its oldest item arrived. An item can arrive
    before it is added (``age_s``: records that came in while the scorer was busy with the
    previous batch have waited already), so under steady load a batch is scored as soon as
    it is taken in, instead of waiting ``max_wait_s`` more. One item that alone holds more than
    ``max_tokens`` tokens is a batch of its own: never split, never refused.
    """

    def __init__(
        self,
        *,
        max_items: int,
        max_tokens: int,
        max_wait_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_items < 1 or max_tokens < 1 or max_wait_s < 0:
            raise ValueError("max_items and max_tokens must be >= 1, max_wait_s >= 0")
        self.max_items = max_items
        self.max_tokens = max_tokens
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._open: Batch[T] = Batch()

    def __len__(self) -> int:
        return len(self._open)

    @property
    def room(self) -> int:
        """Items the open batch can still take (by count)."""
        return self.max_items - len(self._open)

    def add(self, item: T, tokens: int = 0, *, age_s: float = 0.0) -> list[Batch[T]]:
        """Add one item that arrived ``age_s`` ago; return the batches this closed (by count or
        tokens), oldest first."""
        closed: list[Batch[T]] = []
        if self._open.items and self._open.tokens + tokens > self.max_tokens:
            closed.append(self._take())
        # Capped at max_wait_s: an item can make its batch due now, never earlier than that.
        arrived = self._clock() - min(max(0.0, age_s), self.max_wait_s)
        if not self._open.items or arrived < self._open.opened_at:
            self._open.opened_at = arrived
        self._open.items.append(item)
        self._open.tokens += tokens
        if len(self._open) >= self.max_items or self._open.tokens >= self.max_tokens:
            closed.append(self._take())
        return closed

    def due(self) -> bool:
        """True when the open batch is non-empty and has waited ``max_wait_s``."""
        return bool(self._open.items) and self.time_left() <= 0

    def time_left(self) -> float:
        """Seconds until the open batch is due; ``max_wait_s`` when it is empty."""
        if not self._open.items:
            return self.max_wait_s
        return max(0.0, self._open.opened_at + self.max_wait_s - self._clock())

    def flush(self) -> Batch[T] | None:
        """Close and return the open batch, or None when it is empty."""
        return self._take() if self._open.items else None

    def _take(self) -> Batch[T]:
        batch, self._open = self._open, Batch()
        return batch


def plan_runs(lengths: Sequence[int], *, max_run: int, run_overhead: int) -> list[list[int]]:
    """Split texts of token ``lengths`` into model runs of similar length; indices per run.

    A run costs about ``run_overhead`` tokens plus its rows times its longest text (padding
    is paid for). Texts are sorted by length and cut into consecutive runs of at most
    ``max_run`` that minimise that total (exact, by dynamic programming), so a micro-batch of
    60 is not padded to its one long text, and a run is not split for a few tokens of padding.
    Runs come shortest first; within a run, indices ascend by length.
    """
    if max_run < 1 or run_overhead < 0:
        raise ValueError("max_run must be >= 1 and run_overhead >= 0")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    width = [max(1, lengths[i]) for i in order]
    n = len(order)
    best = [0] * (n + 1)  # best[j]: cost of the first j sorted texts
    cut = [0] * (n + 1)  # where the last run of that best plan starts
    for j in range(1, n + 1):
        w = width[j - 1]  # the longest text of any run ending at j
        best[j], cut[j] = min(
            (best[i] + run_overhead + (j - i) * w, i) for i in range(max(0, j - max_run), j)
        )
    runs: list[list[int]] = []
    j = n
    while j:
        runs.append(order[cut[j] : j])
        j = cut[j]
    return runs[::-1]
