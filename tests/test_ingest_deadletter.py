"""Dead-letter documents keep the original bytes and where they came from."""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from sentimon.ingest.deadletter import (
    MAX_DLQ_KEY_BYTES,
    MAX_DLQ_RECORD_BYTES,
    MAX_DLQ_VALUE_BYTES,
    dead_letter_record,
    dead_letter_value,
)
from sentimon.ingest.message import RawRecord, Rejection
from sentimon.ingest.output import encode

CONTRACT_FIELDS = {"reason", "detail", "topic", "partition", "offset", "timestamp_ms", "value_b64"}


def test_fields_and_original_bytes() -> None:
    value = b'\xff{"not": utf8'
    raw = RawRecord("sentimon.news", 1, 42, 1_600_000_000_000, b"key", value)
    doc = dead_letter_value(raw, Rejection("invalid_utf8", "byte 0"), now_ms=0)
    assert doc.keys() >= CONTRACT_FIELDS
    assert (doc["reason"], doc["topic"], doc["partition"], doc["offset"]) == (
        "invalid_utf8", "sentimon.news", 1, 42)
    assert doc["timestamp_ms"] == 1_600_000_000_000
    assert base64.b64decode(doc["value_b64"]) == value
    assert doc["value_size"] == len(value) and doc["value_truncated"] is False
    assert doc["dead_lettered_at"] == "1970-01-01T00:00:00.000Z"
    assert json.loads(encode(doc)) == doc


def test_null_value() -> None:
    raw = RawRecord("t", 0, 0, 0, None, None)
    doc = dead_letter_value(raw, Rejection("no_value", "record value is null"))
    assert doc["value_b64"] is None and doc["value_size"] == -1


def test_huge_value_is_cut_and_says_so() -> None:
    value = b"x" * (MAX_DLQ_VALUE_BYTES + 10)
    raw = RawRecord("t", 0, 5, 0, None, value)
    doc = dead_letter_value(raw, Rejection("too_large", "big"))
    assert len(base64.b64decode(doc["value_b64"])) == MAX_DLQ_VALUE_BYTES
    assert doc["value_truncated"] is True and doc["value_size"] == len(value)
    assert len(encode(doc)) < 1_000_000  # fits the broker's default record limit


@given(key=st.one_of(st.none(), st.integers(0, 400_000)), value=st.one_of(st.none(), st.integers(0, 3_000_000)),
       detail=st.integers(0, 300))
@settings(max_examples=40, deadline=None)
def test_whole_dead_letter_is_bounded(key: int | None, value: int | None, detail: int) -> None:
    raw = RawRecord("t", 0, 5, 0, None if key is None else b"k" * key,
                    None if value is None else b"\xff" * value)
    rejection = Rejection("invalid_utf8", "d" * detail)
    k, v = dead_letter_record(raw, rejection, now_ms=0)
    assert len(k or b"") + len(v) <= MAX_DLQ_RECORD_BYTES
    doc = json.loads(v)
    assert doc["key_size"] == (-1 if key is None else key)
    assert doc["key_truncated"] == (key is not None and key > MAX_DLQ_KEY_BYTES)
    if value is not None:
        kept = base64.b64decode(doc["value_b64"])
        assert kept == raw.value[:len(kept)]  # type: ignore[index]
        assert doc["value_truncated"] == (len(kept) < value)
        # Cut only as far as needed: the record is close to the bound when cut.
        if doc["value_truncated"] and len(kept) < MAX_DLQ_VALUE_BYTES:
            assert len(k or b"") + len(v) > MAX_DLQ_RECORD_BYTES - 8


def test_issue_reproduction_fits() -> None:
    # 150 kB key, 850 kB non-JSON value: the dead letter used to be 1,083,690 bytes.
    raw = RawRecord("t", 0, 5, 0, b"k" * 150_000, b"\xfe" * 850_000)
    k, v = dead_letter_record(raw, Rejection("invalid_utf8", "byte 0"), now_ms=0)
    assert k == b"k" * MAX_DLQ_KEY_BYTES
    assert len(k) + len(v) <= MAX_DLQ_RECORD_BYTES


def test_smallest_dead_letter_drops_key_and_bytes() -> None:
    raw = RawRecord("t", 3, 9, 0, b"k" * 5000, b"v" * 5000)
    k, v = dead_letter_record(raw, Rejection("invalid_json", "x"), now_ms=0, max_bytes=0)
    doc = json.loads(v)
    assert k is None and doc["value_b64"] == "" and doc["value_truncated"] is True
    assert (doc["topic"], doc["partition"], doc["offset"]) == ("t", 3, 9)
    assert len(v) < 1000
