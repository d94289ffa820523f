"""The release's card metrics are reproduced by `sentimon evaluate` on the int8 variant."""

from __future__ import annotations

import json

import pytest

from sentimon.model.card import CARD_JSON
from sentimon.model.data import default_data_dir
from sentimon.model.evaluate import evaluate_dir
from sentimon.model.inference import RELEASE_DIR

DATA = default_data_dir()
TOLERANCE = 0.005  # 0.5 points


@pytest.mark.skipif(
    not (DATA / "twitter_fin_topic").is_dir(), reason=f"data sets not found under {DATA}"
)
def test_card_metrics_reproduced_on_int8():
    card = json.loads((RELEASE_DIR / CARD_JSON).read_text(encoding="utf-8"))
    expected = card["metrics"]["int8"]
    got = evaluate_dir(RELEASE_DIR, variants=["int8"], data_dir=DATA)
    assert got["data"]["topic_valid"] == expected["topic"]["n"]
    assert got["data"]["sent_valid"] == expected["sentiment"]["n"]
    m = got["variants"]["int8"]
    for head in ("topic", "sentiment"):
        for key in ("accuracy", "macro_f1"):
            assert m[head][key] == pytest.approx(expected[head][key], abs=TOLERANCE), (head, key)
    # The card's by-text-kind table too (sentimon evaluate --card-kinds).
    assert got["data"]["kinds"] == card["data"]["evaluated_on"]["kinds"]
    for head in ("topic", "sentiment"):
        for kind, exp in expected["by_kind"][head].items():
            g = m["by_kind"][head][kind]
            assert g["n"] == exp["n"], (head, kind)
            for key in ("accuracy", "macro_f1"):
                assert g[key] == pytest.approx(exp[key], abs=TOLERANCE), (head, kind, key)
            if "negative" in exp:
                for key in ("precision", "recall"):
                    assert g["negative"][key] == pytest.approx(
                        exp["negative"][key], abs=2 * TOLERANCE), (head, kind, key)
    # The card's calibration (fitted on dev) is what evaluate measures with the shipped
    # temperatures, and it lowers the ECE of both heads on the validation splits.
    cal = card["calibration"]["validation"]["int8"]
    assert m["calibration"]["temperature"] == card["calibration"]["temperatures"]["int8"]
    for head in ("topic", "sentiment"):
        c = m["calibration"][head]
        assert c["ece"] == pytest.approx(cal[head]["ece_after"], abs=1e-4), head
        assert c["ece_uncalibrated"] == pytest.approx(cal[head]["ece_before"], abs=1e-4), head
        assert c["ece"] < c["ece_uncalibrated"], head


def test_card_records_export_checks():
    card = json.loads((RELEASE_DIR / CARD_JSON).read_text(encoding="utf-8"))
    export = card["export"]
    assert export["parity_fp32_vs_pytorch_max_abs_logit_diff"] < 1e-3
    q = export["int8"]
    assert q["n_texts"] >= 6000  # measured on the full validation texts
    assert q["agreement"]["min"] >= 0.98
    fused = export["fused_operators"]
    assert fused.get("Attention", 0) + fused.get("MultiHeadAttention", 0) > 0
    assert fused.get("SkipLayerNormalization", 0) > 0
    assert card["training"]["train_seconds"] > 0
    assert set(card["metrics"]) >= {"fp32", "int8", "fp16"}
