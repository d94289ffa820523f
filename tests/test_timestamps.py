"""The one time rule (sentimon.timestamps): units, strict RFC 3339, the future tolerance.

Properties run the scorer's decoder and the monitor's parser on the same inputs, so the two
sides cannot drift apart again.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentimon.ingest.message import InputMessage, RawRecord, Rejection, decode
from sentimon.monitor.records import parse_time
from sentimon.timestamps import (
    EPOCH_MS_FROM,
    FUTURE_TOLERANCE_S,
    TimestampError,
    check_not_future,
    epoch_ms,
    parse_rfc3339_ms,
)

NOW_MS = 1_764_600_000_000  # 2025-12-01T14:40:00Z, a fixed "now" for the decoder
# Event times of this century up to the clock: what a live stream carries.
instants = st.datetimes(min_value=datetime(1973, 3, 4), max_value=datetime(2025, 12, 1),
                        timezones=st.just(UTC))
offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


def _decode(ts: object) -> InputMessage | Rejection:
    raw = RawRecord("t", 0, 0, 0, None, json.dumps({"text": "x", "ts": ts}).encode())
    return decode(raw, default_kind="comment", max_bytes=10_000, now_ms=NOW_MS)


def _ms(dt: datetime) -> int:
    return int(dt.timestamp()) * 1000 + dt.microsecond // 1000


@given(instants)
def test_seconds_and_milliseconds_mean_the_same_instant(dt: datetime) -> None:
    ms = _ms(dt)
    seconds = ms / 1000
    assert epoch_ms(ms) == ms
    assert epoch_ms(seconds) == ms
    assert epoch_ms(int(seconds)) == ms - ms % 1000
    for value in (ms, seconds):
        msg = _decode(value)
        assert isinstance(msg, InputMessage) and msg.ts_ms == ms, (value, msg)


@given(instants, offsets, st.sampled_from(["T", "t", " "]), st.sampled_from(["Z", "z"]),
       st.integers(0, 9))
def test_rfc3339_in_any_offset_and_case(dt: datetime, tz: timezone, sep: str, zulu: str,
                                        digits: int) -> None:
    frac = f".{dt.microsecond:06d}000"[: digits + 1] if digits else ""
    expected = _ms(dt.replace(microsecond=int(frac[1:].ljust(6, "0")[:6]) if frac else 0))
    local = dt.astimezone(tz)
    off = local.strftime("%z")
    with_offset = local.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + frac + f"{off[:3]}:{off[3:]}"
    utc = dt.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + frac + zulu
    for text in (with_offset, utc):
        assert parse_rfc3339_ms(text) == expected, text
        assert parse_time(text) == expected / 1000
        msg = _decode(text)
        assert isinstance(msg, InputMessage) and msg.ts_ms == expected, (text, msg)


@pytest.mark.parametrize("text", [
    "2024-W48-6",                 # ISO week date
    "2024-336",                   # ISO ordinal date
    "20261201T212737Z",           # ISO basic format
    "2026-12-01T21Z",             # hours only
    "2026-12-01",                 # a date is not a time
    "2026-12-01T21:27Z",          # no seconds
    "2026-12-01T21:27:37+0100",   # offset without the colon
    "2026-12-01T21:27:37.Z",      # empty fraction
    "2026-13-01T21:27:37Z",
    "2026-02-30T21:27:37Z",
    "2026-12-01T24:00:00Z",
    "2026-12-01T21:27:37+24:00",
    " 2026-12-01T21:27:37Z",
    "2026-12-01T21:27:37Z ",
    "２０２６-12-01T21:27:37Z",  # full-width digits
    "last tuesday",
])
def test_not_rfc3339_is_refused_by_both_sides(text: str) -> None:
    with pytest.raises(TimestampError):
        parse_rfc3339_ms(text)
    with pytest.raises(ValueError):
        parse_time(text)
    rejected = _decode(text)
    assert isinstance(rejected, Rejection) and rejected.reason == "invalid_value", rejected


def test_offset_rules() -> None:
    assert parse_rfc3339_ms("2024-03-01T12:00:00-00:00") == parse_rfc3339_ms("2024-03-01T12:00:00Z")
    assert parse_rfc3339_ms("2016-12-31T23:59:60Z") == parse_rfc3339_ms("2017-01-01T00:00:00Z")
    # The scorer's input may omit the offset (documented: read as UTC); the monitor may not.
    assert parse_rfc3339_ms("2024-03-01T12:00:00", require_offset=False) == 1_709_294_400_000
    with pytest.raises(TimestampError, match="no UTC offset"):
        parse_rfc3339_ms("2024-03-01T12:00:00")


@given(st.floats(min_value=-1e30, max_value=-1e-9) | st.just(float("inf")) | st.just(float("nan")))
def test_negative_and_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(TimestampError):
        epoch_ms(value)


def test_unit_boundary() -> None:
    assert epoch_ms(EPOCH_MS_FROM - 1) == (EPOCH_MS_FROM - 1) * 1000  # seconds: year 5138
    assert epoch_ms(EPOCH_MS_FROM) == EPOCH_MS_FROM                    # milliseconds: 1973
    assert datetime.fromtimestamp(EPOCH_MS_FROM / 1000, tz=UTC).year == 1973


@given(st.integers(-10**9, 10**12), st.sampled_from(["s", "ms", "rfc3339"]))
def test_the_future_is_refused_as_the_monitor_would(ahead_ms: int, unit: str) -> None:
    ts_ms = NOW_MS + ahead_ms
    value: object = {"s": ts_ms / 1000, "ms": ts_ms}.get(unit)
    if unit == "rfc3339":
        value = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat()
    msg = _decode(value)
    too_far = ahead_ms > FUTURE_TOLERANCE_S * 1000
    if too_far:
        assert isinstance(msg, Rejection) and msg.reason in ("future_ts", "invalid_value"), msg
        if ts_ms < 253_402_300_800_000:  # writable as RFC 3339 (year <= 9999)
            assert msg.reason == "future_ts"
    else:
        assert isinstance(msg, InputMessage) and abs(msg.ts_ms - ts_ms) <= 1, msg
    with pytest.raises(TimestampError) if too_far else nullcontext():
        check_not_future(ts_ms, now_ms=NOW_MS)

