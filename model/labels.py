"""Label names of both heads and the mappings from the source datasets' ids.

Labels are always mapped *by name*: the sentiment source numbers its classes
Bearish=0, Bullish=1, Neutral=2, while the model's sentiment head is ordered
negative / neutral / positive so that ``score = P(positive) - P(negative)`` reads naturally.
No torch here: the runtime path imports this module.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

#: Topic names in the id order of ``topic_labels.csv`` (the topic head's output order).
TOPICS: tuple[str, ...] = (
    "Analyst Update",
    "Fed | Central Banks",
    "Company | Product News",
    "Treasuries | Corporate Debt",
    "Dividend",
    "Earnings",
    "Energy | Oil",
    "Financials",
    "Currencies",
    "General News | Opinion",
    "Gold | Metals | Materials",
    "IPO",
    "Legal | Regulation",
    "M&A | Investments",
    "Macro",
    "Markets",
    "Politics",
    "Personnel Change",
    "Stock Commentary",
    "Stock Movement",
)

#: Sentiment names in the sentiment head's output order.
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")

#: Label value for "this example has no label for this head" (PyTorch's CE ignore_index).
IGNORE_INDEX = -100

# The sentiment source's class names, mapped to our polarity names.
_SENT_SOURCE_NAMES: Mapping[str, str] = {
    "bearish": "negative",
    "bullish": "positive",
    "neutral": "neutral",
    "negative": "negative",
    "positive": "positive",
}


def topic_index(name: str) -> int:
    """Index of a topic name in :data:`TOPICS` (exact match)."""
    try:
        return TOPICS.index(name)
    except ValueError:
        raise KeyError(f"unknown topic {name!r}") from None


def sentiment_index(name: str) -> int:
    """Index in :data:`SENTIMENTS` of a polarity or source class name (Bearish/Bullish/Neutral)."""
    key = name.strip().lower()
    if key not in _SENT_SOURCE_NAMES:
        raise KeyError(f"unknown sentiment {name!r}")
    return SENTIMENTS.index(_SENT_SOURCE_NAMES[key])


def read_topic_label_map(path: Path) -> dict[int, int]:
    """Source topic id -> index in :data:`TOPICS`, read from ``topic_labels.csv`` by name.

    Raises if the file names a topic that :data:`TOPICS` does not know, so a changed
    label file cannot silently shift the classes.
    """
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    mapping = {int(r["label"]): topic_index(r["name"].strip()) for r in rows}
    if sorted(mapping.values()) != list(range(len(TOPICS))):
        raise ValueError(f"{path} does not name each of the {len(TOPICS)} topics exactly once")
    return mapping


def read_sentiment_label_map(path: Path) -> dict[int, int]:
    """Source sentiment id -> index in :data:`SENTIMENTS`, read from ``sent_labels.csv``.

    Uses the ``polarity`` column when present, else the class ``name``.
    """
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    mapping = {
        int(r["label"]): sentiment_index(r.get("polarity") or r["name"]) for r in rows
    }
    if sorted(mapping.values()) != list(range(len(SENTIMENTS))):
        raise ValueError(f"{path} does not name each sentiment exactly once")
    return mapping


def label_maps() -> dict[str, list[str]]:
    """Both heads' label lists, as written into ONNX metadata and the model card."""
    return {"topic": list(TOPICS), "sentiment": list(SENTIMENTS)}
