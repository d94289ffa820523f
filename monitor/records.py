"""Parse and check scored records (``sentimon.scored``) down to what the monitor needs.

The scorer writes these records, so a bad one should never come; when one does, the
monitor counts it with a reason and goes on instead of crashing (see :class:`MalformedRecord`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from sentimon.model.text import dedup_key
from sentimon.timestamps import parse_rfc3339_ms

KINDS = ("news", "comment")
SENTIMENTS = ("negative", "neutral", "positive")
#: Longest topic name accepted; the model's topic names are short.
MAX_TOPIC_CHARS = 100
#: Longest ticker symbol accepted (longer strings are not tickers and are ignored).
MAX_TICKER_CHARS = 12
#: Longest ``text`` kept, as the scorer writes it (ingest/schemas/scored.schema.json); a longer
#: one from another producer is cut here so that exemplars held per series stay small.
MAX_TEXT_CHARS = 280
#: Longest ``source`` kept (the scorer's own limit on the input's source).
MAX_SOURCE_CHARS = 256


class MalformedRecord(ValueError):
    """A scored record the monitor cannot use; ``reason`` is a short metric label value."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ScoredRecord:
    """The fields of a scored record that the monitor aggregates."""

    id: str
    ts: float  # event time, seconds since the epoch
    kind: str
    topic: str
    sentiment: str
    score: float
    tickers: tuple[str, ...] = ()
    #: The model's P(negative); records without ``sentiment_probs`` count their label (0 or 1).
    p_negative: float = -1.0
    #: The text the model scored (at most :data:`MAX_TEXT_CHARS`); "" in records written before
    #: scored records carried it. Only quoted in alerts, never aggregated.
    text: str = ""
    #: Where the item came from (a feed or site name); "" when the record has none.
    source: str = ""
    #: Identity of the text, for streams replayed without it (scenario pools); otherwise the
    #: monitor derives it from ``text`` when it needs it (:func:`text_key`).
    text_key: str = ""

    def __post_init__(self) -> None:
        if self.p_negative < 0.0:
            object.__setattr__(self, "p_negative", 1.0 if self.sentiment == "negative" else 0.0)


def text_key(text: str) -> str:
    """64 bits of a hash of the text as the model sees it, lowercased (:func:`dedup_key`).

    Retweets, syndicated copies and a bot's repeated line share a key; a hash keeps the
    memory of keys small. A text cut to :data:`MAX_TEXT_CHARS` keys on what is left.
    """
    return hashlib.blake2b(dedup_key(text).encode(), digest_size=8).hexdigest()


def parse_time(value: object) -> float:
    """RFC 3339 time with an explicit offset -> epoch seconds; raises ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 string, got {type(value).__name__}")
    return parse_rfc3339_ms(value, require_offset=True) / 1000


def parse_scored(raw: bytes | None) -> ScoredRecord:
    """Decode one Kafka value into a :class:`ScoredRecord` or raise :class:`MalformedRecord`."""
    if raw is None:
        raise MalformedRecord("empty", "record has no value")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedRecord("not_json", str(exc)) from None
    if not isinstance(data, dict):
        raise MalformedRecord("not_object", f"top level is {type(data).__name__}")
    for field in ("id", "ts", "kind", "topic", "sentiment", "score"):
        if field not in data:
            raise MalformedRecord("missing_field", f"field {field!r} is missing")

    rec_id = data["id"]
    if not isinstance(rec_id, str) or not rec_id:
        raise MalformedRecord("bad_id", f"id must be a non-empty string, got {rec_id!r}")
    try:
        ts = parse_time(data["ts"])
    except ValueError as exc:
        raise MalformedRecord("bad_ts", str(exc)) from None
    kind = data["kind"]
    if kind not in KINDS:
        raise MalformedRecord("bad_kind", f"kind must be one of {KINDS}, got {kind!r}")
    topic = data["topic"]
    if not isinstance(topic, str) or not topic.strip() or len(topic) > MAX_TOPIC_CHARS:
        raise MalformedRecord("bad_topic", f"topic must be a short non-empty string, got {topic!r}")
    sentiment = data["sentiment"]
    if sentiment not in SENTIMENTS:
        raise MalformedRecord(
            "bad_sentiment", f"sentiment must be one of {SENTIMENTS}, got {sentiment!r}"
        )
    score = data["score"]
    # bool is an int subclass; a JSON true is not a score.
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score) \
            or not -1.0 <= score <= 1.0:
        raise MalformedRecord("bad_score", f"score must be a number in [-1, 1], got {score!r}")
    tickers = data.get("tickers", [])
    if not isinstance(tickers, list) or not all(isinstance(t, str) for t in tickers):
        raise MalformedRecord("bad_tickers", f"tickers must be a list of strings, got {tickers!r}")
    p_negative = -1.0
    probs = data.get("sentiment_probs")
    if probs is not None:
        value = probs.get("negative") if isinstance(probs, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not 0.0 <= value <= 1.0:
            raise MalformedRecord("bad_probs",
                                  f"sentiment_probs.negative must be in [0, 1], got {value!r}")
        p_negative = float(value)
    symbols = tuple(dict.fromkeys(
        t.strip().upper() for t in tickers if t.strip() and len(t.strip()) <= MAX_TICKER_CHARS
    ))
    return ScoredRecord(
        id=rec_id, ts=ts, kind=kind, topic=topic, sentiment=sentiment, score=float(score),
        tickers=symbols, p_negative=p_negative,
        text=_quote(data.get("text"), MAX_TEXT_CHARS), source=_quote(data.get("source"),
                                                                       MAX_SOURCE_CHARS),
    )


def _quote(value: object, limit: int) -> str:
    """A display-only string field: "" when absent or not a string, cut to ``limit`` code points.

    Lenient on purpose: ``text`` and ``source`` are only shown in alerts, so a bad one must not
    cost the record its place in the figures (which a :class:`MalformedRecord` would).
    """
    if not isinstance(value, str):
        return ""
    value = value.strip()
    return value if len(value) <= limit else value[: limit - 1] + "\u2026"
