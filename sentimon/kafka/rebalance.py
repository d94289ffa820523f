"""A guard against a group join that finished but was never applied (kafka-python 3.0.12).

kafka-python keeps an in-flight JoinGroup between polls when a poll's timeout runs out. If
that join completes meanwhile and nothing else still asks for a rejoin (the leader's
metadata snapshot was brought up to date by the very assignment it made), the next poll
never collects it: the member keeps no usable partitions, heartbeats stay off, and the
daemon idles forever while reporting nothing. Daemons call :meth:`JoinWatch.check` after
every poll; when the state persists it asks for a fresh rejoin, which completes normally.

The checks read two private coordinator fields; if a kafka-python upgrade renames them the
guard logs once and turns itself off rather than break the daemon.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kafka import KafkaConsumer

log = logging.getLogger(__name__)

STALL_S = 5.0


class JoinWatch:
    """Detects an abandoned completed join on ``consumer`` and requests a rejoin."""

    def __init__(self, consumer: KafkaConsumer, *, stall_s: float = STALL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.consumer = consumer
        self.stall_s = stall_s
        self.clock = clock
        self.since: float | None = None
        self.healed = 0
        self._enabled = True

    def _stalled(self) -> bool:
        coordinator = getattr(self.consumer, "_coordinator", None)
        try:
            # A join was prepared (listeners ran, heartbeats off) yet no poll will finish it.
            return bool(coordinator.rejoining) and not coordinator.need_rejoin()  # type: ignore[union-attr]
        except AttributeError:
            log.warning("kafka-python internals changed; the stalled-join guard is off")
            self._enabled = False
            return False

    def check(self) -> bool:
        """Call after each poll; True when it has just requested a rejoin."""
        if not self._enabled or not self._stalled():
            self.since = None
            return False
        now = self.clock()
        if self.since is None:
            self.since = now
            return False
        if now - self.since < self.stall_s:
            return False
        log.warning("group join completed but was never applied; rejoining",
                    extra={"stalled_s": round(now - self.since, 1)})
        self.consumer._coordinator.request_rejoin()
        self.since = None
        self.healed += 1
        return True
