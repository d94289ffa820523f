"""Graceful stop on SIGTERM/SIGINT: daemons finish the batch in hand, then exit."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)


class GracefulStop:
    """A flag set by SIGTERM or SIGINT; a second signal exits at once.

    Use as ``stop = GracefulStop.install()`` in the main thread, then ``while not stop:``.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    @classmethod
    def install(cls) -> GracefulStop:
        stop = cls()
        signal.signal(signal.SIGTERM, stop._handle)
        signal.signal(signal.SIGINT, stop._handle)
        return stop

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._event.is_set():
            raise SystemExit(128 + signum)
        log.info("stop requested, finishing the batch in hand", extra={"signal": signum})
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def __bool__(self) -> bool:
        return self._event.is_set()
