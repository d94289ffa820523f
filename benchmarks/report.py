"""Markdown tables from the benchmarks' JSON (``--json-out``), for docs/benchmarks.md.

examples:
  python -m benchmarks.report --model benchmarks/results/model.json --e2e benchmarks/results/e2e.json \\
      --alert benchmarks/results/alert.json
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import fmt, script_parser


def md(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    out = ["| " + " | ".join(h for _, h in columns) + " |", "|" + " --- |" * len(columns)]
    out += ["| " + " | ".join(fmt(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join(out)


def machine(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    vers = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    busy = f"; other heavy work running: {m['busy']}" if m["busy"] else ""
    return (f"- {m['cpu_model']}, {m['nproc']} cores (`nproc`), {m['memory_gib']} GiB memory, {m['platform']}\n"
            f"- Python {m['python']}; {vers}\n"
            f"- commit {m['git_commit']}, started {m['utc']}, 1-minute load average at start "
            f"{m['load_average_1m']}, at the end {m.get('load_average_1m_end', '-')}{busy}\n"
            f"- command: `{m['command']}`")


def model_section(doc: dict[str, Any]) -> str:
    parts = [f"{doc['n_texts']} texts, median of {doc['repeats']} repeats, device {doc['device']}.", ""]
    b = doc["baseline"]
    rows = []
    if b:
        rows.append({"variant": "PyTorch pipeline (baseline)", "batch_size": b["batch_size"], "sorted": "no",
                     "seq_per_s": b["seq_per_s"], "x_baseline": 1.0, "ms_per_seq": 1000 / b["seq_per_s"]})
    rows += doc["rows"]
    parts.append(md(rows, [("variant", "variant"), ("batch_size", "batch"), ("sorted", "sorted"),
                           ("seq_per_s", "seq/s"), ("x_baseline", "x baseline"), ("ms_per_seq", "ms/seq")]))
    if b:
        parts += ["", f"Baseline: {b['what']}; torch threads {b['torch_threads']}, attention "
                  f"`{b['attn_implementation']}`."]
    tok = []
    if b:
        tok.append({"what": "baseline: HF tokenizer, batches of 32, padded",
                    "s": sorted(b["tokenizer_seconds"])[len(b["tokenizer_seconds"]) // 2],
                    "share": b["tokenizer_share"]})
    for v, meta in doc["variants"].items():
        secs = sorted(meta["tokenizer"]["seconds"])[len(meta["tokenizer"]["seconds"]) // 2]
        ref = next((r for r in doc["rows"] if r["variant"] == v and r["batch_size"] == 64
                    and r["sorted"] == "yes"), None)
        share = secs / (doc["n_texts"] / ref["seq_per_s"]) if ref else None
        tok.append({"what": f"sentimon ({v}): tokenizer only, all texts", "s": secs, "share": share,
                    "mean": meta["tokenizer"]["mean_tokens"], "max": meta["tokenizer"]["max_tokens"]})
    parts += ["", md(tok, [("what", "tokenizer-only"), ("s", "seconds"), ("share", "share of end-to-end"),
                           ("mean", "mean tokens"), ("max", "max tokens")])]
    if doc["agreement"]:
        ag = [{"pair": k.replace("_vs_", " vs "), **{h: f"{v:.2%}" for h, v in a.items()}}
              for k, a in doc["agreement"].items()]
        parts += ["", md(ag, [("pair", "argmax agreement"), ("sentiment", "sentiment"), ("topic", "topic"),
                              ("both", "both heads")])]
    parts += ["", *[f"- target {k}: {t['value']:.3g} (target {t['target']:g}): "
                    f"{'met' if t['met'] else 'NOT met'}" for k, t in doc["targets"].items()]]
    parts += [f"- note: {n}" for n in doc["notes"]]
    return "\n".join(parts)


def _runs(m: dict[str, Any]) -> str:
    """How a model-level figure fed the model: one padded run per micro-batch, or sorted runs."""
    inner = m.get("inner_batch")
    if inner is None or inner >= m["batch"]:
        return "one model run each"
    return f"split into length-sorted runs of {inner}"


def e2e_section(doc: dict[str, Any]) -> str:
    m = doc["model_level"]
    alt = m.get("alternative")
    lines = [f"Model level, same configuration, no Kafka ({m['variant']} on {m['provider']}, "
             f"{m['n']} texts in micro-batches of {m['batch']}, {_runs(m)}): "
             f"**{m['seq_per_s']:.0f} seq/s**, peak RSS {m['maxrss_mb']:.0f} MB."]
    if alt:
        lines.append(f"Same micro-batches, {_runs(alt)}: "
                     f"{alt['seq_per_s']:.0f} seq/s, peak RSS {alt['maxrss_mb']:.0f} MB.")
    rows = []
    for r in doc["runs"]:
        lat = r["latency_s"]
        rows.append({"run": r["label"], "proc": r["processes"], "scored": r["scored"], "dlq": r["dead_letters"],
                     "rate": r["msg_per_s"], "ratio": r["msg_per_s"] / m["seq_per_s"] if r is doc["runs"][0] else None,
                     "offered": r.get("offered_per_s"), "p50": lat["p50"], "p95": lat["p95"],
                     "p99": lat["p99"], "rss": r["peak_rss_mb"], "cs": r["scorer_cpu_s"],
                     "bs": r["broker_cpu_s"], "wall": r["wall_s"], "batch": r["mean_batch"]})
    lines += ["", md(rows, [("run", "run"), ("proc", "scorers"), ("scored", "scored"), ("dlq", "dead"),
                            ("offered", "offered msg/s"), ("rate", "msg/s"), ("ratio", "/ model level"),
                            ("p50", "p50 s"), ("p95", "p95 s"), ("p99", "p99 s"), ("rss", "peak RSS MB"),
                            ("cs", "scorer CPU s"), ("bs", "broker CPU s"), ("wall", "wall s"),
                            ("batch", "mean batch")])]
    full = doc["runs"][0]
    if "latency_since_ready_s" in full:
        q = full["latency_since_ready_s"]
        lines += ["", f"Backlog latency counted from the moment the scorer was ready (not from the "
                  f"pre-load): p50 {q['p50']:.2f} s, p95 {q['p95']:.2f} s, p99 {q['p99']:.2f} s."]
    if "cpu_ms_per_seq" in m:
        lines += ["", f"CPU per message in the backlog run: scorer process "
                  f"{full['scorer_cpu_s'] * 1000 / full['sent']:.2f} ms (start-up included), broker "
                  f"{full['broker_cpu_s'] * 1000 / full['sent']:.2f} ms; model level "
                  f"{m['cpu_ms_per_seq']:.2f} ms."]
    backlogs = [r for r in doc["runs"] if r["label"].startswith("backlog")]
    for r in backlogs[1:]:
        lines.append(f"Scale-out: {r['processes']} scorer processes {r['msg_per_s']:.0f} msg/s = "
                     f"{r['msg_per_s'] / backlogs[0]['msg_per_s']:.2f}x one process.")
    lines += ["", *[f"- target {k}: {t['value']:.3g} (target {t['target']:g}): "
                    f"{'met' if t['met'] else 'NOT met'}" for k, t in doc["targets"].items()]]
    return "\n".join(lines)


def alert_section(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    head = (f"Short window {s['monitor']['short_window_s']} s, scrape/evaluation {s['scrape_interval']}, "
            f"spike `for:` {s['alerts']['spike_for']}, group_wait {s['alerts']['group_wait']}.")
    total = doc["alert_latency_s"]
    tail = f"**Alert latency: {total:.1f} s.**" if total is not None else "**No notification arrived.**"
    return "\n".join([head, "", md(doc["rows"], [("stage", "stage"), ("at_s", "s after the first burst message"),
                                                 ("step_s", "step s")]), "", tail])


def main(argv: list[str] | None = None) -> int:
    p = script_parser("benchmarks.report", __doc__ or "")
    p.add_argument("--model", type=Path)
    p.add_argument("--e2e", type=Path)
    p.add_argument("--alert", type=Path)
    args = p.parse_args(argv)
    docs = {k: json.loads(v.read_text(encoding="utf-8")) for k, v in vars(args).items() if v}
    if not docs:
        p.error("give at least one of --model, --e2e, --alert")
    first = next(iter(docs.values()))
    print("### Machine\n\n" + machine(first) + "\n")
    if "model" in docs:
        print("### Model level\n\n" + model_section(docs["model"]) + "\n")
    if "e2e" in docs:
        print("### End to end\n\n" + e2e_section(docs["e2e"]) + "\n")
    if "alert" in docs:
        print("### Alert latency\n\n" + alert_section(docs["alert"]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
