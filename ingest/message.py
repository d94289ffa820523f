"""Decode and validate one input record: an :class:`InputMessage`, or a :class:`Rejection`.

The value must be a UTF-8 JSON object (``ingest/schemas/input.schema.json``). Checks run
cheapest first and the size limit comes before any parsing, so a huge or hostile record
costs no more than its length check. Every failure has a machine-readable ``reason`` (one
of :data:`REASONS`) and a human ``detail``; the scorer sends it to the dead-letter topic.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sentimon.ingest.cashtags import MAX_TICKERS, merge_tickers, normalize_ticker
from sentimon.timestamps import TimestampError, check_not_future, epoch_ms, parse_rfc3339_ms

Kind = Literal["news", "comment"]
KINDS: tuple[Kind, ...] = ("news", "comment")

REASONS: tuple[str, ...] = (
    "too_large",        # value longer than scorer.max_message_bytes (not parsed)
    "no_value",         # null value (a tombstone)
    "invalid_utf8",     # bytes are not UTF-8, or a JSON string escapes a lone surrogate
    "invalid_json",     # not JSON (NaN/Infinity included), or nested too deep
    "not_an_object",    # JSON, but not an object
    "missing_text",     # no `text` (nor, for news, `title`/`body`)
    "empty_text",       # text is only white space
    "wrong_type",       # a field has the wrong JSON type
    "invalid_value",    # right type, unusable value (bad ts, kind, ticker, over-long id)
    "future_ts",        # event time too far ahead of the clock (sentimon.timestamps; the monitor refuses it)
    "inference_error",  # the model failed on this text (set by the scorer, not here)
)
"""Every dead-letter reason; also the values of the ``reason`` metric label."""

MAX_ID_CHARS = 256
MAX_SHORT_CHARS = 256     # source, lang
MAX_URL_CHARS = 4096
LEAD_CHARS = 400
"""Body characters used when a news item has no ``text``: the model truncates at 128 tokens."""


@dataclass(frozen=True, slots=True)
class RawRecord:
    """The parts of a consumed Kafka record the scorer needs (kafka-python ``ConsumerRecord``)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None

    @classmethod
    def from_consumer_record(cls, rec: Any) -> RawRecord:
        return cls(rec.topic, rec.partition, rec.offset, int(rec.timestamp), rec.key, rec.value)

    @property
    def default_id(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class InputMessage:
    """A valid input: what the model scores plus the fields copied to the scored record."""

    id: str
    ts_ms: int
    kind: Kind
    source: str
    text: str
    tickers: tuple[str, ...]
    lang: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record cannot be used; ``reason`` is one of :data:`REASONS`."""

    reason: str
    detail: str


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.rejection = Rejection(reason, detail)


def kind_for_topic(topic: str, *, news_topic: str, comments_topic: str) -> Kind:
    """Default ``kind`` of a record from its topic: the configured topics first, then the name."""
    if topic == news_topic:
        return "news"
    if topic == comments_topic:
        return "comment"
    return "news" if "news" in topic.lower() else "comment"


def decode(raw: RawRecord, *, default_kind: Kind, max_bytes: int,
           now_ms: int | None = None) -> InputMessage | Rejection:
    """Turn one record into an :class:`InputMessage`, or say why not. Never raises on input.

    ``now_ms`` (default: the wall clock) is what an event time may not run ahead of by more
    than ``sentimon.timestamps.FUTURE_TOLERANCE_S``: the monitor would refuse such a record.
    """
    try:
        return _decode(raw, default_kind=default_kind, max_bytes=max_bytes,
                       now_ms=now_ms if now_ms is not None else int(time.time() * 1000))
    except _Reject as exc:
        return exc.rejection


def _decode(raw: RawRecord, *, default_kind: Kind, max_bytes: int, now_ms: int) -> InputMessage:
    value = raw.value
    if value is None:
        raise _Reject("no_value", "record value is null")
    if len(value) > max_bytes:
        raise _Reject("too_large", f"value is {len(value)} bytes, limit {max_bytes}")
    try:
        # utf-8-sig: a leading byte-order mark is harmless, so it is accepted and dropped.
        text_value = value.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Reject("invalid_utf8", f"byte {exc.start}: {exc.reason}") from None
    try:
        doc = json.loads(text_value, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise _Reject("invalid_json", str(exc)[:200]) from None
    if not isinstance(doc, dict):
        raise _Reject("not_an_object", f"JSON value is {_json_type(doc)}, expected an object")

    kind = _kind(doc, default_kind)
    text = _text(doc, kind)
    given = _tickers(doc)
    msg_id = _optional_id(doc) or raw.default_id
    ts_ms = _ts_ms(doc, raw.timestamp_ms)
    try:
        check_not_future(ts_ms, now_ms=now_ms)
    except TimestampError as exc:
        raise _Reject("future_ts", f"ts: {exc}") from None
    return InputMessage(
        id=msg_id,
        ts_ms=ts_ms,
        kind=kind,
        source=_optional_str(doc, "source", MAX_SHORT_CHARS) or raw.topic,
        text=text,
        tickers=tuple(merge_tickers(given, text)),
        lang=_optional_str(doc, "lang", MAX_SHORT_CHARS),
        url=_optional_str(doc, "url", MAX_URL_CHARS),
    )


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _utf8(field: str, s: str) -> str:
    # json.loads accepts "\ud800"; such a string cannot be encoded, tokenised or re-emitted.
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise _Reject("invalid_utf8", f"{field}: lone surrogate escape") from None
    return s


def _get_str(doc: dict[str, Any], field: str) -> str | None:
    v = doc.get(field)
    if v is None:
        return None
    if not isinstance(v, str):
        raise _Reject("wrong_type", f"{field}: expected a string, got {_json_type(v)}")
    return _utf8(field, v)


def _optional_str(doc: dict[str, Any], field: str, limit: int) -> str | None:
    v = _get_str(doc, field)
    if v is None:
        return None
    v = v.strip()
    if len(v) > limit:
        raise _Reject("invalid_value", f"{field}: longer than {limit} characters")
    return v or None


def _optional_id(doc: dict[str, Any]) -> str | None:
    v = doc.get("id")
    # Integer ids (tweet ids, database keys) are common and unambiguous, so they are accepted.
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return _optional_str(doc, "id", MAX_ID_CHARS)


def _kind(doc: dict[str, Any], default: Kind) -> Kind:
    v = _get_str(doc, "kind")
    if v is None:
        return default
    for k in KINDS:
        if v == k:
            return k
    raise _Reject("invalid_value", f"kind: {v[:40]!r} is not one of {', '.join(KINDS)}")


def _text(doc: dict[str, Any], kind: Kind) -> str:
    text = _get_str(doc, "text")
    if text is not None:
        if not text.strip():
            raise _Reject("empty_text", "text is empty or white space")
        return text.strip()
    if kind == "news":
        title = (_get_str(doc, "title") or "").strip()
        lead = _lead(_get_str(doc, "body") or "")
        if title and lead:
            sep = " " if title[-1] in ".!?:;" else ". "
            return title + sep + lead
        if title or lead:
            return title or lead
        if "title" in doc or "body" in doc:
            raise _Reject("empty_text", "title and body are empty or white space")
        raise _Reject("missing_text", "no text, title or body")
    raise _Reject("missing_text", "no text")


def _lead(body: str) -> str:
    """First paragraph of a body, cut at a word boundary near :data:`LEAD_CHARS`."""
    para = next((p.strip() for p in body.replace("\r", "").split("\n\n") if p.strip()), "")
    para = " ".join(para.split())
    if len(para) <= LEAD_CHARS:
        return para
    cut = para.rfind(" ", 0, LEAD_CHARS)
    return para[: cut if cut > 0 else LEAD_CHARS]


def _tickers(doc: dict[str, Any]) -> list[str]:
    v = doc.get("tickers")
    if v is None:
        return []
    if not isinstance(v, list):
        raise _Reject("wrong_type", f"tickers: expected an array, got {_json_type(v)}")
    if len(v) > MAX_TICKERS:
        raise _Reject("invalid_value", f"tickers: more than {MAX_TICKERS} symbols")
    out = []
    for i, item in enumerate(v):
        if not isinstance(item, str):
            raise _Reject("wrong_type", f"tickers[{i}]: expected a string, got {_json_type(item)}")
        symbol = normalize_ticker(item)
        if symbol is None:
            raise _Reject("invalid_value", f"tickers[{i}]: {item[:20]!r} is not a ticker symbol")
        out.append(symbol)
    return out


def _ts_ms(doc: dict[str, Any], record_ts_ms: int) -> int:
    """``ts`` by the rule of ``sentimon.timestamps`` (no offset = UTC); the record's own time if absent."""
    v = doc.get("ts")
    if v is None:
        return record_ts_ms
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise _Reject("wrong_type", f"ts: expected a string or a number, got {_json_type(v)}")
    try:
        ms = parse_rfc3339_ms(_utf8("ts", v), require_offset=False) if isinstance(v, str) else epoch_ms(v)
        rfc3339_ms(ms)  # years past 9999 cannot be written back out
    except (TimestampError, ValueError, OverflowError, OSError) as exc:
        raise _Reject("invalid_value", f"ts: {exc}") from None
    return ms


def rfc3339_ms(ts_ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds: ``2014-01-01T00:00:48.000Z``."""
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"
