"""The one rule for event times, shared by the scorer (input) and the monitor (scored records).

- **Strings** are RFC 3339 (section 5.6) and nothing else: ``2024-12-01T21:27:37.5+01:00``.
  ``T``/``Z`` may be lower case and a space may stand for ``T`` (as RFC 3339 allows);
  ISO 8601 forms that are not RFC 3339 (week dates, ordinal dates, the basic format
  ``20261201T212737Z``, hours only) are refused. ``-00:00`` is UTC. A leap second (``:60``)
  is read as the first instant of the next minute. Without an offset a string is read as
  UTC only where the caller allows it (``require_offset=False``, the scorer's input).
- **Numbers** are epoch time, and the unit is decided by magnitude, explicitly: below
  :data:`EPOCH_MS_FROM` (``1e11``) they are **seconds**, from there on **milliseconds**.
  ``1e11`` ms is 1973-03-03 and ``1e11`` s is the year 5138, so no event time of this
  century is ambiguous; a count in seconds is no longer read as a 1970 time in milliseconds.
- **The future**: an event time more than :data:`FUTURE_TOLERANCE_S` ahead of the wall clock
  is refused. The monitor refuses such a scored record, so the scorer dead-letters it first.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone

FUTURE_TOLERANCE_S = 300.0
"""Event times further than this ahead of the wall clock are refused (scorer and monitor)."""

EPOCH_MS_FROM = 100_000_000_000
"""Epoch numbers from here on are milliseconds; below, seconds (see the module docstring)."""

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?",
    re.ASCII,
)


class TimestampError(ValueError):
    """An event time that breaks the rule; the message says which part and why."""


def parse_rfc3339_ms(text: str, *, require_offset: bool = True) -> int:
    """Epoch milliseconds of an RFC 3339 date-time; :class:`TimestampError` otherwise."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise TimestampError(f"{text[:40]!r} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zulu, sign, off_h, off_m = m.group(7, 8, 9, 10, 11)
    if zulu is None and sign is None and require_offset:
        raise TimestampError(f"{text[:40]!r} has no UTC offset (Z or +hh:mm)")
    tz = UTC
    if sign is not None:
        oh, om = int(off_h), int(off_m)
        if oh > 23 or om > 59:
            raise TimestampError(f"{text[:40]!r} has an offset out of range")
        delta = timedelta(hours=oh, minutes=om)
        tz = timezone(-delta if sign == "-" else delta)
    leap = second == 60
    try:
        dt = datetime(year, month, day, hour, minute, 59 if leap else second, tzinfo=tz)
    except ValueError as exc:
        raise TimestampError(f"{text[:40]!r}: {exc}") from None
    ms = (int(dt.timestamp()) + (1 if leap else 0)) * 1000
    if frac:
        ms += int(frac[1:4].ljust(3, "0"))
    return ms


def epoch_ms(value: float) -> int:
    """Epoch milliseconds of an epoch number in seconds or milliseconds (:data:`EPOCH_MS_FROM`)."""
    if isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise TimestampError(f"{value!r} is not a non-negative epoch time")
    if value < EPOCH_MS_FROM:
        return round(value * 1000)  # seconds
    return round(value)


def check_not_future(ts_ms: int, *, now_ms: int, tolerance_s: float = FUTURE_TOLERANCE_S) -> None:
    """Raise :class:`TimestampError` when ``ts_ms`` is more than ``tolerance_s`` past ``now_ms``."""
    ahead_s = (ts_ms - now_ms) / 1000
    if ahead_s > tolerance_s:
        raise TimestampError(f"event time is {ahead_s:.0f}s ahead of the clock "
                             f"(tolerance {tolerance_s:.0f}s)")
