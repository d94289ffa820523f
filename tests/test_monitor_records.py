"""Parsing scored records, and the reasons given for bad ones."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sentimon.monitor.records import MalformedRecord, parse_scored


def scored(**over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": "news-1", "ts": "2024-03-01T12:00:00Z", "kind": "news", "source": "cnbc",
        "tickers": ["aapl", "MSFT", "AAPL"], "topic": "Earnings", "topic_prob": 0.9,
        "sentiment": "negative",
        "sentiment_probs": {"negative": 0.8, "neutral": 0.15, "positive": 0.05},
        "score": -0.75, "model": "sentimon@1", "scored_at": "2024-03-01T12:00:01Z",
    }
    rec.update(over)
    return rec


def raw(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec).encode()


def test_good_record() -> None:
    r = parse_scored(raw(scored()))
    assert r.id == "news-1" and r.kind == "news" and r.topic == "Earnings"
    assert r.ts == 1709294400.0
    assert r.sentiment == "negative" and r.score == -0.75
    assert r.tickers == ("AAPL", "MSFT")  # upper-cased, de-duplicated, order kept


def test_offsets_other_than_utc_are_converted() -> None:
    assert parse_scored(raw(scored(ts="2024-03-01T13:00:00+01:00"))).ts == 1709294400.0


def test_missing_tickers_means_none() -> None:
    rec = scored()
    del rec["tickers"]
    assert parse_scored(raw(rec)).tickers == ()


@pytest.mark.parametrize(("value", "reason"), [
    (None, "empty"),
    (b"\xff\xfe", "not_json"),
    (b"{not json", "not_json"),
    (b"[1, 2]", "not_object"),
    (raw({k: v for k, v in scored().items() if k != "ts"}), "missing_field"),
    (raw(scored(id="")), "bad_id"),
    (raw(scored(ts="yesterday")), "bad_ts"),
    (raw(scored(ts="2024-03-01T12:00:00")), "bad_ts"),
    (raw(scored(ts=1709294400)), "bad_ts"),
    (raw(scored(kind="tweet")), "bad_kind"),
    (raw(scored(topic="")), "bad_topic"),
    (raw(scored(topic="x" * 101)), "bad_topic"),
    (raw(scored(sentiment="bearish")), "bad_sentiment"),
    (raw(scored(score=1.5)), "bad_score"),
    (raw(scored(score=True)), "bad_score"),
    (raw(scored(score="0.5")), "bad_score"),
    (b'{"id":"a","ts":"2024-03-01T12:00:00Z","kind":"news","topic":"M","sentiment":"neutral",'
     b'"score":NaN}', "bad_score"),
    (raw(scored(tickers="AAPL")), "bad_tickers"),
    (raw(scored(tickers=[1])), "bad_tickers"),
])
def test_malformed_records_name_their_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(MalformedRecord) as info:
        parse_scored(value)
    assert info.value.reason == reason
    assert info.value.detail


def test_text_and_source_are_kept_and_optional() -> None:
    r = parse_scored(raw(scored(text="Acme misses, shares fall")))
    assert r.text == "Acme misses, shares fall" and r.source == "cnbc"
    old = scored()
    del old["source"]
    r = parse_scored(raw(old))  # records written before text existed still parse
    assert r.text == "" and r.source == ""
    # Display-only fields never cost a record its place in the figures; they stay bounded.
    assert parse_scored(raw(scored(text=5, source=None))).text == ""
    long = parse_scored(raw(scored(text="x" * 10_000, source="s" * 1_000)))
    assert len(long.text) == 280 and long.text.endswith("\u2026")
    assert len(long.source) == 256
