"""``sentimon train | export | evaluate | calibrate | teacher-logits``: fine-tune, distil,
export to ONNX, measure, calibrate.

Heavy imports (torch, transformers, onnxruntime) happen inside the handlers, so
``sentimon --help`` stays fast and the scorer never pays for them.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from sentimon.config import Settings

log = logging.getLogger(__name__)

TRAIN_EPILOG = """\
examples:
  sentimon train --out runs/train                     # full run, all-MiniLM-L6-v2 base
  sentimon train --out runs/train --resume            # continue after an interruption
  sentimon train --base /models/finbert --epochs 3    # any local HF encoder directory
  sentimon train --limit 300 --max-steps 20 --out /tmp/tiny   # smoke test
  sentimon train --distill model/distill/teacher_logits.npz --out runs/student
        # student: hard labels + the teacher's soft targets (+ its unlabelled tweets)

Data: --data DIR, else $SENTIMON_DATA_DIR, else ../shared/data next to the repository.
Writes OUT/model (best epoch on the dev split, HF format + heads), OUT/checkpoints,
OUT/train_config.json and OUT/train_summary.json.
"""

EXPORT_EPILOG = """\
examples:
  sentimon export runs/train/model --out runs/export          # fp32 + int8 + fp16 ONNX
  sentimon export runs/train/model --out runs/export --release
        # also fit the temperatures on the dev split (calibration.json, reliability.png) and
        # replace model/release/ with int8 + fp16 + tokenizer + calibration + model card
"""

EVAL_EPILOG = """\
examples:
  sentimon evaluate runs/export                        # every ONNX variant found there
  sentimon evaluate model/release --variant int8       # the shipped CPU model
  sentimon evaluate runs/export --card                 # also (re)write the model card
  sentimon evaluate model/release --card-kinds         # refresh only the card's by-kind table

Besides the overall figures, each head is scored by text kind (tweet: cashtags, hashtags,
mentions, emoji, first person; headline: none of these; see sentimon.model.kinds), with the
negative class' precision / recall per kind for sentiment.
"""


TEACHER_EPILOG = """\
examples:
  sentimon teacher-logits /work/runs/teacher/model --out model/distill/teacher_logits.npz
  sentimon teacher-logits runs/teacher/model --unlabelled 2000 --out /tmp/t.npz --threads 2

