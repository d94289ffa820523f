"""Metrics of exported ONNX variants on both validation splits (``sentimon evaluate``).

Each head is scored on its own split: the topic head on ``topic_valid``, the sentiment head
on ``sent_valid``. Runs through :class:`~sentimon.model.inference.SentimentModel` on the CPU
provider, i.e. the very code path the scorer uses (normalisation, truncation, batching).
Calibration is reported as top-label ECE (15 bins) with ``T = 1`` and with the directory's
fitted temperatures (``calibration.json``; equal when there is none).

Each head is also scored per text kind (tweet / headline, :mod:`sentimon.model.kinds`), so
that a model tuned to one style shows what it costs on the other (issue #12).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sentimon.model.calibration import ECE_BINS, ece, softmax
from sentimon.model.data import load_sentiment, load_topic
from sentimon.model.inference import SentimentModel, onnx_file
from sentimon.model.kinds import KINDS, text_kind
from sentimon.model.labels import SENTIMENTS, TOPICS
from sentimon.model.metrics import classification_report
from sentimon.model.providers import VARIANTS


def present_variants(onnx_dir: Path) -> list[str]:
    """Variants whose ``model.<variant>.onnx`` exists in ``onnx_dir`` (fp32, int8, fp16 order)."""
    return [v for v in VARIANTS if onnx_file(onnx_dir, v).exists()]


def spread(rows: list[Any], limit: int | None) -> list[Any]:
    """``limit`` evenly spaced items of ``rows`` (all of them when ``limit`` is None)."""
    if limit is None or limit >= len(rows):
        return rows
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)]


def validation_rows(data_dir: Path, limit: int | None = None) -> tuple[list[Any], list[Any]]:
    """``(topic_valid, sent_valid)`` rows, each cut to ``limit`` evenly spaced rows if given."""
    return (spread(load_topic(data_dir, "valid"), limit),
            spread(load_sentiment(data_dir, "valid"), limit))


def kind_reports(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    kinds: Sequence[str],
    names: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Per text kind: ``n``, ``accuracy``, ``macro_f1`` and, for the sentiment head (its
    ``names`` hold ``"negative"``), the negative class' precision / recall / F1 / support.

    Only the negative class is kept per kind: ``P(negative)`` drives the alerts, and the
    full per-class tables stay in the head's overall report. Macro-F1 averages the classes
    present in that kind. A kind with no rows (a ``--limit`` cut) is left out rather than
    shown as accuracy 0.
    """
    t, p, k = np.asarray(y_true), np.asarray(y_pred), np.asarray(kinds)
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        mask = k == kind
        if not mask.any():
            continue
        rep = classification_report(t[mask], p[mask], names)
        entry: dict[str, Any] = {"n": rep["n"], "accuracy": rep["accuracy"],
                                 "macro_f1": rep["macro_f1"]}
        if "negative" in rep["per_class"]:
            entry["negative"] = rep["per_class"]["negative"]
        out[kind] = entry
    return out


