"""Temperature scaling per head: fit on the dev split, apply at scoring time, measure ECE.

A fine-tuned classifier's softmax is usually over-confident. Dividing a head's logits by one
temperature ``T > 0`` keeps every argmax (so accuracy is unchanged) and, fitted to minimise the
negative log-likelihood on held-out data, makes the probabilities match observed frequencies
much better (Guo et al., 2017, "On Calibration of Modern Neural Networks").

The temperatures live in ``calibration.json`` beside the ONNX files, per variant (int8 and fp16
round differently, so each gets its own fit). A directory without the file, or a variant
missing from it, scores with ``T = 1``: old releases behave exactly as before.

Only numpy at import time: :class:`~sentimon.model.inference.SentimentModel` reads the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_FILE = "calibration.json"
FIGURE_FILE = "reliability.png"
HEADS = ("topic", "sentiment")
ECE_BINS = 15
#: Search range of the inverse temperature 1/T (T from 0.05 to 20).
_BETA_RANGE = (0.05, 20.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64."""
    x = np.asarray(logits, dtype=np.float64) / temperature
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``."""
    x = np.asarray(logits, dtype=np.float64) / temperature
    m = x.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[:, 0]
    y = np.asarray(labels, dtype=np.int64)
    return float(np.mean(lse - x[np.arange(len(y)), y]))


def reliability(
    probs: np.ndarray, labels: np.ndarray, *, bins: int = ECE_BINS
) -> dict[str, list[float] | list[int]]:
    """Top-label reliability curve: per equal-width confidence bin, count, accuracy, confidence.

    Bin ``b`` holds confidences in ``(b/bins, (b+1)/bins]`` (0 goes to the first bin). Empty
    bins have count 0 and accuracy/confidence 0.
    """
    p = np.asarray(probs, dtype=np.float64)
    conf = p.max(axis=-1)
    correct = (p.argmax(axis=-1) == np.asarray(labels)).astype(np.float64)
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    safe = np.maximum(count, 1)
    return {
        "count": count.tolist(),
        "accuracy": (acc_sum / safe).tolist(),
        "confidence": (conf_sum / safe).tolist(),
    }


def ece(probs: np.ndarray, labels: np.ndarray, *, bins: int = ECE_BINS) -> float:
    """Expected calibration error, top-label, ``bins`` equal-width bins:
    ``sum_b |B_b| / n * |accuracy(B_b) - mean confidence(B_b)|``."""
    r = reliability(probs, labels, bins=bins)
    count = np.asarray(r["count"], dtype=np.float64)
    gap = np.abs(np.asarray(r["accuracy"]) - np.asarray(r["confidence"]))
    return float((count * gap).sum() / max(count.sum(), 1.0))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, tol: float = 1e-5) -> float:
    """The ``T`` minimising :func:`nll` (golden-section search over ``1/T``).

    The NLL is convex in ``beta = 1/T`` (a log-sum-exp of functions linear in beta minus a
    linear term), so a 1-D bracketing search finds the global minimum; no torch needed.
    """
    if len(labels) == 0:
        raise ValueError("fit_temperature: no labelled rows")
    lo, hi = _BETA_RANGE
    g = (math.sqrt(5) - 1) / 2

    def f(beta: float) -> float:
        return nll(logits, labels, 1.0 / beta)

    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return 1.0 / ((a + b) / 2)


def head_measures(
    logits: np.ndarray, labels: np.ndarray, temperature: float, *, bins: int = ECE_BINS
) -> dict[str, Any]:
    """ECE and NLL of one head before (``T = 1``) and after scaling by ``temperature``."""
    raw = softmax(logits)
    cal = softmax(logits, temperature)
    return {
        "n": len(labels),
        "ece_before": round(ece(raw, labels, bins=bins), 5),
        "ece_after": round(ece(cal, labels, bins=bins), 5),
        "nll_before": round(nll(logits, labels), 5),
        "nll_after": round(nll(logits, labels, temperature), 5),
        "reliability_before": reliability(raw, labels, bins=bins),
        "reliability_after": reliability(cal, labels, bins=bins),
    }


def read_calibration(model_dir: Path) -> dict[str, Any]:
    """``calibration.json`` of an export/release directory, or ``{}`` when there is none."""
    path = Path(model_dir) / CALIBRATION_FILE
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def temperatures_for(model_dir: Path, variant: str) -> dict[str, float]:
    """Per-head temperatures of ``variant`` in ``model_dir``; 1.0 where none was fitted."""
    fitted: Mapping[str, Any] = read_calibration(model_dir).get("temperatures", {}).get(variant, {})
    out = {}
    for head in HEADS:
        t = float(fitted.get(head, 1.0))
        if not (t > 0 and math.isfinite(t)):
            raise ValueError(f"{model_dir / CALIBRATION_FILE}: bad {variant}.{head} temperature {t}")
        out[head] = t
    return out


def write_calibration(model_dir: Path, data: Mapping[str, Any]) -> Path:
    """Write ``calibration.json`` (atomically: the scorer may be loading the directory)."""
    path = Path(model_dir) / CALIBRATION_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def reliability_diagram(
    curves: Mapping[str, Mapping[str, Any]], path: Path, *, title: str = ""
) -> Path:
    """PNG with one panel per head: accuracy against confidence, before and after scaling.

    ``curves[head]`` is a :func:`head_measures` result. Marker area follows the bin's count.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 5.0), squeeze=False)
    for ax, (head, m) in zip(axes[0], curves.items(), strict=True):
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect")
        total = max(sum(m["reliability_before"]["count"]), 1)
        for key, label, color in (
            ("before", f"T = 1: ECE {100 * m['ece_before']:.1f} %", "tab:red"),
            ("after", f"T = {m.get('temperature', 1.0):.2f}: ECE {100 * m['ece_after']:.1f} %",
             "tab:blue"),
        ):
            r = m[f"reliability_{key}"]
            keep = [i for i, c in enumerate(r["count"]) if c > 0]
            xs = [r["confidence"][i] for i in keep]
            ys = [r["accuracy"][i] for i in keep]
            sizes = [8 + 600 * r["count"][i] / total for i in keep]
            ax.plot(xs, ys, color=color, linewidth=1.2, label=label)
            ax.scatter(xs, ys, s=sizes, color=color, alpha=0.5)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("confidence (top-label probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{head} (n={m['n']}, {ECE_BINS} bins)")
        ax.legend(loc="upper left", fontsize=9)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def dev_rows(
    data_dir: Path, *, seed: int = 13, dev_fraction: float = 0.05, limit: int | None = None
) -> tuple[list[Any], list[Any]]:
    """``(topic dev rows, sentiment dev rows)`` of ``sentimon train``'s seeded dev split.

    ``seed`` and ``dev_fraction`` must be the training run's (the card records them), so the
    rows were never trained on (``limit`` too, for a tiny run's). The validation splits are
    not touched.
    """
    from sentimon.model.data import load_splits
    from sentimon.model.labels import IGNORE_INDEX

    dev = load_splits(data_dir, dev_fraction=dev_fraction, seed=seed, limit=limit).dev
    return ([e for e in dev if e.topic != IGNORE_INDEX],
            [e for e in dev if e.sentiment != IGNORE_INDEX])


