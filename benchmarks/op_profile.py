"""Where the model's time goes: ONNX Runtime's own profile of one configuration, per operator type.

Loads a released variant (default int8) on the CPU provider with ONNX Runtime profiling on,
scores real texts through ``SentimentModel.predict`` (the scorer's runtime) at one batch size,
sorted by length, and sums the profiled node times per operator type. It separates the int8
matrix products (after ONNX Runtime's fusions: ``QAttention``, ``DynamicQuantizeMatMul``, ...)
from the matrix products the export kept in fp32 (``MatMul``), and prints how much of ``predict``'s
wall time is inside ONNX Runtime's session at all (the rest is tokenization, padding, softmax).

examples:
  python -m benchmarks.op_profile --json-out benchmarks/results/op_profile.json
  python -m benchmarks.op_profile --variant fp16 --batch-size 16
  python -m benchmarks.op_profile --n 64 --batch-size 16   # smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common import data_dir, load_texts, machine_info, print_machine, script_parser, table, write_json


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser("benchmarks.op_profile", __doc__ or "")
    p.add_argument("--n", type=int, default=2048, help="real texts scored")
    p.add_argument("--batch-size", type=int, default=64, help="texts per model run (sorted by length)")
    p.add_argument("--variant", default="int8", choices=["int8", "fp16", "fp32"])
    p.add_argument("--model-dir", type=Path, default=None, help="model directory (default the packaged release)")
    p.add_argument("--data-dir", type=Path, default=None, help="data root (default ../shared/data)")
    p.add_argument("--json-out", type=Path, default=None, help="also write all figures as JSON here")
    return p.parse_args(argv)


def profiled_model(model_dir: Path | None, variant: str, prefix: str) -> Any:
    """A CPU ``SentimentModel`` whose ONNX Runtime session writes a profile under ``prefix``."""
    import onnxruntime as ort

    from sentimon.model.inference import RELEASE_DIR, SentimentModel, onnx_file
    from sentimon.model.text import load_tokenizer

    model_dir = model_dir or RELEASE_DIR
    path = onnx_file(model_dir, variant)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = True
    opts.profile_file_prefix = prefix
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return SentimentModel(session, load_tokenizer(model_dir / "tokenizer.json", 128),
                          provider="CPUExecutionProvider", variant=variant, max_length=128, path=path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    print_machine(info)
    texts = [t.text for t in load_texts(data_dir(args.data_dir), args.n)]
    with tempfile.TemporaryDirectory() as tmp:
        model = profiled_model(args.model_dir, args.variant, str(Path(tmp) / "ort"))
        started = time.perf_counter()
        model.predict(texts, batch_size=args.batch_size)
        wall_s = time.perf_counter() - started
        events = json.loads(Path(model._session.end_profiling()).read_text())
    by_op: dict[str, float] = defaultdict(float)
    nodes: dict[str, set[str]] = defaultdict(set)
    by_node: dict[tuple[str, str], float] = defaultdict(float)
    session_us = 0.0
    for ev in events:
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            by_op[ev["args"]["op_name"]] += ev["dur"]
            nodes[ev["args"]["op_name"]].add(ev["name"])
            by_node[(ev["name"].removesuffix("_kernel_time"), ev["args"]["op_name"])] += ev["dur"]
        elif ev.get("cat") == "Session" and ev["name"] == "model_run":
            session_us += ev["dur"]
    nodes_us = sum(by_op.values())
    rows = [{"op": op, "nodes": len(nodes[op]), "s": us / 1e6, "per_node_ms": us / 1e3 / len(nodes[op]),
             "share": us / nodes_us} for op, us in sorted(by_op.items(), key=lambda kv: -kv[1])]
    print(f"\n{len(texts)} texts, {args.variant}, batch {args.batch_size} sorted: predict {wall_s:.2f}s wall, "
          f"{session_us / 1e6:.2f}s inside ONNX Runtime runs ({session_us / 1e6 / wall_s:.0%}), "
          f"{nodes_us / 1e6:.2f}s of node kernels")
    print(table(rows[:15], [("op", "operator"), ("nodes", "nodes"), ("s", "kernel s"),
                            ("per_node_ms", "ms per node"), ("share", "share of kernels")]))
    # After ONNX Runtime's fusions the int8 products appear as these fused operators.
    groups = {"int8 (QAttention, DynamicQuantizeMatMul, MatMulIntegerToFloat, ...)":
              ("QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger",
               "DynamicQuantizeLinear", "QEmbedLayerNormalization"),
              "fp32 matrix products (MatMul, FusedMatMul, Attention)": ("MatMul", "FusedMatMul", "Attention")}
    summary = {name: sum(by_op.get(op, 0.0) for op in ops) / nodes_us for name, ops in groups.items()}
    for name, share in summary.items():
        print(f"{name}: {share:.1%} of kernel time")
    slowest = [{"node": n, "op": op, "s": us / 1e6, "share": us / nodes_us}
               for (n, op), us in sorted(by_node.items(), key=lambda kv: -kv[1])[:12]]
    print("\nslowest nodes")
    print(table(slowest, [("node", "node"), ("op", "operator"), ("s", "kernel s"), ("share", "share")]))
    write_json(args.json_out, {"machine": info, "n": len(texts), "variant": args.variant,
                               "batch_size": args.batch_size, "predict_wall_s": wall_s,
                               "session_s": session_us / 1e6, "kernels_s": nodes_us / 1e6,
                               "by_op": rows, "groups": summary, "slowest_nodes": slowest})
    return 0


if __name__ == "__main__":
    sys.exit(main())