def evaluate_dir(
    onnx_dir: Path,
    *,
    variants: Sequence[str] | None = None,
    data_dir: Path | None = None,
    limit: int | None = None,
    max_length: int = 128,
    batch_size: int = 64,
    threads: int = 0,
) -> dict[str, Any]:
    """``{"data": {...}, "variants": {variant: {"topic": report, "sentiment": report}}}``.

    ``limit`` keeps N evenly spaced rows of each validation split (quick checks only; the
    files are grouped by label, so a prefix would hold only the first classes).
    """
    from sentimon.model.data import default_data_dir

    data_dir = data_dir or default_data_dir()
    topic_rows, sent_rows = validation_rows(data_dir, limit)
    variants = list(variants or present_variants(onnx_dir))
    if not variants:
        raise FileNotFoundError(f"no model.*.onnx in {onnx_dir}")
    topic_kinds = [text_kind(r.text) for r in topic_rows]
    sent_kinds = [text_kind(r.text) for r in sent_rows]
    result: dict[str, Any] = {
        "data": {"topic_valid": len(topic_rows), "sent_valid": len(sent_rows),
                 "max_length": max_length,
                 "kinds": {"topic_valid": {k: topic_kinds.count(k) for k in KINDS},
                           "sent_valid": {k: sent_kinds.count(k) for k in KINDS}}},
        "variants": {},
    }
    for variant in variants:
        model = SentimentModel.load(
            onnx_dir, device="cpu", variant=variant, max_length=max_length, threads=threads
        )
        t0 = time.monotonic()
        topic_logits, _ = model.logits([r.text for r in topic_rows], batch_size=batch_size)
        _, sent_logits = model.logits([r.text for r in sent_rows], batch_size=batch_size)
        seconds = time.monotonic() - t0
        calibration: dict[str, Any] = {"temperature": dict(model.temperatures),
                                       "ece_bins": ECE_BINS}
        for head, logits, labels in (
            ("topic", topic_logits, [r.topic for r in topic_rows]),
            ("sentiment", sent_logits, [r.sentiment for r in sent_rows]),
        ):
            y = np.asarray(labels)
            calibration[head] = {
                "ece_uncalibrated": round(ece(softmax(logits), y), 5),
                "ece": round(ece(softmax(logits, model.temperatures[head]), y), 5),
            }
        result["variants"][variant] = {
            "topic": classification_report(
                [r.topic for r in topic_rows], topic_logits.argmax(-1), TOPICS
            ),
            "sentiment": classification_report(
                [r.sentiment for r in sent_rows], sent_logits.argmax(-1), SENTIMENTS
            ),
            "by_kind": {
                "topic": kind_reports([r.topic for r in topic_rows], topic_logits.argmax(-1),
                                      topic_kinds, TOPICS),
                "sentiment": kind_reports([r.sentiment for r in sent_rows],
                                          sent_logits.argmax(-1), sent_kinds, SENTIMENTS),
            },
            "calibration": calibration,
            "provider": model.provider,
            "seconds": round(seconds, 2),
            "texts_per_second": round((len(topic_rows) + len(sent_rows)) / max(seconds, 1e-9), 1),
        }
    return result


def summary_table(result: dict[str, Any]) -> str:
    """A plain-text table: variant, head, accuracy, macro-F1, ECE (T = 1 and calibrated),
    the head's temperature, rows, speed."""
    lines = [f"{'variant':8} {'head':10} {'accuracy':>9} {'macro-F1':>9} {'ECE T=1':>8} "
             f"{'ECE':>7} {'T':>5} {'rows':>6} {'texts/s':>8}"]
    for variant, r in result["variants"].items():
        for head in ("topic", "sentiment"):
            m = r[head]
            c = r.get("calibration", {})
            e = c.get(head, {"ece_uncalibrated": float("nan"), "ece": float("nan")})
            t = c.get("temperature", {}).get(head, float("nan"))
            lines.append(
                f"{variant:8} {head:10} {m['accuracy']:9.4f} {m['macro_f1']:9.4f} "
                f"{e['ece_uncalibrated']:8.4f} {e['ece']:7.4f} {t:5.2f} "
                f"{m['n']:6d} {r['texts_per_second']:8.0f}"
            )
    return "\n".join(lines)


def kind_table(result: dict[str, Any]) -> str:
    """A plain-text table by text kind: variant, head, kind, rows, accuracy, macro-F1 and the
    negative class' precision / recall (sentiment head only; ``-`` for topic)."""
    lines = [f"{'variant':8} {'head':10} {'kind':9} {'rows':>6} {'accuracy':>9} {'macro-F1':>9} "
             f"{'neg P':>7} {'neg R':>7}"]
    for variant, r in result["variants"].items():
        for head in ("topic", "sentiment"):
            for kind, m in r.get("by_kind", {}).get(head, {}).items():
                neg = m.get("negative")
                p, rc = (f"{neg['precision']:7.4f}", f"{neg['recall']:7.4f}") if neg else (
                    f"{'-':>7}", f"{'-':>7}")
                lines.append(f"{variant:8} {head:10} {kind:9} {m['n']:6d} {m['accuracy']:9.4f} "
                             f"{m['macro_f1']:9.4f} {p} {rc}")
    return "\n".join(lines)
