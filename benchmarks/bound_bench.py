"""How near the int8 model runs to this CPU's limit, and what ONNX Runtime settings buy.

1. Work: multiply-accumulates (MACs) per token of the released ONNX model, counted from its
   graph: every matrix product with a weight (int8 ``MatMulInteger``/``QAttention``, fp32
   ``MatMul``/``Gemm``), plus attention's two products per layer (2 x length x hidden).
2. The CPU's rate: ONNX Runtime's own kernels on one-node graphs of the model's shapes
   (2,048 token rows x 384 x 1,536), same threads as the scorer: an int8 ``MatMulInteger``
   (uint8 x int8, the kernel's peak: no activation quantization) and an fp32 ``MatMul``.
3. Bound: seconds per text if every MAC ran at those rates (int8 products at the int8 rate,
   the rest at the fp32 rate) over the texts' real token counts (no padding, no other
   operator); model-level throughput (length-sorted runs of 64, tokenized once) as a
   fraction of it.
4. Session settings (each a fresh session, interleaved repeats, same texts), with the argmax
   agreement of both heads and the largest logit change against the shipped settings; and
   the scorer's own run plan (``plan_runs`` over micro-batches of 256) on shipped settings.
5. Agreement (``--agreement-n``): int8 activations are quantised per run (one scale per
   tensor), so a text's logits depend on the texts it shares a run with. Argmax agreement of
   int8 with the fp16 release (99.98 % with fp32 at export, docs/model.md; fp32 is not shipped)
   on validation texts, the way ``sentimon export`` measured it (runs of 64 in file order)
   and the way the scorer runs them (length-sorted runs of 64; planned runs).

examples:
  python -m benchmarks.bound_bench --json-out benchmarks/results/bound.json
  python -m benchmarks.bound_bench --n 64 --repeats 1 --agreement-n 64   # smoke run
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    data_dir,
    load_texts,
    machine_info,
    median,
    print_machine,
    script_parser,
    table,
    write_json,
)

INT8_OPS = ("MatMulInteger", "QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat")
FP32_OPS = ("MatMul", "Gemm", "FusedMatMul")
GEMM_M, GEMM_K, GEMM_N = 2048, 384, 1536


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser("benchmarks.bound_bench", __doc__ or "")
    p.add_argument("--n", type=int, default=512, help="real texts for the model level (default 512)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; median reported")
    p.add_argument("--agreement-n", type=int, default=2000,
                   help="validation texts for the int8-vs-fp16 agreement by run plan (0 = skip)")
    p.add_argument("--data-dir", type=Path, help="data root (default ../shared/data)")
    p.add_argument("--json-out", type=Path, help="also write all figures as JSON here")
    return p.parse_args(argv)


def count_macs(path: Path) -> dict[str, Any]:
    """MACs per token of the weight products, int8 and fp32, and the attention layers."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    dims = {i.name: list(i.dims) for i in model.graph.initializer}
    out = {"int8": 0, "fp32": 0, "layers": 0, "hidden": 0}
    for node in model.graph.node:
        if node.op_type not in INT8_OPS + FP32_OPS:
            continue
        weights = [dims[x] for x in node.input if len(dims.get(x, [])) == 2]
        if not weights:
            continue
        k, n = weights[0]
        out["int8" if node.op_type in INT8_OPS else "fp32"] += k * n
        if node.op_type == "QAttention":
            out["layers"] += 1
            out["hidden"] = k
    return out


