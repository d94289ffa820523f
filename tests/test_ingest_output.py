"""Scored records are valid against the published JSON Schema."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from sentimon.ingest.message import InputMessage, RawRecord, decode
from sentimon.ingest.output import encode, scored_value
from sentimon.ingest.validation import errors, load_schema


@dataclass(frozen=True)
class Pred:
    topic: str = "Stock Commentary"
    topic_prob: float = 0.7
    sentiment: str = "negative"
    sentiment_probs: dict[str, float] | None = None
    score: float = -0.6


def probs() -> dict[str, float]:
    return {"negative": 0.7, "neutral": 0.2, "positive": 0.1}


def test_scored_record_matches_contract_and_schema() -> None:
    raw = RawRecord("sentimon.comments", 0, 3, 1_388_534_448_000, None,
                    json.dumps({"text": "$aapl down", "tickers": ["msft"]}).encode())
    msg = decode(raw, default_kind="comment", max_bytes=1000)
    assert isinstance(msg, InputMessage)
    doc = scored_value(msg, Pred(sentiment_probs=probs()), model="sentimon-minilm@1.0.0",
                       scored_at_ms=1_388_534_449_500)
    assert errors("scored", doc) == []
    assert doc["id"] == "sentimon.comments:0:3"
    assert doc["ts"] == "2014-01-01T00:00:48.000Z"
    assert doc["scored_at"] == "2014-01-01T00:00:49.500Z"
    assert doc["tickers"] == ["AAPL", "MSFT"]
    contract = {"id", "ts", "kind", "source", "tickers", "topic", "topic_prob", "sentiment",
                "sentiment_probs", "score", "model", "scored_at"}
    assert contract <= doc.keys()
    assert json.loads(encode(doc)) == doc


@pytest.mark.parametrize("bad", [
    {"sentiment": "bearish"}, {"score": 1.5}, {"tickers": ["aapl"]}, {"model": "no-version"},
    {"ts": "2014-01-01 00:00:48"},
])
def test_schema_rejects_contract_violations(bad: dict[str, object]) -> None:
    msg = InputMessage("i", 0, "news", "s", "t", ())
    doc = scored_value(msg, Pred(sentiment_probs=probs()), model="m@1", scored_at_ms=0)
    assert errors("scored", doc) == []
    doc.update(bad)
    assert errors("scored", doc) != []


def test_input_schema_describes_what_decode_accepts() -> None:
    schema = load_schema("input")
    assert set(schema["properties"]) >= {"text", "id", "ts", "source", "kind", "lang", "tickers",
                                         "url", "title", "body"}
    assert errors("input", {"text": "x", "tickers": ["$aapl"], "ts": 1}) == []
    assert errors("input", {"text": 5}) != []
    assert errors("input", {"kind": "news", "title": "t"}) == []
    assert errors("input", {"kind": "comment", "title": "t"}) != []


def test_scored_record_carries_the_text_the_model_saw_cut_to_280_code_points() -> None:
    short = InputMessage("i", 0, "comment", "s", "$AAPL down hard", ("AAPL",))
    doc = scored_value(short, Pred(sentiment_probs=probs()), model="m@1", scored_at_ms=0)
    assert doc["text"] == "$AAPL down hard"
    # Astral characters count once (JSON Schema maxLength counts code points, as len() does).
    long = InputMessage("i", 0, "news", "s", "\U0001f4c9" * 300, ())
    doc = scored_value(long, Pred(sentiment_probs=probs()), model="m@1", scored_at_ms=0)
    assert len(doc["text"]) == 280 and doc["text"].endswith("\u2026")
    assert doc["text"][:279] == "\U0001f4c9" * 279
    assert errors("scored", doc) == []
    assert json.loads(encode(doc)) == doc
    doc["text"] = "x" * 281
    assert errors("scored", doc) != []
    # Old records without text still satisfy the schema (text is optional).
    del doc["text"]
    assert errors("scored", doc) == []


def test_news_text_is_title_and_lead() -> None:
    raw = RawRecord("sentimon.news", 0, 1, 1_388_534_448_000, None,
                    json.dumps({"title": "Acme misses", "body": "Shares fell."}).encode())
    msg = decode(raw, default_kind="news", max_bytes=1000)
    assert isinstance(msg, InputMessage)
    doc = scored_value(msg, Pred(sentiment_probs=probs()), model="m@1", scored_at_ms=0)
    assert doc["text"] == "Acme misses. Shares fell."
