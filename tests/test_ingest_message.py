"""Decoding and validating input records: every dead-letter reason, and the happy paths."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentimon.ingest.message import (
    REASONS,
    InputMessage,
    RawRecord,
    Rejection,
    decode,
    kind_for_topic,
    rfc3339_ms,
)

RECORD_TS = 1_600_000_000_123  # 2020-09-13T12:26:40.123Z


def raw(value: bytes | None, *, topic: str = "sentimon.comments", offset: int = 7) -> RawRecord:
    return RawRecord(topic, 2, offset, RECORD_TS, b"k", value)


def run(doc: Any, *, kind: str = "comment", max_bytes: int = 10_000) -> InputMessage | Rejection:
    value = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return decode(raw(value), default_kind=kind, max_bytes=max_bytes)  # type: ignore[arg-type]


def reason(doc: Any, **kw: Any) -> str:
    out = run(doc, **kw)
    assert isinstance(out, Rejection), out
    assert out.detail
    return out.reason


def test_minimal_message_gets_defaults_from_the_record() -> None:
    msg = run({"text": "  $aapl beats estimates  "})
    assert msg == InputMessage(
        id="sentimon.comments:2:7", ts_ms=RECORD_TS, kind="comment", source="sentimon.comments",
        text="$aapl beats estimates", tickers=("AAPL",),
    )


def test_all_fields_are_read_and_normalised() -> None:
    msg = run({
        "id": "tw-1", "ts": "2014-01-01T00:00:48Z", "source": "stocknet", "kind": "news",
        "lang": "en", "tickers": ["msft", " $goog "], "url": "https://example.com/a",
        "text": "Dow trend $AXP $UTX $MSFT", "extra": {"ignored": True},
    })
    assert isinstance(msg, InputMessage)
    assert (msg.id, msg.kind, msg.source, msg.lang, msg.url) == (
        "tw-1", "news", "stocknet", "en", "https://example.com/a")
    assert msg.ts_ms == 1_388_534_448_000
    assert msg.tickers == ("AXP", "GOOG", "MSFT", "UTX")  # merged, de-duplicated, sorted


@pytest.mark.parametrize(("ts", "expected"), [
    ("2014-01-01T00:00:48Z", 1_388_534_448_000),
    ("2014-01-01T01:00:48.250+01:00", 1_388_534_448_250),
    ("2014-01-01T00:00:48", 1_388_534_448_000),  # no offset: read as UTC
    (1_388_534_448_000, 1_388_534_448_000),
    (0, 0),
])
def test_timestamps(ts: Any, expected: int) -> None:
    msg = run({"text": "x", "ts": ts})
    assert isinstance(msg, InputMessage) and msg.ts_ms == expected


def test_integer_id_becomes_a_string() -> None:
    msg = run({"text": "x", "id": 418157151946035200})
    assert isinstance(msg, InputMessage) and msg.id == "418157151946035200"


def test_news_title_and_body_stand_in_for_text() -> None:
    body = "Shares fell 5% in early trade.\n\nSecond paragraph is not the lead."
    msg = run({"title": "Apple misses", "body": body}, kind="news")
    assert isinstance(msg, InputMessage)
    assert msg.text == "Apple misses. Shares fell 5% in early trade."
    assert run({"title": "Apple misses?", "body": "Yes."}, kind="news").text == "Apple misses? Yes."
    assert run({"title": "Only a title"}, kind="news").text == "Only a title"
    assert run({"body": "Only a body " * 100}, kind="news").text.endswith("body")
    assert len(run({"body": "word " * 1000}, kind="news").text) <= 400


def test_kind_in_the_message_overrides_the_topic() -> None:
    msg = run({"title": "t", "kind": "news"}, kind="comment")
    assert isinstance(msg, InputMessage) and msg.kind == "news"


def test_kind_for_topic() -> None:
    kw = {"news_topic": "a.news", "comments_topic": "a.comments"}
    assert kind_for_topic("a.news", **kw) == "news"
    assert kind_for_topic("a.comments", **kw) == "comment"
    assert kind_for_topic("other.news.v2", **kw) == "news"
    assert kind_for_topic("tweets", **kw) == "comment"


def test_size_limit_is_checked_before_parsing() -> None:
    # Not even JSON: only the size can have been looked at.
    assert reason(b"\xff" * 101, max_bytes=100) == "too_large"
    assert isinstance(run({"text": "x" * 80}, max_bytes=100), InputMessage)


@pytest.mark.parametrize(("value", "expected"), [
    (None, "no_value"),
    (b"\xff\xfe{}", "invalid_utf8"),
    (b'{"text": "caf\xe9"}', "invalid_utf8"),
    (b'{"text": "\\ud800 lone surrogate"}', "invalid_utf8"),
    (b"", "invalid_json"),
    (b"{not json", "invalid_json"),
    (b'{"text": NaN}', "invalid_json"),
    (b'{"text": "x", "ts": Infinity}', "invalid_json"),
    (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    (b'"just a string"', "not_an_object"),
    (b"[1, 2]", "not_an_object"),
    (b"null", "not_an_object"),
    (b"42", "not_an_object"),
    (b"{}", "missing_text"),
    (b'{"title": "news only"}', "missing_text"),
    (b'{"text": "   \\n\\t "}', "empty_text"),
    (b'{"text": ""}', "empty_text"),
    (b'{"text": 5}', "wrong_type"),
    (b'{"text": ["a"]}', "wrong_type"),
    (b'{"text": "x", "source": 1}', "wrong_type"),
    (b'{"text": "x", "tickers": "AAPL"}', "wrong_type"),
    (b'{"text": "x", "tickers": ["AAPL", 3]}', "wrong_type"),
    (b'{"text": "x", "ts": true}', "wrong_type"),
    (b'{"text": "x", "ts": {"s": 1}}', "wrong_type"),
    (b'{"text": "x", "id": 1.5}', "wrong_type"),
    (b'{"text": "x", "kind": "tweet"}', "invalid_value"),
    (b'{"text": "x", "ts": "yesterday"}', "invalid_value"),
    (b'{"text": "x", "ts": -5}', "invalid_value"),
    (b'{"text": "x", "ts": 1e20}', "invalid_value"),
    (b'{"text": "x", "tickers": ["APPLE INC"]}', "invalid_value"),
    (b'{"text": "x", "tickers": [""]}', "invalid_value"),
])
def test_each_reason(value: bytes | None, expected: str) -> None:
    out = decode(raw(value), default_kind="comment", max_bytes=10_000_000)
    assert isinstance(out, Rejection), out
    assert out.reason == expected, out
    assert out.reason in REASONS


def test_news_with_blank_title_and_body_is_empty_text() -> None:
    assert reason({"title": " ", "body": "\n\n"}, kind="news") == "empty_text"


def test_over_long_id_is_refused() -> None:
    assert reason({"text": "x", "id": "i" * 257}) == "invalid_value"


def test_byte_order_mark_is_accepted() -> None:
    assert isinstance(run(b'\xef\xbb\xbf{"text": "x"}'), InputMessage)


def test_rfc3339_ms() -> None:
    assert rfc3339_ms(1_388_534_448_005) == "2014-01-01T00:00:48.005Z"
    assert rfc3339_ms(0) == "1970-01-01T00:00:00.000Z"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(value: bytes) -> None:
    out = decode(raw(value), default_kind="news", max_bytes=200)
    assert isinstance(out, InputMessage | Rejection)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["text", "title", "body", "id", "ts", "source", "kind",
                                        "lang", "tickers", "url"]), _json))
def test_arbitrary_objects_never_raise(doc: dict[str, Any]) -> None:
    out = run(doc, kind="news", max_bytes=100_000)
    assert isinstance(out, InputMessage | Rejection)
    if isinstance(out, InputMessage):
        assert out.text.strip() and out.id
