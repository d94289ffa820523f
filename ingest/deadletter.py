"""Dead-letter records: the original bytes, where they came from, and why they were refused.

Value (JSON, UTF-8) on ``topics.dlq``, keyed by the original key: ``reason``, ``detail``,
``topic``, ``partition``, ``offset``, ``timestamp_ms``, ``value_b64`` (docs/contracts.md),
plus ``value_size`` (bytes of the original value, -1 for a null value), ``value_truncated``,
``key_size`` (-1 for a null key), ``key_truncated`` and ``dead_lettered_at`` (RFC 3339 UTC).

The whole record, key and value, is bounded (:data:`MAX_DLQ_RECORD_BYTES`): a dead letter
the producer or broker refuses for its size would stop its partition for good, since the
scorer would fail on the same record after every restart.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from sentimon.ingest.message import RawRecord, Rejection, rfc3339_ms
from sentimon.ingest.output import encode

MAX_DLQ_VALUE_BYTES = 700_000
"""Original bytes copied at most. Base64 grows them by 4/3; a longer value is cut
(``value_truncated: true``) and stays whole in its input topic at ``topic/partition/offset``."""

MAX_DLQ_KEY_BYTES = 1024
"""Original key bytes kept as the dead letter's key; a longer key is cut (``key_truncated``)."""

MAX_DLQ_RECORD_BYTES = 1_000_000
"""Key plus value of one dead letter at most. kafka-python's ``max_request_size`` and the
broker's default ``message.max.bytes`` are 1 MiB; this leaves 48 kB for the record framing."""


def dead_letter_value(
    raw: RawRecord, rejection: Rejection, *, now_ms: int | None = None,
    max_value_bytes: int = MAX_DLQ_VALUE_BYTES,
) -> dict[str, Any]:
    """The dead-letter document for ``raw`` refused with ``rejection``."""
    value = raw.value
    kept = value[:max_value_bytes] if value is not None else None
    key = raw.key
    return {
        "reason": rejection.reason,
        "detail": rejection.detail,
        "topic": raw.topic,
        "partition": raw.partition,
        "offset": raw.offset,
        "timestamp_ms": raw.timestamp_ms,
        "value_b64": base64.b64encode(kept).decode("ascii") if kept is not None else None,
        "value_size": len(value) if value is not None else -1,
        "value_truncated": value is not None and len(value) > max_value_bytes,
        "key_size": len(key) if key is not None else -1,
        "key_truncated": key is not None and len(key) > MAX_DLQ_KEY_BYTES,
        "dead_lettered_at": rfc3339_ms(now_ms if now_ms is not None else int(time.time() * 1000)),
    }


def dead_letter_record(
    raw: RawRecord, rejection: Rejection, *, now_ms: int | None = None,
    max_bytes: int = MAX_DLQ_RECORD_BYTES,
) -> tuple[bytes | None, bytes]:
    """``(key, value)`` of the dead letter, together at most ``max_bytes`` when that allows
    the document without the original value; the value is cut to what fits.

    With ``max_bytes=0`` the result is the smallest dead letter (no key, no original bytes):
    the fallback when the broker refuses the full one.
    """
    key = raw.key[:MAX_DLQ_KEY_BYTES] if raw.key is not None and max_bytes else None
    bare = encode(dead_letter_value(raw, rejection, now_ms=now_ms, max_value_bytes=0))
    room = max_bytes - len(bare) - len(key or b"")
    # Base64 turns every 3 bytes (or part) into 4 characters.
    keep = min(MAX_DLQ_VALUE_BYTES, max(0, room) // 4 * 3)
    return key, encode(dead_letter_value(raw, rejection, now_ms=now_ms, max_value_bytes=keep))