Runs a trained checkpoint (PyTorch, CPU) over the distillation texts: the labelled training
rows of `sentimon train` (the teacher's own seed and dev split) plus a seeded sample of
--unlabelled StockNet tweets (lang en, normalised, de-duplicated, none in a validation split,
the dev split or the training rows). Writes float16 logits per head keyed by a hash of each
text, and a JSON header with this command, the teacher's config and its accuracy / macro-F1 /
ECE on the dev split and on both validation splits. ~2 bytes x 23 logits + 8 bytes per text
(1.7 MB for 34,000 texts, measured). Feed it to `sentimon train --distill FILE`.
"""

CALIBRATE_EPILOG = """\
examples:
  sentimon calibrate                                   # the packaged release (model/release)
  sentimon calibrate runs/export --no-card             # an export directory
  sentimon calibrate model/release --variant int8      # refit one variant only

What it does: runs each ONNX variant over the dev split of `sentimon train` (seeded 5 % of the
training files, never trained on; seed and fraction read from the model card when it has
them) and fits one temperature T per head minimising the negative log-likelihood; the scorer
then uses softmax(logits / T). Accuracy is unchanged (argmax is). Writes calibration.json
next to the ONNX files (a directory without it scores with T = 1), reliability.png
(validation splits, before/after), and updates model_card.json + MODEL_CARD.md. Reports the
top-label expected calibration error (ECE, 15 bins) before and after on dev and validation;
the validation splits are only measured, never fitted on.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the epilog's layout and shows each option's default."""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``train``, ``export`` and ``evaluate`` to the ``sentimon`` command."""
    fmt = _Formatter
    p = sub.add_parser(
        "train",
        help="fine-tune the two-head (topic + sentiment) encoder",
        description="Multi-task fine-tuning on the Twitter financial topic and sentiment sets.",
        epilog=TRAIN_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("--out", type=Path, default=Path("runs/train"), help="output directory")
    p.add_argument("--base", type=Path, help="local HF encoder directory (default all-MiniLM-L6-v2)")
    p.add_argument("--data", type=Path, help="data root holding twitter_fin_topic/ and _sentiment/")
    p.add_argument("--epochs", type=int, default=4, help="passes over the training data")
    p.add_argument("--batch-size", type=int, default=32, help="examples per optimiser step")
    p.add_argument("--lr", type=float, default=8e-5, help="encoder learning rate (heads 10x)")
    p.add_argument("--max-length", type=int, default=64, help="token truncation for training")
    p.add_argument("--seed", type=int, default=13, help="seeds data split, init, order")
    p.add_argument("--patience", type=int, default=2, help="early-stop after N epochs w/o gain")
    p.add_argument("--limit", type=int, help="rows per file (tiny runs)")
    p.add_argument("--max-steps", type=int, help="stop after N optimiser steps")
    p.add_argument("--save-every", type=int, default=200, help="mid-epoch checkpoint interval")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads, 0 = default")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--distill", type=Path,
                   help="teacher-logits file (sentimon teacher-logits): add soft targets")
    p.add_argument("--distill-weight", type=float, default=0.5,
                   help="a in (1 - a) hard loss + a soft loss, on rows with soft targets")
    p.add_argument("--distill-temperature", type=float, default=2.0,
                   help="softmax temperature of the soft-target KL term (scaled by T^2)")
    p.set_defaults(func=run_train)

    p = sub.add_parser(
        "teacher-logits",
        help="run a trained teacher over the distillation texts; write its logits file",
        description="Teacher logits for `sentimon train --distill` (float16, hashed texts).",
        epilog=TEACHER_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("model_dir", type=Path, help="OUT/model of the teacher's `sentimon train`")
    p.add_argument("--out", type=Path, default=Path("model/distill/teacher_logits.npz"),
                   help="logits file to write")
    p.add_argument("--unlabelled", type=int, default=10_000,
                   help="StockNet tweets to add (seeded sample)")
    p.add_argument("--data", type=Path, help="data root")
    p.add_argument("--max-length", type=int,
                   help="token truncation (None: the teacher's training length)")
    p.add_argument("--batch-size", type=int, default=64, help="texts per forward pass")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads, 0 = default")
    p.set_defaults(func=run_teacher_logits)

    p = sub.add_parser(
        "export",
        help="export a trained model to ONNX (fp32, int8, fp16), optionally as the release",
        description="Export to ONNX, optimise with ORT's transformer optimizer, quantise.",
        epilog=EXPORT_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("model_dir", type=Path, help="OUT/model of `sentimon train`")
    p.add_argument("--out", type=Path, default=Path("runs/export"), help="output directory")
    p.add_argument("--version", default=None, help="model version (default from date)")
    p.add_argument("--release", action="store_true", help="replace model/release/ as well")
    p.add_argument("--data", type=Path, help="data root (for int8 agreement / release card)")
    p.add_argument("--skip-fp16", action="store_true", help="no fp16 variant (not for --release)")
    p.add_argument("--notes", help="free text for the card's training section (with --release)")
    p.set_defaults(func=run_export)

    p = sub.add_parser(
        "evaluate",
        help="metrics of exported ONNX variants on both validation splits",
        description="Accuracy, macro-F1, per-class P/R/F1 and confusion matrices per head.",
        epilog=EVAL_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("onnx_dir", type=Path, nargs="?", help="export or release directory")
    p.add_argument("--variant", action="append", choices=["fp32", "int8", "fp16"],
                   help="variant(s) to evaluate (default: all present)")
    p.add_argument("--data", type=Path, help="data root")
    p.add_argument("--limit", type=int, help="N evenly spaced rows of each validation split (quick check)")
    p.add_argument("--json", type=Path, help="write the metrics JSON here")
    p.add_argument("--card", action="store_true", help="write model_card.json + MODEL_CARD.md")
    p.add_argument("--card-kinds", action="store_true",
                   help="update only the by-text-kind figures of the existing card (ONNX, "
                        "tokenizer and calibration files untouched)")
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser(
        "calibrate",
        help="fit per-head temperatures on the dev split (calibrated probabilities)",
        description="Temperature scaling of an export or release directory's ONNX variants.",
        epilog=CALIBRATE_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("model_dir", type=Path, nargs="?",
                   help="export or release directory (default: SENTIMON_MODEL__DIR or the "
                        "packaged release)")
    p.add_argument("--variant", action="append", choices=["fp32", "int8", "fp16"],
                   help="variant(s) to fit (default: all present)")
    p.add_argument("--data", type=Path, help="data root")
    p.add_argument("--seed", type=int, help="dev split seed (default: the card's, else 13)")
    p.add_argument("--dev-fraction", type=float,
                   help="dev split fraction (default: the card's, else 0.05)")
    p.add_argument("--no-figure", action="store_true", help="skip reliability.png")
    p.add_argument("--no-card", action="store_true", help="leave the model card alone")
    p.set_defaults(func=run_calibrate)


def run_train(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of ``sentimon train``."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import sys

    from sentimon.model.train import TrainConfig, train

    cfg = TrainConfig(
        out=str(args.out),
        base=str(args.base) if args.base else None,
        data=str(args.data) if args.data else None,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        max_length=args.max_length,
        seed=args.seed,
        patience=args.patience,
        limit=args.limit,
        max_steps=args.max_steps,
        save_every=args.save_every,
        threads=args.threads,
        distill=str(args.distill) if args.distill else None,
        distill_weight=args.distill_weight,
        distill_temperature=args.distill_temperature,
        extra={"command": "sentimon " + " ".join(sys.argv[1:])},
    )
    model_dir = train(cfg, resume=args.resume, progress=not args.no_progress)
    print(f"best model: {model_dir}")
    return 0


def _data_dir(args: argparse.Namespace) -> Path | None:
    return Path(args.data) if getattr(args, "data", None) else None


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of ``sentimon export``."""
    import json
    import os
    import sys

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentimon.model.data import default_data_dir
    from sentimon.model.evaluate import validation_rows
    from sentimon.model.export import export

    if args.release and args.skip_fp16:
        raise SystemExit("sentimon export: --release ships the fp16 variant; drop --skip-fp16")
    data_dir = _data_dir(args) or default_data_dir()
    # int8 agreement is measured on the validation texts (labels unused: no tuning on them).
    texts = [e.text for rows in validation_rows(data_dir) for e in rows]
    result = export(
        args.model_dir, args.out, texts=texts, version=args.version, fp16=not args.skip_fp16
    )
    info = result.info
    print(f"exported to {args.out}")
    print(f"fused operators: {json.dumps(info['fused_operators'])}")
    print(f"parity fp32 vs PyTorch, max abs logit diff: "
          f"{info['parity_fp32_vs_pytorch_max_abs_logit_diff']:.2e}")
    q = info["int8"]
    print(f"int8 ({q['granularity']}): agreement per-tensor {json.dumps(q['agreement_per_tensor'])}"
          f", per-channel {json.dumps(q['agreement_per_channel'])}")
    print(f"sizes: {json.dumps(info['sizes_bytes'])}")
    if not q["meets_agreement_target"]:
        print(f"WARNING: int8 agrees with fp32 on {100 * q['agreement']['min']:.1f}% of the texts, "
              f"below {100 * q['agreement_target']:.0f}%: score with model.variant fp32 on CPU "
              "(SENTIMON_MODEL__VARIANT=fp32) or fp16 on GPU")
    if args.release:
        from sentimon.model.calibration import calibrate_dir
        from sentimon.model.card import build_card, write_card
        from sentimon.model.evaluate import evaluate_dir, summary_table
        from sentimon.model.release import build_release

        # Temperatures are fitted on the training run's dev split, before the evaluation,
        # so the card's ECE is the shipped (calibrated) model's.
        meta_path = args.model_dir / "sentimon_model.json"
        cfg = json.loads(meta_path.read_text(encoding="utf-8")).get("train_config", {})
        calibrate_dir(
            args.out, data_dir=data_dir, variants=["int8", "fp16"],
            seed=int(cfg.get("seed", 13)), dev_fraction=float(cfg.get("dev_fraction", 0.05)),
            command="sentimon " + " ".join(sys.argv[1:]), limit=cfg.get("limit"),
        )
        metrics = evaluate_dir(args.out, data_dir=data_dir)
        print(summary_table(metrics))
        card = build_card(args.out, metrics, notes=args.notes)
        write_card(args.out, card)
        size = build_release(args.out, card)
        print(f"release written: {size / 1e6:.1f} MB")
    return 0


def run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of ``sentimon evaluate``."""
    import json
    import sys

    from sentimon.model.card import CARD_JSON, build_card, refresh_kinds, write_card
    from sentimon.model.evaluate import evaluate_dir, kind_table, summary_table
    from sentimon.model.inference import RELEASE_DIR

    onnx_dir = args.onnx_dir or settings.model.dir or RELEASE_DIR
    if args.card and args.card_kinds:
        raise SystemExit("sentimon evaluate: --card rewrites the whole card; pick one")
    if args.card_kinds and args.limit:
        raise SystemExit("sentimon evaluate: --card-kinds needs the full validation splits")
    metrics = evaluate_dir(
        onnx_dir,
        variants=args.variant,
        data_dir=_data_dir(args),
        limit=args.limit,
        max_length=settings.model.max_length,
        threads=settings.model.threads,
    )
    print(summary_table(metrics))
    print()
    print(kind_table(metrics))
    if args.json:
        args.json.write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    if args.card_kinds:
        refresh_kinds(Path(onnx_dir), metrics, command="sentimon " + " ".join(sys.argv[1:]))
        print(f"by-kind figures written to the card in {onnx_dir}")
    if args.card:
        prev_path = onnx_dir / CARD_JSON
        prev = json.loads(prev_path.read_text(encoding="utf-8")) if prev_path.exists() else None
        write_card(onnx_dir, build_card(onnx_dir, metrics, prev))
        print(f"card written to {onnx_dir}")
    return 0


def run_calibrate(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of ``sentimon calibrate``."""
    import json
    import sys

    from sentimon.model.calibration import calibrate_dir
    from sentimon.model.card import CARD_JSON, calibration_summary, write_card
    from sentimon.model.data import default_data_dir
    from sentimon.model.inference import RELEASE_DIR

    model_dir = Path(args.model_dir or settings.model.dir or RELEASE_DIR)
    card_path = model_dir / CARD_JSON
    card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.exists() else {}
    cfg = card.get("training", {}).get("config", {})
    seed = args.seed if args.seed is not None else int(cfg.get("seed", 13))
    fraction = args.dev_fraction if args.dev_fraction is not None else float(
        cfg.get("dev_fraction", 0.05))
    out = calibrate_dir(
        model_dir,
        data_dir=_data_dir(args) or default_data_dir(),
        variants=args.variant,
        seed=seed,
        dev_fraction=fraction,
        threads=settings.model.threads,
        figure=not args.no_figure,
        command="sentimon " + " ".join(sys.argv[1:]),
    )
    print(f"{'variant':8} {'head':10} {'T':>6} {'dev ECE':>15} {'valid ECE':>15} {'valid NLL':>15}")
    for v, temps in out["temperatures"].items():
        for head, t in temps.items():
            d, m = out["dev"][v][head], out["validation"][v][head]
            print(f"{v:8} {head:10} {t:6.3f} {d['ece_before']:7.4f}->{d['ece_after']:.4f} "
                  f"{m['ece_before']:7.4f}->{m['ece_after']:.4f} "
                  f"{m['nll_before']:7.4f}->{m['nll_after']:.4f}")
    print(f"wrote {model_dir / 'calibration.json'}"
          + (f" and {model_dir / out['figure']}" if out.get("figure") else ""))
    if card and not args.no_card:
        card["calibration"] = calibration_summary(out)
        for v, m in card.get("metrics", {}).items():
            if v in out["temperatures"]:
                m["calibration"] = {
                    "temperature": out["temperatures"][v],
                    "ece_bins": out["ece_bins"],
                    **{h: {"ece_uncalibrated": out["validation"][v][h]["ece_before"],
                           "ece": out["validation"][v][h]["ece_after"]}
                       for h in out["temperatures"][v]},
                }
        write_card(model_dir, card)
        print(f"card updated in {model_dir}")
    return 0


def run_teacher_logits(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of ``sentimon teacher-logits``."""
    import json
    import os
    import sys

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentimon.model.data import default_data_dir
    from sentimon.model.distill import teacher_logits

    header = teacher_logits(
        args.model_dir,
        args.out,
        data_dir=_data_dir(args) or default_data_dir(),
        unlabelled=args.unlabelled,
        max_length=args.max_length,
        batch_size=args.batch_size,
        threads=args.threads,
        command="sentimon " + " ".join(sys.argv[1:]),
    )
    for split, figs in header["teacher"]["figures"].items():
        heads = figs if split == "dev" else {split: figs}
        for head, m in heads.items():
            print(f"{split:12} {head:12} acc {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f} "
                  f"ECE {m['ece']:.4f} (n={m['n']})")
    print(f"wrote {args.out}: {json.dumps(header['texts'])}, {header['bytes']} bytes, "
          f"{header['seconds']} s")
    return 0
