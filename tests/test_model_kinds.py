"""Text kind (tweet / headline), the by-kind report and the card's by-kind section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentimon.model.card import CARD_JSON, CARD_MD, refresh_kinds, render_markdown, sha256
from sentimon.model.evaluate import kind_reports, kind_table
from sentimon.model.kinds import kind_counts, markers, text_kind
from sentimon.model.labels import SENTIMENTS

TWEETS = [
    "$BPTH buy the dip.",
    "$SPY we are long 🚨🔥 big play to come",
    "I bought more today, feeling good about this one",
    "@Wild_Tiger99 I avoid them when I can.",
    "RT @zerohedge: Fed hikes again",
    "Q4 GDP: Trudging Along. https://t.co/IQebEf5ooz #business #stockmarket",
    "$MSFT - Microsoft Azure looks strong going into Q4, Wedbush says https://t.co/abc",
    "imo this stock is going nowhere",
    "Congratulations to @Contentsquare on its growth round!",
]
HEADLINES = [
    "GE brings in shipper Maersk's CFO as finance chief",
    "LVMH nears deal to buy Tiffany for $16.3 billion https://t.co/SlI2ZpyYhH",
    "Oil Slumps as Market Catches up with Empty Trade-Deal Talk",
    "Electric bike startup Joco begins testing a new vehicle (via @climate) https://t.co/x",
    "US Corporate Debt Issuance To Weaken As Rates Rise - @FitchRatings",
    "Lawmaker urges Yellen to remove red tape for Series I bonds",
    "O-I Glass's subsidiary emerges from Chapter 11 protection",
    "\u201cI have a great deal of respect for him,\u201d former counsel says",
    "Apple is #1 in smartphone sales &amp; profit",
    "Hologic to sell Cynosure aesthetics unit for net $138M",
]


@pytest.mark.parametrize("text", TWEETS)
def test_tweets(text: str) -> None:
    assert text_kind(text) == "tweet", markers(text)


@pytest.mark.parametrize("text", HEADLINES)
def test_headlines(text: str) -> None:
    assert text_kind(text) == "headline", markers(text)


def test_markers_and_counts() -> None:
    assert markers("$SPY my long 🚨") == ["cashtag", "emoji", "first_person"]
    assert markers("Stocks rise https://t.co/x") == []
    # Raw and normalised forms agree: URLs and entities are ignored either way.
    assert text_kind("Fed holds &amp; waits https://t.co/#abc") == "headline"
    assert kind_counts([*TWEETS, *HEADLINES]) == {"tweet": len(TWEETS), "headline": len(HEADLINES)}
    assert kind_counts([]) == {"tweet": 0, "headline": 0}


def test_kind_reports() -> None:
    neg, neu, pos = (SENTIMENTS.index(n) for n in ("negative", "neutral", "positive"))
    y = [neg, neg, neu, pos, neg, neu]
    p = [neg, neu, neu, pos, neg, neg]
    kinds = ["tweet", "tweet", "tweet", "tweet", "headline", "headline"]
    r = kind_reports(y, p, kinds, SENTIMENTS)
    assert r["tweet"]["n"] == 4 and r["tweet"]["accuracy"] == pytest.approx(0.75)
    assert r["tweet"]["negative"]["precision"] == 1.0
    assert r["tweet"]["negative"]["recall"] == 0.5
    assert r["headline"]["accuracy"] == 0.5
    assert r["headline"]["negative"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    # A kind with no rows is left out, not reported as accuracy 0.
    assert list(kind_reports([0], [0], ["tweet"], SENTIMENTS)) == ["tweet"]
    # The topic head has no "negative" class: no such entry.
    assert "negative" not in kind_reports([0, 1], [0, 1], ["tweet", "headline"], ["a", "b"])["tweet"]


def _metrics(acc: float = 0.8) -> dict:
    head = {"n": 4, "accuracy": acc, "macro_f1": 0.7}
    by_kind = {
        "topic": {"tweet": {"n": 1, "accuracy": 1.0, "macro_f1": 1.0},
                  "headline": {"n": 3, "accuracy": 2 / 3, "macro_f1": 0.5}},
        "sentiment": {k: {"n": 2, "accuracy": 0.5, "macro_f1": 0.4,
                          "negative": {"precision": 0.25, "recall": 0.75, "f1": 0.375,
                                       "support": 1}} for k in ("tweet", "headline")},
    }
    return {
        "data": {"topic_valid": 4, "sent_valid": 4,
                 "kinds": {"topic_valid": {"tweet": 1, "headline": 3},
                           "sent_valid": {"tweet": 2, "headline": 2}}},
        "variants": {"int8": {"topic": head, "sentiment": head, "by_kind": by_kind,
                              "texts_per_second": 1.0}},
    }


def _head(acc: float) -> dict:
    return {"n": 4, "accuracy": acc, "macro_f1": 0.7, "per_class": {}, "confusion": []}


def test_refresh_kinds_keeps_everything_else(tmp_path: Path) -> None:
    (tmp_path / "model.int8.onnx").write_bytes(b"onnx")
    card = {
        "name": "m", "version": "1", "created_utc": "2026-01-01T00:00:00Z",
        "base_model": {"name": "b", "license": "l", "package": "p", "architecture": "a"},
        "data": {"sources": [], "train_test_policy": "x",
                 "evaluated_on": {"topic_valid": 4, "sent_valid": 4}},
        "labels": {"topic": ["a"], "sentiment": list(SENTIMENTS)},
        "source_label_mapping": {"sentiment": "s"},
        "metrics": {"fp32": {"topic": _head(0.9), "sentiment": _head(0.9)},
                    "int8": {"topic": _head(0.801), "sentiment": _head(0.8)}},
        "targets": {"sentiment_accuracy": 0.88, "topic_accuracy": 0.9}, "target_gaps": {},
        "artifacts": {},
    }
    (tmp_path / CARD_JSON).write_text(json.dumps(card), encoding="utf-8")
    out = refresh_kinds(tmp_path, _metrics(), command="sentimon evaluate X --card-kinds")
    saved = json.loads((tmp_path / CARD_JSON).read_text(encoding="utf-8"))
    assert saved == out
    assert saved["created_utc"] == card["created_utc"]
    assert saved["metrics"]["fp32"] == card["metrics"]["fp32"]
    assert saved["metrics"]["int8"]["topic"] == card["metrics"]["int8"]["topic"]
    assert saved["metrics"]["int8"]["by_kind"]["sentiment"]["tweet"]["negative"]["recall"] == 0.75
    assert saved["data"]["evaluated_on"]["kinds"]["topic_valid"] == {"tweet": 1, "headline": 3}
    assert saved["artifacts"]["model.int8.onnx"]["sha256"] == sha256(tmp_path / "model.int8.onnx")
    md = (tmp_path / CARD_MD).read_text(encoding="utf-8")
    assert md == render_markdown(saved)
    assert "## By text kind" in md
    assert "| int8 | sentiment | tweet | 2 | 50.00 | 40.00 | 25.00 | 75.00 |" in md
    assert "| int8 | topic | headline | 3 | 66.67 | 50.00 | - | - |" in md
    assert "- command: `sentimon evaluate X --card-kinds`" in md
    # Figures of another model or another data cut are refused.
    with pytest.raises(ValueError, match="accuracy"):
        refresh_kinds(tmp_path, _metrics(acc=0.7))
    bad = _metrics()
    bad["data"]["sent_valid"] = 3
    with pytest.raises(ValueError, match="sent_valid"):
        refresh_kinds(tmp_path, bad)


def test_kind_table() -> None:
    table = kind_table(_metrics())
    assert "neg P" in table.splitlines()[0]
    assert len(table.splitlines()) == 1 + 4
