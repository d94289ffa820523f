"""Rate limit for repeated client log lines (kafka-python logs every retry of a stuck request).

With an output topic gone, kafka-python logged about 10 warnings a second, the same few lines
with other numbers in them, which buried the one line that said what was wrong.
:class:`RepeatFilter` lets the first record of a kind through (same logger, level and message
template), then one per ``interval_s`` carrying ``suppressed=N``, the number held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

MAX_KINDS = 1000
"""Kinds remembered; beyond it the memory starts over (a flood of distinct templates is rare)."""


class RepeatFilter(logging.Filter):
    """Passes records of loggers under ``prefix`` at most once per ``interval_s`` per kind."""

    def __init__(self, *, prefix: str = "kafka", interval_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.prefix = prefix
        self.interval_s = interval_s
        self.clock = clock
        self._kinds: dict[tuple[str, int, str], list[float]] = {}  # kind -> [last passed, held]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != self.prefix and not record.name.startswith(self.prefix + "."):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        seen = self._kinds.get(key)
        if seen is not None and now - seen[0] < self.interval_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.suppressed = int(seen[1])
        if len(self._kinds) >= MAX_KINDS:
            self._kinds.clear()
        self._kinds[key] = [now, 0]
        return True

    def install(self, handlers: list[logging.Handler] | None = None) -> list[logging.Handler]:
        """Add to ``handlers`` (default: the root logger's); returns them for :meth:`remove`."""
        targets = list(logging.getLogger().handlers if handlers is None else handlers)
        for h in targets:
            h.addFilter(self)
        return targets

    def remove(self, handlers: list[logging.Handler]) -> None:
        for h in handlers:
            h.removeFilter(self)
