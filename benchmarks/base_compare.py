"""Base encoders at the same training budget: validation accuracy against CPU scoring speed.

For each ``--base NAME=DIR`` (``default`` = all-MiniLM-L6-v2 from its PyPI package), one run:

1. ``sentimon train`` with the same data, seed, batch size, max length and ``--max-steps``
   for every base; only the learning rate may differ (``--lr NAME=VALUE``), since a base's
   usual fine-tuning rate depends on its size.
2. ``sentimon export``: fp32 (optimised) and int8 ONNX, as for the release.
3. Both variants on both *full* validation splits through ``SentimentModel`` (as
   ``sentimon evaluate``), and their CPU throughput on the same real stream texts for every
   base (batch 64, length-sorted, median of ``--repeats``).

Figures are the ratio of each base to the first one, measured in one run on one machine.
A step whose output is already in ``--work`` with the same recorded configuration is reused,
so an interrupted comparison (hours for a bert-base-size encoder on 2 cores) can be re-run.
The budget is a *reduced* one; the shipped model's full run is in docs/model.md.

examples:
  python -m benchmarks.base_compare --base minilm=default \\
      --base mpnet=/models/all-mpnet-base-v2 --lr mpnet=5e-5 --max-steps 400
  python -m benchmarks.base_compare --base minilm=default --max-steps 2 --limit 200 \\
      --eval-limit 64 --n 32 --repeats 1 --work /tmp/bc          # smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    REPO,
    data_dir,
    load_texts,
    machine_info,
    median,
    print_machine,
    script_parser,
    table,
    timed,
    write_json,
)

DEFAULT_LR = 8e-5  # sentimon train's default, tuned for MiniLM-L6
BATCH = 64  # SentimentModel.predict's default
#: TrainConfig fields that must match for a finished training run to be reused.
SAME_TRAINING = ("base", "lr", "max_steps", "limit", "seed", "batch_size", "max_length", "epochs")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser("benchmarks.base_compare", __doc__ or "")
    p.add_argument("--base", action="append", required=True, metavar="NAME=DIR",
                   help="a base encoder (local HF directory, or 'default'); repeat; the first "
                        "is the reference of the ratios")
    p.add_argument("--lr", action="append", default=[], metavar="NAME=VALUE",
                   help=f"learning rate of one base (default {DEFAULT_LR:g}, sentimon train's)")
    p.add_argument("--max-steps", type=int, default=400,
                   help="optimiser steps of batch 32 for every base (default 400)")
    p.add_argument("--epochs", type=int, default=4,
                   help="epochs cap; --max-steps ends the run first by default (default 4)")
    p.add_argument("--limit", type=int, default=None,
                   help="rows per data file for training (smoke runs only)")
    p.add_argument("--eval-limit", type=int, default=None,
                   help="evenly spaced rows of each validation split (default: all)")
    p.add_argument("--n", type=int, default=512, help="stream texts for the speed figure (default 512)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; median reported (default 3)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch and ONNX Runtime threads, 0 = all cores (default)")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "base_compare",
                   help="training and export outputs, per base (default runs/base_compare)")
    p.add_argument("--data-dir", type=Path, help="data root (default ../shared/data)")
    p.add_argument("--json-out", type=Path, help="write all figures here as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SystemExit(f"{what} {item!r}: expected NAME=VALUE")
        out[name] = value
    return out


def _train(name: str, base: str, lr: float, args: argparse.Namespace, data: Path) -> dict[str, Any]:
    """Train (or reuse) one base's run; returns its summary."""
    from sentimon.model.network import default_base_dir
    from sentimon.model.train import TrainConfig, train

    out = args.work / name / "train"
    base_dir = default_base_dir() if base == "default" else Path(base)
    if not (base_dir / "config.json").exists():
        raise SystemExit(f"--base {name}={base}: no Hugging Face config.json in {base_dir}")
    cfg = TrainConfig(
        out=str(out), base=str(base_dir), data=str(data), epochs=args.epochs, lr=lr,
        limit=args.limit, max_steps=args.max_steps, threads=args.threads,
        extra={"command": f"benchmarks.base_compare ({name})"},
    )
    done = out / "model" / "sentimon_model.json"
    if done.exists():
        recorded = json.loads(done.read_text(encoding="utf-8"))["train_config"]
        wanted = {k: getattr(cfg, k) for k in SAME_TRAINING}
        if all(recorded.get(k) == v for k, v in wanted.items()):
            print(f"[{name}] reusing the training run in {out}")
        else:
            raise SystemExit(f"[{name}] {out} holds a run with another configuration; "
                             "remove it or pass another --work")
    else:
        print(f"[{name}] training {base_dir} for {args.max_steps} steps at lr {lr:g} -> {out}")
        train(cfg, resume=(out / "checkpoints" / "last.pt").exists(), progress=not args.no_progress)
    summary: dict[str, Any] = json.loads((out / "train_summary.json").read_text(encoding="utf-8"))
    return summary


