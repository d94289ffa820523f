"""The model card: round-2 targets (value, gap, met per variant) and the teacher -> student
section of a distilled run. No model and no torch: side files and metrics are made up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sentimon.model.calibration import CALIBRATION_FILE
from sentimon.model.card import TARGETS, build_card, render_markdown
from sentimon.model.distill import write_logits
from sentimon.model.labels import SENTIMENTS


def _sentiment(acc: float, neg_p: float, neg_r: float) -> dict[str, Any]:
    per_class = {n: {"precision": 0.8, "recall": 0.8, "f1": 0.8, "support": 10}
                 for n in SENTIMENTS}
    per_class["negative"] = {"precision": neg_p, "recall": neg_r, "f1": 0.8, "support": 10}
    return {"n": 30, "accuracy": acc, "macro_f1": 0.8, "per_class": per_class, "confusion": []}


def _topic(acc: float) -> dict[str, Any]:
    return {"n": 40, "accuracy": acc, "macro_f1": 0.8, "per_class": {}, "confusion": []}


def _metrics() -> dict[str, Any]:
    return {"data": {"topic_valid": 40, "sent_valid": 30}, "variants": {
        # fp32 meets everything it has figures for, but has no calibration: ECE unknown.
        "fp32": {"topic": _topic(0.92), "sentiment": _sentiment(0.90, 0.80, 0.90)},
        # int8 misses negative precision only.
        "int8": {"topic": _topic(0.915), "sentiment": _sentiment(0.895, 0.70, 0.88)},
    }}


def _head_cal(ece_after: float) -> dict[str, Any]:
    return {"n": 30, "ece_before": 0.06, "ece_after": ece_after, "nll_before": 0.5,
            "nll_after": 0.4}


def _calibration() -> dict[str, Any]:
    return {
        "method": "temperature scaling", "fitted_on": {"split": "dev"}, "ece_bins": 15,
        "temperatures": {"int8": {"topic": 1.2, "sentiment": 1.5}},
        "validation": {"int8": {"topic": _head_cal(0.02), "sentiment": _head_cal(0.025)}},
        "dev": {"int8": {"topic": _head_cal(0.02), "sentiment": _head_cal(0.03)}},
    }


def _teacher_header() -> dict[str, Any]:
    sent = {"n": 2388, "accuracy": 0.8769, "macro_f1": 0.85, "ece": 0.0546,
            "per_class": {"negative": {"precision": 0.7277, "recall": 0.8934, "f1": 0.8}}}
    return {
        "command": "sentimon teacher-logits runs/teacher/model --out t.npz",
        "created_utc": "2026-12-02T02:53:19Z",
        "teacher": {
            "base": "all-mpnet-base-v2", "epoch": 1,
            "train_config": {"extra": {"command": "sentimon train --base mpnet --resume"}},
            "figures": {"dev": {"topic": {"n": 800, "accuracy": 0.9025, "macro_f1": 0.9,
                                          "ece": 0.1}, "sentiment": sent},
                        "topic_valid": {"n": 4117, "accuracy": 0.8749, "macro_f1": 0.83,
                                        "ece": 0.09},
                        "sent_valid": sent},
            "figures_note": "PyTorch fp32",
        },
        "texts": {"labelled": 2, "unlabelled": 1},
    }


def _export_dir(tmp_path: Path, distill: str | None) -> Path:
    d = tmp_path / "export"
    d.mkdir()
    cfg = {"out": "runs/student", "epochs": 3, "threads": 2, "imbalance": "weighted CE",
           "distill": distill, "distill_weight": 0.5, "distill_temperature": 2.0,
           "extra": {"command": "sentimon train --distill t.npz --out runs/student"}}
    (d / "training_meta.json").write_text(json.dumps({"train_config": cfg}), encoding="utf-8")
    summary = {"best_epoch": 2, "history": [], "train_seconds": 10.0,
               "distill_stats": {"labelled_with_soft": 2, "unlabelled": 1}}
    (d / "train_summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (d / CALIBRATION_FILE).write_text(json.dumps(_calibration()), encoding="utf-8")
    (d / "export_info.json").write_text(json.dumps({"name": "m", "version": "2"}),
                                        encoding="utf-8")
    return d


def _card_md(card: dict[str, Any]) -> str:
    return render_markdown({**card, "artifacts": {}})


def test_targets_value_gap_and_met_per_variant(tmp_path: Path) -> None:
    card = build_card(_export_dir(tmp_path, None), _metrics())
    assert card["targets"] == TARGETS
    assert set(TARGETS) == {"sentiment_accuracy", "topic_accuracy", "negative_recall",
                            "negative_precision", "sentiment_ece_calibrated"}
    gaps = card["target_gaps"]
    int8, fp32 = gaps["int8"], gaps["fp32"]
    assert all(name in int8 and name in fp32 for name in TARGETS)
    assert int8["sentiment_accuracy"] == {"value": 0.895, "op": ">=", "target": 0.89,
                                          "gap": 0.005, "met": True}
    assert int8["negative_precision"]["gap"] == -0.08 and int8["negative_precision"]["met"] is False
    assert int8["negative_recall"]["met"] is True  # exactly at the threshold
    # The calibrated ECE comes from the card's calibration figures; <= target, so gap <= 0.
    assert int8["sentiment_ece_calibrated"] == {"value": 0.025, "op": "<=", "target": 0.03,
                                                "gap": -0.005, "met": True}
    assert int8["all_met"] is False
    # fp32 has no fitted temperatures: no ECE, so "all met" cannot be claimed.
    assert fp32["sentiment_ece_calibrated"]["value"] is None
    assert fp32["sentiment_ece_calibrated"]["met"] is None
    assert fp32["all_met"] is None
    json.dumps(card)  # machine readable as is

    md = _card_md(card)
    assert "## Targets (validation splits)" in md
    assert ("| variant | sentiment acc (>= 89.00) | gap | topic acc (>= 91.00) | gap | "
            "negative recall (>= 88.00) | gap | negative precision (>= 78.00) | gap | "
            "sentiment ECE (calibrated) (<= 3.00) | gap | all targets |") in md
    assert ("| int8 | 89.50 | +0.50 met | 91.50 | +0.50 met | 88.00 | +0.00 met | "
            "70.00 | -8.00 not met | 2.50 | -0.50 met | not met |") in md
    assert "| fp32 | 90.00 | +1.00 met |" in md and "| - | - | - |" in md


def test_old_card_and_missing_figures_render_as_dash() -> None:
    old = {
        "name": "m", "version": "1",
        "base_model": {"name": "b", "license": "l", "package": "p", "architecture": "a"},
        "data": {"sources": [], "train_test_policy": "x"},
        "labels": {"topic": ["a"], "sentiment": list(SENTIMENTS)},
        "source_label_mapping": {"sentiment": "s"},
        "metrics": {"int8": {"topic": _topic(0.87),
                             "sentiment": {**_topic(0.86), "per_class": {}}}},
        "targets": {"sentiment_accuracy": 0.88, "topic_accuracy": 0.9},
        "target_gaps": {"int8": {"sentiment_accuracy_minus_target": -0.02}},
        "artifacts": {},
    }
    md = render_markdown(old)
    assert "| variant | sentiment acc (>= 88.00) | gap | topic acc (>= 90.00) | gap |" in md
    assert "| int8 | 86.00 | -2.00 not met | 87.00 | -3.00 not met | not met |" in md
    # Round-2 targets on metrics without the negative class or calibration: dashes, no crash.
    md = render_markdown({**old, "targets": TARGETS})
    assert "| int8 | 86.00 | -3.00 not met | 87.00 | -4.00 not met | - | - | - | - | - | - | " \
           "not met |" in md


def test_distilled_run_records_the_teacher(tmp_path: Path) -> None:
    npz = tmp_path / "teacher_logits.npz"
    write_logits(npz, texts=["a", "b", "c"], unlabelled=[False, False, True],
                 topic=np.zeros((3, 20)), sentiment=np.zeros((3, 3)), header=_teacher_header())
    card = build_card(_export_dir(tmp_path, str(npz)), _metrics())
    d = card["training"]["distillation"]
    assert d["teacher_logits"] == str(npz) and d["teacher_file_found"] is True
    assert d["weight"] == 0.5 and d["temperature"] == 2.0
    assert d["stats"] == {"labelled_with_soft": 2, "unlabelled": 1}
    t = d["teacher"]
    assert t["base"] == "all-mpnet-base-v2" and t["epoch"] == 1 and t["rows"] == 3
    assert t["command"] == "sentimon teacher-logits runs/teacher/model --out t.npz"
    assert t["train_command"] == "sentimon train --base mpnet"
    assert t["figures"]["sent_valid"]["sentiment"]["negative"] == {"precision": 0.7277,
                                                                   "recall": 0.8934}
    assert t["figures"]["topic_valid"]["topic"]["accuracy"] == 0.8749
    assert "per_class" not in t["figures"]["dev"]["topic"]
    json.dumps(card)

    md = _card_md(card)
    assert "## Teacher -> student" in md
    assert f"- teacher logits: `{npz}`, sha256 `{d['teacher_logits_sha256']}`" in md
    assert "- teacher: all-mpnet-base-v2, epoch 1; logits command: " \
           "`sentimon teacher-logits runs/teacher/model --out t.npz`" in md
    assert "- student: distill weight 0.5, temperature 2.0;" in md
    assert "| sent_valid | sentiment | 2388 | 87.69 | 85.00 | 5.46 | 72.77 | 89.34 |" in md
    assert "| topic_valid | topic | 4117 | 87.49 | 83.00 | 9.00 | - | - |" in md


def test_distilled_run_without_the_teacher_file_records_the_path(tmp_path: Path) -> None:
    missing = "model/distill/no_such_teacher.npz"
    card = build_card(_export_dir(tmp_path, missing), _metrics())
    d = card["training"]["distillation"]
    assert d["teacher_logits"] == missing and d["teacher_file_found"] is False
    assert "teacher" not in d and d["weight"] == 0.5
    md = _card_md(card)
    assert f"- teacher logits: `{missing}` (not found when the card was built: path only)" in md
    assert "Teacher's own figures" not in md


def test_run_without_distillation_has_no_teacher_section(tmp_path: Path) -> None:
    card = build_card(_export_dir(tmp_path, None), _metrics())
    assert "distillation" not in card["training"]
    assert "## Teacher -> student" not in _card_md(card)