def gemm_rates(repeats: int) -> dict[str, float]:
    """MACs/s of ONNX Runtime's int8 and fp32 matrix products at the model's shapes."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    rates = {}
    for name in ("int8", "fp32"):
        a: np.ndarray
        b: np.ndarray
        if name == "int8":
            a_type, b = TensorProto.UINT8, rng.integers(-127, 127, (GEMM_K, GEMM_N), dtype=np.int8)
            node = helper.make_node("MatMulInteger", ["a", "b"], ["y"])
            y_type, a = TensorProto.INT32, rng.integers(0, 255, (GEMM_M, GEMM_K), dtype=np.uint8)
        else:
            a_type, b = TensorProto.FLOAT, rng.standard_normal((GEMM_K, GEMM_N), dtype=np.float32)
            node = helper.make_node("MatMul", ["a", "b"], ["y"])
            y_type, a = TensorProto.FLOAT, rng.standard_normal((GEMM_M, GEMM_K), dtype=np.float32)
        graph = helper.make_graph([node], name, [helper.make_tensor_value_info("a", a_type, [GEMM_M, GEMM_K])],
                                  [helper.make_tensor_value_info("y", y_type, [GEMM_M, GEMM_N])],
                                  initializer=[numpy_helper.from_array(b, "b")])
        onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
        opts = ort.SessionOptions()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(onnx_model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        sess.run(None, {"a": a})
        secs = []
        for _ in range(max(5, repeats * 3)):
            t = time.perf_counter()
            sess.run(None, {"a": a})
            secs.append(time.perf_counter() - t)
        rates[name] = GEMM_M * GEMM_K * GEMM_N / median(secs)
    return rates


VARIANTS: dict[str, dict[str, Any]] = {
    "shipped (all graph optimizations, default threads, spinning off)": {},
    "spinning on": {"config": {"session.intra_op.allow_spinning": "1"}},
    "1 intra-op thread": {"threads": 1},
    "denormals as zero": {"config": {"session.set_denormal_as_zero": "1"}},
    "dynamic block base 4": {"config": {"session.dynamic_block_base": "4"}},
    "extended graph optimizations only": {"level": "EXTENDED"},
    "shipped, the scorer's planned runs (plan_runs) instead of runs of 64": {"planned": True},
}


def session(path: Path, spec: dict[str, Any]) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{spec.get('level', 'ALL')}")
    if spec.get("threads"):
        opts.intra_op_num_threads = spec["threads"]
    config = {"session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0",
              **spec.get("config", {})}
    for k, v in config.items():
        opts.add_session_config_entry(k, v)
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def plan_agreement(int8: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Argmax agreement of int8 with fp16, per head, under three ways of forming runs."""
    import random

    from sentimon.ingest.batching import plan_runs
    from sentimon.ingest.scorer import RUN_OVERHEAD_TOKENS
    from sentimon.model.data import default_data_dir
    from sentimon.model.evaluate import validation_rows
    from sentimon.model.inference import SentimentModel, fixed_runs
    from sentimon.model.text import normalize

    rows = [e.text for part in validation_rows(args.data_dir or default_data_dir()) for e in part]
    keep = sorted(random.Random(13).sample(range(len(rows)), min(args.agreement_n, len(rows))))
    texts = [rows[i] for i in keep]  # file order, as the export ran them
    ids = int8.encode([normalize(t) for t in texts], normalized=True)
    lengths = [len(x) for x in ids]
    fp16 = SentimentModel.load(device="cpu", variant="fp16")
    ref = fp16.logits_ids(ids, fixed_runs(lengths, 64, True))
    plans = {
        "runs of 64 in file order (as sentimon export measured)": fixed_runs(lengths, 64, False),
        "length-sorted runs of 64 (the scorer before 2026-12-02)": fixed_runs(lengths, 64, True),
        "planned runs in micro-batches of 256 (the scorer now)": [
            [i + j for j in run] for i in range(0, len(ids), 256)
            for run in plan_runs(lengths[i : i + 256], max_run=64, run_overhead=RUN_OVERHEAD_TOKENS)],
    }
    out = []
    for name, runs in plans.items():
        topic, sent = int8.logits_ids(ids, runs)
        t = float(np.mean(topic.argmax(1) == ref[0].argmax(1)))
        s = float(np.mean(sent.argmax(1) == ref[1].argmax(1)))
        out.append({"plan": name, "n": len(ids), "topic": t, "sentiment": s, "min": min(t, s)})
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    print_machine(info)
    from sentimon.ingest.batching import plan_runs
    from sentimon.ingest.scorer import RUN_OVERHEAD_TOKENS
    from sentimon.model.inference import SentimentModel, fixed_runs
    from sentimon.model.text import normalize

    base = SentimentModel.load(device="cpu", variant="int8")
    macs = count_macs(base.path)
    texts = [normalize(t.text) for t in load_texts(data_dir(args.data_dir), args.n)]
    ids = base.encode(texts, normalized=True)
    lengths = [len(x) for x in ids]
    runs = fixed_runs(lengths, 64, True)
    planned = [r for i in range(0, len(ids), 256)  # the scorer: micro-batches of 256, then plan_runs
               for r in ([i + j for j in run] for run in plan_runs(lengths[i : i + 256], max_run=64,
                                                                     run_overhead=RUN_OVERHEAD_TOKENS))]
    mean_len = sum(lengths) / len(lengths)
    attn = 2 * macs["layers"] * macs["hidden"] * sum(n * n for n in lengths) / len(lengths)  # per text
    per_text_int8 = macs["int8"] * mean_len
    per_text_fp32 = macs["fp32"] * mean_len + attn
    print(f"work: {macs['int8'] / 1e6:.2f} M int8 + {macs['fp32'] / 1e6:.2f} M fp32 MACs per token; "
          f"mean {mean_len:.1f} tokens a text; attention {attn / 1e6:.2f} M MACs a text", flush=True)
    rates = gemm_rates(args.repeats)
    bound_s = per_text_int8 / rates["int8"] + per_text_fp32 / rates["fp32"]
    print(f"CPU rates (ONNX Runtime kernels, {GEMM_M}x{GEMM_K}x{GEMM_N}): int8 {rates['int8'] / 1e9:.1f} GMAC/s, "
          f"fp32 {rates['fp32'] / 1e9:.1f} GMAC/s; bound {1 / bound_s:.0f} texts/s", flush=True)

    models = []
    for label, spec in VARIANTS.items():
        m = SentimentModel(session(base.path, spec), base._tokenizer, provider=base.provider, variant="int8",
                           max_length=base.max_length, path=base.path, temperatures=base.temperatures)
        m.logits_ids(ids[:64], fixed_runs(lengths[:64], 64, True))  # warm-up
        models.append({"label": label, "model": m, "secs": [],
                       "runs": planned if spec.get("planned") else runs})
    for r in range(args.repeats):
        for row in models:
            t = time.perf_counter()
            row["logits"] = row["model"].logits_ids(ids, row["runs"])
            row["secs"].append(time.perf_counter() - t)
        print(f"  repeat {r + 1}/{args.repeats} done", flush=True)
    ref = models[0]["logits"]
    rows = []
    for row in models:
        topic, sent = row["logits"]
        seq_s = len(ids) / median(row["secs"])
        rows.append({
            "settings": row["label"], "seq_per_s": seq_s, "x_shipped": seq_s * median(models[0]["secs"]) / len(ids),
            "of_bound": seq_s * bound_s,
            "agree_topic": float(np.mean(topic.argmax(1) == ref[0].argmax(1))),
            "agree_sentiment": float(np.mean(sent.argmax(1) == ref[1].argmax(1))),
            "max_logit_diff": float(max(np.abs(topic - ref[0]).max(), np.abs(sent - ref[1]).max())),
            "seconds": row["secs"],
        })
    print(table(rows, [("settings", "ONNX Runtime settings"), ("seq_per_s", "seq/s"), ("x_shipped", "x shipped"),
                       ("of_bound", "of bound"), ("agree_topic", "topic argmax = shipped"),
                       ("agree_sentiment", "sentiment argmax = shipped"), ("max_logit_diff", "max |logit diff|")]))
    print(f"model level (shipped settings, runs of 64 sorted): {rows[0]['seq_per_s']:.0f} texts/s = "
          f"{rows[0]['of_bound']:.1%} of the bound ({1 / bound_s:.0f} texts/s)")
    agree = plan_agreement(base, args) if args.agreement_n else []
    if agree:
        print(table(agree, [("plan", "int8 runs"), ("n", "texts"), ("topic", "topic = fp16"),
                            ("sentiment", "sentiment = fp16"), ("min", "min head")]))
    write_json(args.json_out, {"benchmark": "bound", "machine": info, "macs_per_token": macs,
                               "mean_tokens": mean_len, "attention_macs_per_text": attn,
                               "gemm_macs_per_s": rates, "bound_texts_per_s": 1 / bound_s, "variants": rows,
                               "agreement_by_run_plan": agree})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
