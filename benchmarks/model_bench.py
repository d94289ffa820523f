"""Model-level throughput: sentimon's ONNX inference helper against the naive PyTorch baseline.

Same real texts, same machine, one run, median of ``--repeats``. Every timing is end to end,
text in and prediction out, tokenization included; tokenizer-only times show where time goes.

1. baseline: ``transformers.pipeline("text-classification")`` on a local HF directory, eager
   PyTorch, batch 32, ``torch.set_num_threads(cores)``. It has one (fresh) classification head:
   the encoder is the cost, and it is the same MiniLM-L6 encoder as sentimon's model.
2. ``SentimentModel`` (the scorer's runtime): ONNX fp32 (from ``--fp32-dir``, if present) and
   the released low-precision variant (int8 on CPU, fp16 on CUDA), with and without length
   sorting, at each ``--batch-sizes``; and, for the low-precision variant, the way the scorer
   calls it: micro-batches of 256 texts in arrival order, each one model run (padded to its
   longest text), against the same micro-batches split into length-sorted runs of 64.

Also the argmax agreement of the low-precision variant with fp32, and of both with the
PyTorch two-head model of the training run (``--train-dir``), per head.

3. ``--compare-dir DIR``: the low-precision variant of a second (e.g. older) release directory,
   timed in the same run at the same configurations, each repeat right beside the current
   release's (their order swapped every repeat), so machine noise hits both equally. Prints
   the ratio new/old texts per second per configuration, at predict's default batch, and
   their geometric mean.

examples:
  python -m benchmarks.model_bench --json-out runs/bench/model.json
  python -m benchmarks.model_bench --fp32-dir runs/export --train-dir runs/train/model
  python -m benchmarks.model_bench --n 64 --repeats 1 --batch-sizes 16   # smoke run
  python -m benchmarks.model_bench --device cuda                         # fp16 + fp32 on a GPU
  git worktree add /tmp/sentimon-old <rev>                               # an older release ...
  python -m benchmarks.model_bench --skip-baseline --compare-dir /tmp/sentimon-old/model/release
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    REPO,
    data_dir,
    load_texts,
    machine_info,
    median,
    print_machine,
    script_parser,
    table,
    write_json,
)

DEFAULT_FP32_DIR = REPO / "runs" / "export"
DEFAULT_TRAIN_DIR = REPO / "runs" / "train" / "model"
BASELINE_BATCH = 32
DEFAULT_BATCH = 64  # SentimentModel.predict's default
SCORER_BATCH = 256  # scorer.max_batch's default
TARGET_SPEEDUP = 6.0
TARGET_AGREEMENT = 0.98


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser("benchmarks.model_bench", __doc__ or "")
    p.add_argument("--n", type=int, default=2048, help="number of real texts (default 2048)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per configuration; median reported")
    p.add_argument("--batch-sizes", default="1,16,64,256", help="comma-separated (default 1,16,64,256)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=0,
                   help="ONNX Runtime intra-op threads, 0 = its default (all cores), as the scorer")
    p.add_argument("--max-length", type=int, default=128, help="token truncation, as model.max_length")
    p.add_argument("--release-dir", type=Path, default=None, help="release directory (default model/release)")
    p.add_argument("--compare-dir", type=Path, default=None,
                   help="a second release directory (e.g. an older release from `git worktree "
                        "add`): its low-precision variant is timed beside --release-dir's, "
                        "repeats interleaved; prints the ratio new/old texts per second")
    p.add_argument("--fp32-dir", type=Path, default=DEFAULT_FP32_DIR,
                   help="`sentimon export` output holding model.fp32.onnx (default runs/export); "
                        "fp32 is skipped with a note when absent")
    p.add_argument("--train-dir", type=Path, default=DEFAULT_TRAIN_DIR,
                   help="`sentimon train` OUT/model: PyTorch reference for agreement and the "
                        "baseline's fine-tuned encoder (default runs/train/model)")
    p.add_argument("--hf-dir", type=Path, help="baseline HF model directory (overrides the choice)")
    p.add_argument("--skip-baseline", action="store_true", help="no transformers pipeline baseline")
    p.add_argument("--data-dir", type=Path, help="data root (default ../shared/data)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--json-out", type=Path, help="also write all figures as JSON here")
    args = p.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    if args.n < 1 or args.repeats < 1 or not args.batch_sizes or min(args.batch_sizes) < 1:
        p.error("--n, --repeats and --batch-sizes must be positive")
    return args


# -- the naive baseline ----------------------------------------------------------------------------


def baseline_dirs(args: argparse.Namespace) -> tuple[Path, Path, str]:
    """(model dir, tokenizer dir, what it is) for the pipeline baseline."""
    if args.hf_dir:
        return args.hf_dir, args.hf_dir, f"{args.hf_dir} (given with --hf-dir)"
    enc = args.train_dir / "encoder"
    if (enc / "config.json").exists() and (args.train_dir / "tokenizer.json").exists():
        return enc, args.train_dir, (f"fine-tuned encoder of the training run ({enc}), "
                                     "fresh 2-label classification head")
    from sentimon.model.network import default_base_dir

    base = default_base_dir()
    return base, base, (f"base all-MiniLM-L6-v2 ({base}), fresh 2-label classification head "
                        f"(no training run at {args.train_dir}); same architecture and cost")


@dataclass
class Job:
    """One timed configuration: ``fn`` runs it once over all texts; ``row`` describes it."""

    row: dict[str, Any]
    fn: Callable[[], Any]
    secs: list[float] = field(default_factory=list)


def run_jobs(jobs: list[Job], *, repeats: int, alternate: bool = False) -> None:
    """Time every job ``repeats`` times, interleaved: repeat r of every job, then repeat r+1.

    On a machine shared with other work, load changes over minutes; interleaving spreads
    that over all configurations instead of loading the dice against whichever ran last.
    ``alternate`` runs odd repeats in reverse order: jobs placed side by side (a release and
    the one it is compared with) then take turns going first, so neither always runs right
    after the other's (warm caches, spinning threads).
    """
    for r in range(repeats):
        for job in reversed(jobs) if alternate and r % 2 else jobs:
            started = time.perf_counter()
            job.fn()
            job.secs.append(time.perf_counter() - started)
        print(f"  repeat {r + 1}/{repeats} of {len(jobs)} configurations done", flush=True)


def prepare_baseline(args: argparse.Namespace, texts: list[str]) -> tuple[dict[str, Any], list[Job]]:
    """The pipeline, loaded and warmed up; jobs for end-to-end and tokenizer-only time."""
    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the fresh-head warning is expected; it is in the notes
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    model_dir, tok_dir, what = baseline_dirs(args)
    pipe = pipeline("text-classification", model=str(model_dir), tokenizer=str(tok_dir),
                    device=0 if args.device == "cuda" else -1)
    kw = {"batch_size": BASELINE_BATCH, "truncation": True, "max_length": args.max_length}
    pipe(texts[:BASELINE_BATCH], **kw)  # warm-up
    tok = pipe.tokenizer
    assert tok is not None, "the pipeline has no tokenizer"

    def tokenize() -> None:
        for i in range(0, len(texts), BASELINE_BATCH):
            tok(texts[i : i + BASELINE_BATCH], padding=True, truncation=True, max_length=args.max_length,
                return_tensors="pt")

    info = {
        "what": what,
        "model_dir": str(model_dir),
        "batch_size": BASELINE_BATCH,
        "torch_threads": torch.get_num_threads(),
        "attn_implementation": getattr(pipe.model.config, "_attn_implementation", "unknown"),
    }
    return info, [Job({"job": "baseline"}, lambda: pipe(texts, **kw)),
                  Job({"job": "baseline_tokenizer"}, tokenize)]


def finish_baseline(info: dict[str, Any], jobs: list[Job], n: int) -> dict[str, Any]:
    secs, tok_secs = jobs[0].secs, jobs[1].secs
    return {**info, "seconds": secs, "seq_per_s": n / median(secs), "tokenizer_seconds": tok_secs,
            "tokenizer_share": median(tok_secs) / median(secs)}


# -- sentimon's inference helper -------------------------------------------------------------------


def variant_dirs(args: argparse.Namespace) -> tuple[list[tuple[str, Path]], list[str]]:
    """[(variant, directory)] to measure, and notes on what was skipped."""
    from sentimon.model.inference import RELEASE_DIR, onnx_file

    release = args.release_dir or RELEASE_DIR
    notes = []
    out: list[tuple[str, Path]] = []
    if onnx_file(args.fp32_dir, "fp32").exists():
        out.append(("fp32", args.fp32_dir))
    else:
        notes.append(f"fp32 skipped: no {onnx_file(args.fp32_dir, 'fp32')} (the release ships int8 + "
                     "fp16 only; `sentimon export runs/train/model --out runs/export` writes fp32)")
    low = "fp16" if args.device == "cuda" else "int8"
    if not onnx_file(release, low).exists():
        raise SystemExit(f"no {onnx_file(release, low)}")
    out.append((low, release))
    return out, notes


def prepare_variant(args: argparse.Namespace, variant: str, model_dir: Path, texts: list[str]
                    ) -> tuple[Any, list[Job], Job]:
    """The loaded model, its timed jobs, and its tokenizer-only job."""
    from sentimon.model.inference import SentimentModel

    model = SentimentModel.load(model_dir, device=args.device, variant=variant,
                                max_length=args.max_length, threads=args.threads)
    model.predict(texts[:256], batch_size=DEFAULT_BATCH)  # warm-up: allocations, kernels
    base = {"variant": variant, "provider": model.provider, "model": f"{model.name}@{model.version}"}
    jobs = []
    for bs in args.batch_sizes:
        # At batch 1 there is no padding, so sorting changes nothing: measured once.
        for sort in (True,) if bs == 1 else (True, False):
            row = {**base, "batch_size": bs, "sorted": "n/a" if bs == 1 else "yes" if sort else "no"}
            jobs.append(Job(row, _scoring(model, texts, batch_size=bs, sort=sort)))
    # The scorer hands each micro-batch (up to scorer.max_batch records in arrival order) to
    # predict with batch_size=len(batch): one run, padded to the batch's longest text.
    chunks = [texts[i : i + SCORER_BATCH] for i in range(0, len(texts), SCORER_BATCH)]
    for inner in (None, DEFAULT_BATCH):
        def go(inner: int | None = inner) -> None:
            for c in chunks:
                model.predict(c, batch_size=inner or len(c))

        row = {**base, "batch_size": f"{SCORER_BATCH} chunks", "scorer_style": True,
               "sorted": "one run" if inner is None else f"runs of {inner}, sorted"}
        jobs.append(Job(row, go))
    return model, jobs, Job({**base, "job": "tokenizer"}, lambda: model.token_counts(texts))


def job_rows(jobs: list[Job], n: int, baseline_rate: float | None) -> list[dict[str, Any]]:
    """One result row per timed job: its median rate over ``n`` texts and the raw timings."""
    rows = []
    for job in jobs:
        rate = n / median(job.secs)
        rows.append({**job.row, "seq_per_s": rate, "ms_per_seq": 1000 / rate, "seconds": job.secs,
                     "x_baseline": rate / baseline_rate if baseline_rate else None})
    return rows


def finish_variant(model: Any, jobs: list[Job], tok_job: Job, texts: list[str], baseline_rate: float | None
                   ) -> tuple[list[dict[str, Any]], dict[str, Any], Any]:
    """Rows of one variant, its tokenizer-only time, and its logits for agreement."""
    rows = job_rows(jobs, len(texts), baseline_rate)
    counts = model.token_counts(texts)
    tokenizer = {"seconds": tok_job.secs, "seq_per_s": len(texts) / median(tok_job.secs),
                 "mean_tokens": float(np.mean(counts)), "max_tokens": int(max(counts))}
    logits = model.logits(texts, batch_size=DEFAULT_BATCH, sort_by_length=True)
    return rows, {"tokenizer": tokenizer, **model_meta(model)}, logits


def model_meta(model: Any) -> dict[str, Any]:
    """Which model file was timed: name@version, path, provider and its sha256."""
    from sentimon.model.card import sha256

    return {"model": f"{model.name}@{model.version}", "path": str(model.path),
            "provider": model.provider, "sha256": sha256(Path(model.path))}


def pytorch_logits(train_dir: Path, texts: list[str], max_length: int, device: str) -> Any:
    """Logits of the PyTorch two-head model (the export's source), or None when absent."""
    if not (train_dir / "heads.pt").exists():
        return None
    import torch

    from sentimon.model.network import TwoHeadModel
    from sentimon.model.text import load_tokenizer, normalize, pad_batch

    torch.set_num_threads(os.cpu_count() or 1)
    model = TwoHeadModel.load(train_dir).to(device)
    tok = load_tokenizer(train_dir / "tokenizer.json", max_length)
    ids = [e.ids for e in tok.encode_batch([normalize(t) for t in texts])]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    outs_t: dict[int, Any] = {}
    outs_s: dict[int, Any] = {}
    with torch.inference_mode():
        for start in range(0, len(order), DEFAULT_BATCH):
            sel = order[start : start + DEFAULT_BATCH]
            input_ids, mask = pad_batch([ids[i] for i in sel])
            t, s = model(torch.from_numpy(input_ids).to(device), torch.from_numpy(mask).to(device))
            for k, i in enumerate(sel):
                outs_t[i], outs_s[i] = t[k].cpu().numpy(), s[k].cpu().numpy()
    topic = np.stack([outs_t[i] for i in range(len(ids))])
    sent = np.stack([outs_s[i] for i in range(len(ids))])
    return topic, sent


def compare_ratios(new: list[dict[str, Any]], old: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratio new/old texts per second for each configuration both timed, the ratio at
    predict's default batch (sorted), and the geometric mean of all ratios.

    The geometric mean, not the arithmetic one: ratios multiply, and a 2x gain and a 2x loss
    should average to 1.
    """
    def key(r: dict[str, Any]) -> tuple[str, str]:
        return str(r["batch_size"]), str(r["sorted"])

    old_by = {key(r): r for r in old}
    pairs = [{"batch_size": r["batch_size"], "sorted": r["sorted"], "new_seq_per_s": r["seq_per_s"],
              "old_seq_per_s": old_by[key(r)]["seq_per_s"],
              "ratio": r["seq_per_s"] / old_by[key(r)]["seq_per_s"]}
             for r in new if key(r) in old_by]
    default = next((p["ratio"] for p in pairs
                    if p["batch_size"] == DEFAULT_BATCH and p["sorted"] == "yes"), None)
    geomean = float(np.exp(np.mean(np.log([p["ratio"] for p in pairs])))) if pairs else None
    return {"pairs": pairs, "ratio_default_batch": default, "geomean_ratio": geomean}


def same_export(fp32_dir: Path, low_dir: Path, low: str) -> bool:
    """Whether ``low_dir``'s variant is byte for byte the one exported beside ``fp32_dir``'s fp32."""
    import hashlib

    from sentimon.model.inference import onnx_file

    a, b = onnx_file(fp32_dir, low), onnx_file(low_dir, low)
    if not a.exists():
        return False
    return a.resolve() == b.resolve() or (
        hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest())


def agreement(a: Any, b: Any) -> dict[str, float]:
    """Share of texts whose argmax is the same, per head and for both heads at once."""
    t = a[0].argmax(1) == b[0].argmax(1)
    s = a[1].argmax(1) == b[1].argmax(1)
    return {"topic": float(t.mean()), "sentiment": float(s.mean()), "both": float((t & s).mean())}


# -- main ------------------------------------------------------------------------------------------



def _scoring(model: Any, texts: list[str], *, batch_size: int, sort: bool) -> Callable[[], Any]:
    """One timed job: score every text at ``batch_size``, length-sorted or not."""
    return lambda: model.predict(texts, batch_size=batch_size, sort_by_length=sort)

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            print("--device cuda: onnxruntime has no CUDAExecutionProvider here", file=sys.stderr)
            return 2
    info = machine_info()
    print_machine(info)
    items = load_texts(data_dir(args.data_dir), args.n, seed=args.seed)
    texts = [t.text for t in items]
    print(f"{len(texts)} real texts ({sum(t.kind == 'news' for t in items)} news headlines, "
          f"{sum(t.kind == 'comment' for t in items)} StockNet tweets), {args.repeats} repeats each")
    notes: list[str] = []

    jobs: list[Job] = []
    base_info, base_jobs = None, list[Job]()
    if args.skip_baseline:
        notes.append("baseline skipped (--skip-baseline): no ratios")
    else:
        print("loading the baseline: transformers pipeline, eager PyTorch ...", flush=True)
        try:
            base_info, base_jobs = prepare_baseline(args, texts)
        except ImportError as exc:
            notes.append(f"baseline skipped: {exc} (install the train extra: pip install -e '.[train]')")
    jobs += base_jobs

    variants, skipped = variant_dirs(args)
    notes += skipped
    low = variants[-1][0]
    old_model: Any = None
    old_jobs: list[Job] = []
    if args.compare_dir:
        from sentimon.model.inference import onnx_file

        if not onnx_file(args.compare_dir, low).exists():
            raise SystemExit(f"--compare-dir: no {onnx_file(args.compare_dir, low)}")
        print(f"loading sentimon {low} to compare with ({args.compare_dir}) ...", flush=True)
        old_model, old_jobs, _ = prepare_variant(args, low, args.compare_dir, texts)
        for job in old_jobs:
            job.row = {**job.row, "variant": f"{low} (compare)"}
    loaded = []
    for variant, model_dir in variants:
        print(f"loading sentimon {variant} ({model_dir}) ...", flush=True)
        model, vjobs, tok_job = prepare_variant(args, variant, model_dir, texts)
        loaded.append((variant, model, vjobs, tok_job))
        if variant == low and old_jobs:
            # Each configuration of the two releases side by side: new, old, new, old ...
            jobs += [j for pair in zip(vjobs, old_jobs, strict=True) for j in pair] + [tok_job]
        else:
            jobs += [*vjobs, tok_job]
    run_jobs(jobs, repeats=args.repeats, alternate=bool(old_jobs))

    baseline = finish_baseline(base_info, base_jobs, len(texts)) if base_info else None
    base_rate = baseline["seq_per_s"] if baseline else None
    if baseline:
        print(f"  baseline {base_rate:.1f} seq/s ({baseline['what']})")
    rows: list[dict[str, Any]] = []
    metas: dict[str, Any] = {}
    logits: dict[str, Any] = {}
    for variant, model, vjobs, tok_job in loaded:
        r, meta, lg = finish_variant(model, vjobs, tok_job, texts, base_rate)
        rows += r
        metas[variant] = meta
        logits[variant] = lg

    agree: dict[str, Any] = {}
    compare: dict[str, Any] | None = None
    if old_model is not None:
        old_rows = job_rows(old_jobs, len(texts), base_rate)
        compare = {"dir": str(args.compare_dir), **model_meta(old_model), "rows": old_rows,
                   **compare_ratios([r for r in rows if r["variant"] == low], old_rows)}
        old_logits = old_model.logits(texts, batch_size=DEFAULT_BATCH, sort_by_length=True)
        agree[f"{low}_vs_compare"] = agreement(logits[low], old_logits)
        if compare["sha256"] == metas[low]["sha256"]:
            notes.append("--compare-dir holds the same model file: the ratios measure noise only")
    if "fp32" in logits:
        agree[f"{low}_vs_fp32"] = agreement(logits[low], logits["fp32"])
        if not same_export(Path(metas["fp32"]["path"]).parent, Path(metas[low]["path"]).parent, low):
            notes.append(f"fp32 ({metas['fp32']['model']}) and {low} ({metas[low]['model']}) come from "
                         "different exports: their agreement is not a quantisation figure")
    try:
        torch_logits = pytorch_logits(args.train_dir, texts, args.max_length, args.device)
    except ImportError as exc:
        torch_logits = None
        notes.append(f"PyTorch agreement skipped: {exc}")
    if torch_logits is None:
        notes.append(f"PyTorch agreement skipped: no training run at {args.train_dir}")
    else:
        for variant in logits:
            agree[f"{variant}_vs_pytorch"] = agreement(logits[variant], torch_logits)

    # The scorer's CPU default: variant auto (int8), length sorting, predict's batch 64.
    default = next((r for r in rows if r["variant"] == low and r["batch_size"] == DEFAULT_BATCH
                    and r["sorted"] == "yes"), None)
    targets: dict[str, Any] = {}
    if default and default["x_baseline"] is not None:
        targets["speedup_default_vs_baseline"] = {
            "value": default["x_baseline"], "target": TARGET_SPEEDUP,
            "met": default["x_baseline"] >= TARGET_SPEEDUP,
        }
    if f"{low}_vs_fp32" in agree:
        worst = min(agree[f"{low}_vs_fp32"]["topic"], agree[f"{low}_vs_fp32"]["sentiment"])
        targets[f"agreement_{low}_vs_fp32"] = {"value": worst, "target": TARGET_AGREEMENT,
                                               "met": worst >= TARGET_AGREEMENT}

    print()
    head = [{"variant": "pytorch (baseline)", "provider": "torch", "batch_size": BASELINE_BATCH,
             "sorted": "no", "seq_per_s": base_rate, "x_baseline": 1.0,
             "ms_per_seq": 1000 / base_rate}] if base_rate else []
    print(table(head + rows, [("variant", "variant"), ("batch_size", "batch"), ("sorted", "sorted"),
                              ("seq_per_s", "seq/s"), ("x_baseline", "x baseline"),
                              ("ms_per_seq", "ms/seq")]))
    print()
    tok_rows = []
    if baseline:
        tok_rows.append({"what": "HF fast tokenizer, batches of 32, padded (baseline)",
                         "s": median(baseline["tokenizer_seconds"]),
                         "share": baseline["tokenizer_share"]})
    for variant, meta in metas.items():
        mine = [r for r in rows if r["variant"] == variant]
        ref = next((r for r in mine if r["batch_size"] == DEFAULT_BATCH and r["sorted"] == "yes"), mine[0])
        s = median(meta["tokenizer"]["seconds"])
        tok_rows.append({"what": f"sentimon tokenizer ({variant} dir), whole list",
                         "s": s, "share": s / median(ref["seconds"])})
    print(table(tok_rows, [("what", "tokenizer only"), ("s", "seconds"),
                           ("share", "share of end-to-end")]))
    for name, a in agree.items():
        print(f"argmax agreement {name}: sentiment {a['sentiment']:.2%}, topic {a['topic']:.2%}, "
              f"both {a['both']:.2%}")
    for name, t in targets.items():
        print(f"target {name}: {t['value']:.3g} (target >= {t['target']:g}) "
              f"{'MET' if t['met'] else 'NOT MET'}")
    if compare is not None:
        print(f"\ncompared with {compare['model']} ({compare['dir']}), {low}, repeats interleaved:")
        print(table(compare["pairs"], [("batch_size", "batch"), ("sorted", "sorted"),
                                       ("new_seq_per_s", "new seq/s"), ("old_seq_per_s", "old seq/s"),
                                       ("ratio", "new/old")]))
        at = compare["ratio_default_batch"]
        print(f"ratio new/old at predict's default batch {DEFAULT_BATCH}: "
              f"{'n/a (not in --batch-sizes)' if at is None else f'{at:.3f}'}; "
              f"geometric mean over {len(compare['pairs'])} configurations: "
              f"{compare['geomean_ratio']:.3f}")
    for note in notes:
        print(f"note: {note}")
    write_json(args.json_out, {
        "benchmark": "model", "machine": info, "n_texts": len(texts), "repeats": args.repeats,
        "device": args.device, "baseline": baseline, "rows": rows, "variants": metas,
        "agreement": agree, "targets": targets, "compare": compare, "notes": notes,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
