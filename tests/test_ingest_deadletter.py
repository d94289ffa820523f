"""Dead-letter documents keep the original bytes and where they came from."""

from __future__ import annotations

import base64
import json

from sentimon.ingest.deadletter import MAX_DLQ_VALUE_BYTES, dead_letter_value
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
