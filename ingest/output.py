"""Scored records (``topics.scored``): one JSON document per input, keyed by predicted topic.

Fields are those of docs/contracts.md, JSON Schema ``ingest/schemas/scored.schema.json``;
``lang`` and ``url`` are copied from the input too (null when absent).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from sentimon.ingest.message import InputMessage, rfc3339_ms


class PredictionLike(Protocol):
    """What the scorer reads from ``sentimon.model.inference.Prediction``."""

    topic: str
    topic_prob: float
    sentiment: str
    sentiment_probs: dict[str, float]
    score: float


def scored_value(
    msg: InputMessage, pred: PredictionLike, *, model: str, scored_at_ms: int
) -> dict[str, Any]:
    """The scored document for ``msg``; ``model`` is ``name@version``.

    ``text`` is the text the model scored, cut to 280 code points (the last an ellipsis when
    cut; the schema's ``maxLength`` counts code points too): alerts quote it as exemplars of a
    burst, and a tweet's length is enough to recognise an item without a long article
    bloating every record.
    """
    text = msg.text if len(msg.text) <= 280 else msg.text[:279].rstrip() + "\u2026"
    return {
        "id": msg.id,
        "ts": rfc3339_ms(msg.ts_ms),
        "kind": msg.kind,
        "source": msg.source,
        "tickers": list(msg.tickers),
        "topic": pred.topic,
        "topic_prob": float(pred.topic_prob),
        "sentiment": pred.sentiment,
        "sentiment_probs": {k: float(v) for k, v in pred.sentiment_probs.items()},
        "score": float(pred.score),
        "model": model,
        "scored_at": rfc3339_ms(scored_at_ms),
        "lang": msg.lang,
        "url": msg.url,
        "text": text,
    }


def encode(doc: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the wire form of scored and dead-letter records."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