def _export(name: str, args: argparse.Namespace, data: Path) -> dict[str, Any]:
    """Export (or reuse) fp32 + int8; returns export_info."""
    from sentimon.model.evaluate import validation_rows
    from sentimon.model.export import export

    out = args.work / name / "export"
    info_path = out / "export_info.json"
    if not info_path.exists():
        print(f"[{name}] exporting -> {out}")
        texts = [e.text for rows in validation_rows(data, args.eval_limit) for e in rows]
        export(args.work / name / "train" / "model", out, texts=texts, fp16=False)
    info: dict[str, Any] = json.loads(info_path.read_text(encoding="utf-8"))
    return info


def _speed(onnx_dir: Path, variant: str, texts: list[str], args: argparse.Namespace) -> float:
    from sentimon.model.inference import SentimentModel

    model = SentimentModel.load(onnx_dir, device="cpu", variant=variant, threads=args.threads)
    model.predict(texts[:BATCH], batch_size=BATCH)  # warm-up
    seconds = median(timed(lambda: model.predict(texts, batch_size=BATCH), repeats=args.repeats))
    return len(texts) / seconds


def _encoder_shape(model_dir: Path) -> str:
    cfg = json.loads((model_dir / "encoder" / "config.json").read_text(encoding="utf-8"))
    return f"{cfg['model_type']} L{cfg['num_hidden_layers']} H{cfg['hidden_size']}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bases = _pairs(args.base, "--base")
    lrs = {k: float(v) for k, v in _pairs(args.lr, "--lr").items()}
    if unknown := set(lrs) - set(bases):
        raise SystemExit(f"--lr for unknown base(s): {', '.join(sorted(unknown))}")
    data = data_dir(args.data_dir)
    machine = machine_info()
    print_machine(machine)

    from sentimon.model.evaluate import evaluate_dir

    stream = [t.text for t in load_texts(data, args.n)]
    rows: list[dict[str, Any]] = []
    for name, base in bases.items():
        lr = lrs.get(name, DEFAULT_LR)
        summary = _train(name, base, lr, args, data)
        info = _export(name, args, data)
        export_dir = args.work / name / "export"
        t0 = time.monotonic()
        metrics = evaluate_dir(export_dir, variants=["fp32", "int8"], data_dir=data,
                               limit=args.eval_limit, threads=args.threads)
        print(f"[{name}] evaluated in {time.monotonic() - t0:.0f} s")
        row: dict[str, Any] = {
            "base": name,
            "encoder": _encoder_shape(args.work / name / "train" / "model"),
            "lr": lr,
            "steps": summary["history"][-1]["global_step"],
            "train_s": summary["train_seconds"],
            "fp32_mb": info["sizes_bytes"]["fp32"] / 1e6,
            "int8_mb": info["sizes_bytes"]["int8"] / 1e6,
            "fused": info["fused_operators"],
            "int8_agreement": info["int8"]["agreement"]["min"],
        }
        for variant in ("fp32", "int8"):
            m = metrics["variants"][variant]
            row[f"{variant}_topic_acc"] = m["topic"]["accuracy"]
            row[f"{variant}_sent_acc"] = m["sentiment"]["accuracy"]
            row[f"{variant}_topic_f1"] = m["topic"]["macro_f1"]
            row[f"{variant}_sent_f1"] = m["sentiment"]["macro_f1"]
            row[f"{variant}_seq_s"] = _speed(export_dir, variant, stream, args)
        rows.append(row)

    ref = rows[0]
    for row in rows:
        row["int8_speed_x"] = row["int8_seq_s"] / ref["int8_seq_s"]
        row["int8_topic_pts"] = 100 * (row["int8_topic_acc"] - ref["int8_topic_acc"])
        row["int8_sent_pts"] = 100 * (row["int8_sent_acc"] - ref["int8_sent_acc"])
    print()
    print(f"same budget: {args.max_steps} steps of batch 32; validation rows: "
          f"{metrics['data']['topic_valid']} topic, {metrics['data']['sent_valid']} sentiment; "
          f"speed: {args.n} stream texts, batch {BATCH}, ONNX Runtime CPU")
    print(table(rows, [
        ("base", "base"), ("encoder", "encoder"), ("lr", "lr"), ("steps", "steps"),
        ("train_s", "train s"), ("fp32_topic_acc", "topic fp32"), ("int8_topic_acc", "topic int8"),
        ("fp32_sent_acc", "sent fp32"), ("int8_sent_acc", "sent int8"),
        ("fp32_seq_s", "fp32 seq/s"), ("int8_seq_s", "int8 seq/s"), ("int8_mb", "int8 MB"),
    ]))
    print()
    print(f"against {ref['base']} (int8, the CPU variant):")
    print(table(rows, [("base", "base"), ("int8_speed_x", "speed x"),
                       ("int8_topic_pts", "topic acc +pts"), ("int8_sent_pts", "sent acc +pts"),
                       ("int8_agreement", "int8~fp32 agreement")]))
    write_json(args.json_out, {
        "machine": machine, "max_steps": args.max_steps, "limit": args.limit,
        "eval_limit": args.eval_limit, "n_stream_texts": args.n, "repeats": args.repeats,
        "rows": rows,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
