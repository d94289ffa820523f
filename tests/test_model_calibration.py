"""Temperature scaling: ECE, the fit, and the scorer's use of ``calibration.json`` (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sentimon.model.calibration import (
    CALIBRATION_FILE,
    ece,
    fit_temperature,
    head_measures,
    nll,
    reliability,
    reliability_diagram,
    softmax,
    temperatures_for,
)
from sentimon.model.inference import RELEASE_DIR, SentimentModel

TEXTS = [
    "$AAPL beats earnings estimates, raises guidance; shares jump 6% after hours",
    "Oil prices slump as OPEC+ output rises",
    "Fed holds rates steady, signals patience",
    "Bank shares tumble after weak guidance, analysts cut targets",
]


def test_ece_analytic_two_bins():
    # 10 rows at confidence 0.9, all right (gap 0.1); 10 at 0.6, half right (gap 0.1).
    probs = np.array([[0.9, 0.1]] * 10 + [[0.6, 0.4]] * 10)
    labels = np.array([0] * 10 + [0] * 5 + [1] * 5)
    assert ece(probs, labels) == pytest.approx(0.1)
    r = reliability(probs, labels)
    assert sum(r["count"]) == 20
    assert r["count"][13] == 10 and r["count"][8] == 10  # (13/15, 14/15] and (8/15, 9/15]
    assert r["accuracy"][8] == pytest.approx(0.5)


def test_ece_single_bin_and_perfect_calibration():
    probs = np.array([[0.8, 0.2]] * 10)
    assert ece(probs, np.array([0] * 6 + [1] * 4)) == pytest.approx(0.2)
    assert ece(probs, np.array([0] * 8 + [1] * 2)) == pytest.approx(0.0)
    # Confidence 1.0 falls into the last bin, not past it.
    assert reliability(np.array([[1.0, 0.0]]), np.array([0]))["count"][-1] == 1


def test_fit_recovers_known_temperature():
    rng = np.random.default_rng(7)
    true_t = 2.0
    logits = rng.normal(0.0, 3.0, size=(20000, 3))
    p = softmax(logits, true_t)
    labels = (rng.random(len(p))[:, None] > p.cumsum(axis=1)).sum(axis=1)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(true_t, rel=0.05)
    # A minimum of the NLL: both neighbours are worse.
    assert nll(logits, labels, t) < nll(logits, labels, t * 1.1)
    assert nll(logits, labels, t) < nll(logits, labels, t / 1.1)
    m = head_measures(logits, labels, t)
    assert m["ece_after"] < 0.02 < m["ece_before"]  # over-confident at T = 1


def test_fit_needs_rows():
    with pytest.raises(ValueError, match="no labelled rows"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int))


def _release_copy(tmp_path: Path) -> Path:
    """The release's int8 model and tokenizer, linked into a directory without calibration."""
    d = tmp_path / "rel"
    d.mkdir()
    for name in ("model.int8.onnx", "tokenizer.json"):
        (d / name).symlink_to(RELEASE_DIR / name)
    return d


def test_scoring_applies_temperatures_argmax_unchanged(tmp_path):
    d = _release_copy(tmp_path)
    # No calibration.json: T = 1, probabilities are the plain softmax (as before).
    plain = SentimentModel.load(d, device="cpu", variant="int8")
    assert plain.temperatures == {"topic": 1.0, "sentiment": 1.0}
    topic_logits, sent_logits = plain.logits(TEXTS)
    before = plain.predict(TEXTS)
    for i, p in enumerate(before):
        want = softmax(sent_logits[i : i + 1])[0]
        assert [p.sentiment_probs[s] for s in plain.sentiments] == pytest.approx(want.tolist())

    (d / CALIBRATION_FILE).write_text(
        json.dumps({"temperatures": {"int8": {"topic": 1.5, "sentiment": 2.0}}}), encoding="utf-8"
    )
    cal = SentimentModel.load(d, device="cpu", variant="int8")
    assert cal.temperatures == {"topic": 1.5, "sentiment": 2.0}
    after = cal.predict(TEXTS)
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        assert (a.topic, a.sentiment) == (b.topic, b.sentiment)  # argmax unchanged
        want = softmax(sent_logits[i : i + 1], 2.0)[0]
        assert [a.sentiment_probs[s] for s in cal.sentiments] == pytest.approx(want.tolist())
        assert a.topic_prob == pytest.approx(softmax(topic_logits[i : i + 1], 1.5)[0].max())
        assert a.topic_prob < b.topic_prob  # T > 1 softens the top probability
    # Opting out for a refit gives the raw model back.
    raw = SentimentModel.load(d, device="cpu", variant="int8", calibrated=False)
    assert raw.temperatures == {"topic": 1.0, "sentiment": 1.0}


def test_missing_variant_scores_uncalibrated_and_bad_file_fails(tmp_path):
    (tmp_path / CALIBRATION_FILE).write_text(
        json.dumps({"temperatures": {"fp16": {"sentiment": 1.3}}}), encoding="utf-8"
    )
    assert temperatures_for(tmp_path, "int8") == {"topic": 1.0, "sentiment": 1.0}
    assert temperatures_for(tmp_path, "fp16") == {"topic": 1.0, "sentiment": 1.3}
    (tmp_path / CALIBRATION_FILE).write_text(
        json.dumps({"temperatures": {"int8": {"sentiment": 0}}}), encoding="utf-8"
    )
    with pytest.raises(ValueError, match=r"bad int8\.sentiment temperature"):
        temperatures_for(tmp_path, "int8")


def test_release_ships_fitted_temperatures():
    data = json.loads((RELEASE_DIR / CALIBRATION_FILE).read_text(encoding="utf-8"))
    model = SentimentModel.load(device="cpu")
    assert model.temperatures == data["temperatures"]["int8"]
    assert data["fitted_on"]["split"] == "dev"
    for variant, heads in data["validation"].items():
        for head, m in heads.items():
            assert m["nll_after"] <= m["nll_before"], (variant, head)
    assert (RELEASE_DIR / data["figure"]).stat().st_size > 10_000


def test_reliability_diagram_writes_png(tmp_path):
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, size=(500, 3))
    labels = rng.integers(0, 3, size=500)
    curves = {h: {**head_measures(logits, labels, 2.0), "temperature": 2.0}
              for h in ("topic", "sentiment")}
    path = reliability_diagram(curves, tmp_path / "r.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
