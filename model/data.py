"""Loading the two labelled tweet sets into one multi-task example list.

Each :class:`Example` carries either a topic label or a sentiment label; the other is
:data:`~sentimon.model.labels.IGNORE_INDEX` so that head's loss is masked. Training rows whose
normalised text also occurs in *either* validation split are dropped (the same headline is
often tweeted twice), and a small seeded dev split is held out of training for early
stopping, so the validation splits stay an untouched test set.
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sentimon.model.labels import (
    IGNORE_INDEX,
    read_sentiment_label_map,
    read_topic_label_map,
)
from sentimon.model.text import dedup_key, normalize

DATA_ENV = "SENTIMON_DATA_DIR"
TOPIC_DIR = "twitter_fin_topic"
SENT_DIR = "twitter_fin_sentiment"

#: Data sets and licenses, for the model card.
SOURCES: tuple[dict[str, str], ...] = (
    {
        "name": "Twitter Financial News Topic (zeroshot/twitter-financial-news-topic)",
        "files": f"{TOPIC_DIR}/topic_train.csv, topic_valid.csv, topic_labels.csv",
        "license": "MIT",
    },
    {
        "name": "Twitter Financial News Sentiment (zeroshot/twitter-financial-news-sentiment)",
        "files": f"{SENT_DIR}/sent_train.csv, sent_valid.csv, sent_labels.csv",
        "license": "MIT",
    },
)


@dataclass(frozen=True, slots=True)
class Example:
    """One normalised text with a label for one head; the other head's label is masked."""

    text: str
    topic: int = IGNORE_INDEX
    sentiment: int = IGNORE_INDEX


@dataclass(slots=True)
class Splits:
    """Train / dev (from training data) and the two validation splits (the test sets)."""

    train: list[Example]
    dev: list[Example]
    topic_valid: list[Example]
    sent_valid: list[Example]
    stats: dict[str, int] = field(default_factory=dict)


def default_data_dir() -> Path:
    """``$SENTIMON_DATA_DIR``, else ``../shared/data`` next to the repository root."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parent.parent
    return (repo_root / ".." / "shared" / "data").resolve()


def _read_rows(path: Path) -> list[tuple[str, int]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [(r["text"], int(r["label"])) for r in csv.DictReader(fh)]


def load_topic(data_dir: Path, split: str) -> list[Example]:
    """``topic_{split}.csv`` as examples with the topic label mapped by name."""
    d = data_dir / TOPIC_DIR
    mapping = read_topic_label_map(d / "topic_labels.csv")
    return [Example(normalize(t), topic=mapping[y]) for t, y in _read_rows(d / f"topic_{split}.csv")]


def load_sentiment(data_dir: Path, split: str) -> list[Example]:
    """``sent_{split}.csv`` as examples with Bearish/Bullish/Neutral mapped to our order."""
    d = data_dir / SENT_DIR
    mapping = read_sentiment_label_map(d / "sent_labels.csv")
    return [
        Example(normalize(t), sentiment=mapping[y]) for t, y in _read_rows(d / f"sent_{split}.csv")
    ]


def _holdout(rows: list[Example], fraction: float, rng: random.Random) -> tuple[list, list]:
    idx = list(range(len(rows)))
    rng.shuffle(idx)
    n_dev = round(len(rows) * fraction)
    dev = set(idx[:n_dev])
    return [r for i, r in enumerate(rows) if i not in dev], [rows[i] for i in sorted(dev)]


def load_splits(
    data_dir: Path | None = None,
    *,
    dev_fraction: float = 0.05,
    seed: int = 13,
    limit: int | None = None,
) -> Splits:
    """Load both data sets, de-overlap train from valid, hold out a seeded dev split.

    ``limit`` caps the rows taken from each training file *and* each validation file
    (first rows after a seeded shuffle), for tiny test runs.
    """
    data_dir = data_dir or default_data_dir()
    rng = random.Random(seed)
    topic_train = load_topic(data_dir, "train")
    sent_train = load_sentiment(data_dir, "train")
    topic_valid = load_topic(data_dir, "valid")
    sent_valid = load_sentiment(data_dir, "valid")
    if limit is not None:
        topic_train, sent_train, topic_valid, sent_valid = (
            _sample(x, limit, rng) for x in (topic_train, sent_train, topic_valid, sent_valid)
        )
    # Dedup against *both* validation splits: a headline in topic_valid must not be learned
    # from the sentiment set either, since the encoder is shared.
    valid_keys = {dedup_key(e.text) for e in (*topic_valid, *sent_valid)}
    stats: dict[str, int] = {
        "topic_train_rows": len(topic_train),
        "sent_train_rows": len(sent_train),
    }
    topic_train = [e for e in topic_train if dedup_key(e.text) not in valid_keys and e.text]
    sent_train = [e for e in sent_train if dedup_key(e.text) not in valid_keys and e.text]
    stats["topic_removed_overlap"] = stats["topic_train_rows"] - len(topic_train)
    stats["sent_removed_overlap"] = stats["sent_train_rows"] - len(sent_train)
    # Hold out per data set so both heads get a dev score.
    t_train, t_dev = _holdout(topic_train, dev_fraction, rng)
    s_train, s_dev = _holdout(sent_train, dev_fraction, rng)
    train, dev = t_train + s_train, t_dev + s_dev
    stats.update(
        train=len(train), dev=len(dev), topic_valid=len(topic_valid), sent_valid=len(sent_valid)
    )
    return Splits(train=train, dev=dev, topic_valid=topic_valid, sent_valid=sent_valid, stats=stats)


def _sample(rows: list[Example], n: int, rng: random.Random) -> list[Example]:
    if n >= len(rows):
        return rows
    return rng.sample(rows, n)


def class_counts(rows: Iterable[Example], head: str, n_classes: int) -> list[int]:
    """Per-class counts of one head's labels (masked rows skipped)."""
    counts = [0] * n_classes
    for e in rows:
        y = getattr(e, head)
        if y != IGNORE_INDEX:
            counts[y] += 1
    return counts
