"""Label maps, text normalisation and metrics of the model package (no torch)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from sentimon.model.data import default_data_dir
from sentimon.model.labels import (
    IGNORE_INDEX,
    SENTIMENTS,
    TOPICS,
    label_maps,
    read_sentiment_label_map,
    read_topic_label_map,
    sentiment_index,
    topic_index,
)
from sentimon.model.metrics import classification_report
from sentimon.model.text import dedup_key, normalize, pad_batch

DATA = default_data_dir()
needs_data = pytest.mark.skipif(
    not (DATA / "twitter_fin_topic").is_dir(), reason=f"data sets not found under {DATA}"
)


def test_label_constants():
    assert len(TOPICS) == 20 and len(set(TOPICS)) == 20
    assert SENTIMENTS == ("negative", "neutral", "positive")
    assert IGNORE_INDEX == -100
    assert label_maps() == {"topic": list(TOPICS), "sentiment": list(SENTIMENTS)}


def test_sentiment_maps_by_name_not_by_id():
    assert sentiment_index("Bearish") == 0
    assert sentiment_index("Neutral") == 1
    assert sentiment_index("Bullish") == 2
    assert sentiment_index(" positive ") == 2
    with pytest.raises(KeyError):
        sentiment_index("meh")
    with pytest.raises(KeyError):
        topic_index("Sports")


@needs_data
def test_topics_match_label_file_in_id_order():
    with (DATA / "twitter_fin_topic" / "topic_labels.csv").open(encoding="utf-8") as fh:
        names = [r["name"] for r in sorted(csv.DictReader(fh), key=lambda r: int(r["label"]))]
    assert tuple(names) == TOPICS
    assert read_topic_label_map(DATA / "twitter_fin_topic" / "topic_labels.csv") == {
        i: i for i in range(20)
    }


@needs_data
def test_source_sentiment_ids_reordered():
    # Source: 0 Bearish, 1 Bullish, 2 Neutral -> ours: negative, neutral, positive.
    got = read_sentiment_label_map(DATA / "twitter_fin_sentiment" / "sent_labels.csv")
    assert got == {0: 0, 1: 2, 2: 1}


def test_label_file_with_unknown_topic_is_refused(tmp_path: Path):
    f = tmp_path / "labels.csv"
    f.write_text("label,name\n0,Sports\n", encoding="utf-8")
    with pytest.raises(KeyError):
        read_topic_label_map(f)


def test_normalize_and_dedup_key():
    raw = "Apple &amp; Tesla  rally\n https://t.co/AbC123 today  www.x.com/y"
    assert normalize(raw) == "Apple & Tesla rally today"
    assert dedup_key(raw) == "apple & tesla rally today"
    assert dedup_key("APPLE & tesla rally today https://t.co/zzz") == dedup_key(raw)
    assert normalize("") == ""


def test_pad_batch():
    ids, mask = pad_batch([[101, 5, 102], [101, 102]])
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    assert ids.tolist() == [[101, 5, 102], [101, 102, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]


def test_classification_report():
    r = classification_report([0, 0, 1, 2], [0, 1, 1, 1], ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(0.5)
    assert r["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert r["per_class"]["a"]["precision"] == 1.0
    assert r["per_class"]["a"]["recall"] == 0.5
    assert r["per_class"]["b"]["precision"] == pytest.approx(1 / 3)
    assert r["per_class"]["c"]["f1"] == 0.0
    # macro-F1 averages the classes present: (2/3 + 1/2 + 0) / 3
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0) / 3)
