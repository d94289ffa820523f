"""Dead-letter records: the original bytes, where they came from, and why they were refused.

Value (JSON, UTF-8) on ``topics.dlq``, keyed by the original key: ``reason``, ``detail``,
``topic``, ``partition``, ``offset``, ``timestamp_ms``, ``value_b64`` (docs/contracts.md),
plus ``value_size`` (bytes of the original value, -1 for a null value), ``value_truncated``
and ``dead_lettered_at`` (RFC 3339 UTC).
"""

from __future__ import annotations

import base64
import time
from typing import Any

from sentimon.ingest.message import RawRecord, Rejection, rfc3339_ms

MAX_DLQ_VALUE_BYTES = 700_000
"""Original bytes copied in full up to this size. Base64 grows them by 4/3, and the result
must stay under the producer's and broker's 1 MiB default record limit; a longer value is
cut (``value_truncated: true``) and stays whole in its input topic at ``topic/partition/offset``."""


def dead_letter_value(
    raw: RawRecord, rejection: Rejection, *, now_ms: int | None = None
) -> dict[str, Any]:
    """The dead-letter document for ``raw`` refused with ``rejection``."""
    value = raw.value
    kept = value[:MAX_DLQ_VALUE_BYTES] if value is not None else None
    return {
        "reason": rejection.reason,
        "detail": rejection.detail,
        "topic": raw.topic,
        "partition": raw.partition,
        "offset": raw.offset,
        "timestamp_ms": raw.timestamp_ms,
        "value_b64": base64.b64encode(kept).decode("ascii") if kept is not None else None,
        "value_size": len(value) if value is not None else -1,
        "value_truncated": value is not None and len(value) > MAX_DLQ_VALUE_BYTES,
        "dead_lettered_at": rfc3339_ms(now_ms if now_ms is not None else int(time.time() * 1000)),
    }

