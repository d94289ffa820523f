"""Structured logging: one line per event, key=value or JSON (``SENTIMON_LOG_JSON``)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class _Formatter(logging.Formatter):
    def __init__(self, *, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        if self.as_json:
            return json.dumps(fields, default=str, ensure_ascii=False)
        head = f"{fields.pop('ts')} {fields.pop('level'):<7} {fields.pop('logger')}: {fields.pop('event')}"
        exc = fields.pop("exc", None)
        tail = " ".join(f"{k}={v}" for k, v in fields.items())
        return head + (" " + tail if tail else "") + ("\n" + exc if exc else "")


def formatter(*, as_json: bool = False) -> logging.Formatter:
    """The formatter of sentimon's log lines: the event, then every ``extra`` field."""
    return _Formatter(as_json=as_json)


def setup_logging(level: str = "INFO", *, as_json: bool = False) -> None:
    """Configure the root logger once; pass structured fields with ``extra={...}``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(as_json=as_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python is chatty at INFO (every connect/rebalance step).
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