def _split_logits(model: Any, topic_rows: list[Any], sent_rows: list[Any]) -> dict[str, Any]:
    t, _ = model.logits([r.text for r in topic_rows])
    _, s = model.logits([r.text for r in sent_rows])
    return {
        "topic": (t, np.array([r.topic for r in topic_rows])),
        "sentiment": (s, np.array([r.sentiment for r in sent_rows])),
    }


def calibrate_dir(
    model_dir: Path,
    *,
    data_dir: Path,
    variants: list[str] | None = None,
    seed: int = 13,
    dev_fraction: float = 0.05,
    threads: int = 0,
    figure: bool = True,
    command: str = "",
    limit: int | None = None,
) -> dict[str, Any]:
    """Fit per-head temperatures of each ONNX variant in ``model_dir`` on the dev split.

    Writes ``calibration.json`` (temperatures, dev and validation ECE/NLL before and after)
    and, with ``figure``, ``reliability.png`` (validation splits, the first variant: int8
    when present, the shipped CPU model). Returns what it wrote. ``limit`` is for tiny runs:
    the training run's ``--limit`` (same dev split), and N evenly spaced validation rows.
    """
    from sentimon.model.evaluate import present_variants, validation_rows
    from sentimon.model.inference import SentimentModel

    variants = variants or present_variants(model_dir)
    if not variants:
        raise FileNotFoundError(f"no model.*.onnx in {model_dir}")
    # int8 first: it is the CPU model the scorer runs, so it gets the figure.
    variants = sorted(variants, key=lambda v: (v != "int8", v))
    dev_t, dev_s = dev_rows(data_dir, seed=seed, dev_fraction=dev_fraction, limit=limit)
    val_t, val_s = validation_rows(data_dir, limit)
    out: dict[str, Any] = {
        "method": "temperature scaling per head: probabilities = softmax(logits / T); T "
        "minimises the negative log-likelihood on the dev split (golden-section search over "
        "1/T); argmax and accuracy are unchanged",
        "fitted_on": {"split": "dev", "seed": seed, "dev_fraction": dev_fraction,
                      "topic_rows": len(dev_t), "sentiment_rows": len(dev_s)},
        "measured_on": {"split": "validation", "topic_rows": len(val_t),
                        "sentiment_rows": len(val_s)},
        "ece_bins": ECE_BINS,
        "command": command,
        "temperatures": {},
        "dev": {},
        "validation": {},
    }
    curves: dict[str, dict[str, Any]] = {}
    label = model_dir.name
    for variant in variants:
        model = SentimentModel.load(
            model_dir, device="cpu", variant=variant, threads=threads, calibrated=False
        )
        dev = _split_logits(model, dev_t, dev_s)
        val = _split_logits(model, val_t, val_s)
        temps = {h: round(fit_temperature(dev[h][0], dev[h][1]), 4) for h in HEADS}
        out["temperatures"][variant] = temps
        for split, logits in (("dev", dev), ("validation", val)):
            measures = {h: head_measures(logits[h][0], logits[h][1], temps[h]) for h in HEADS}
            out[split][variant] = {
                h: {k: v for k, v in m.items() if not k.startswith("reliability")}
                for h, m in measures.items()
            }
            if split == "validation" and not curves:
                curves = {h: {**m, "temperature": temps[h]} for h, m in measures.items()}
                label = f"{model.name} {model.version}"  # the figure's title
                out["reliability_validation"] = {
                    "variant": variant,
                    **{h: {"before": m["reliability_before"], "after": m["reliability_after"]}
                       for h, m in measures.items()},
                }
    if figure:
        v = out["reliability_validation"]["variant"]
        reliability_diagram(
            curves, model_dir / FIGURE_FILE,
            title=f"{label}: {v}, validation splits, temperatures fitted on dev",
        )
        out["figure"] = FIGURE_FILE
    write_calibration(model_dir, out)
    return out
