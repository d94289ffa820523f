"""Static (calibrated) int8 against the shipped dynamic int8: speed and agreement, same run.

The shipped int8 model quantises activations on the fly (``quantize_dynamic``: one scale per
tensor per run, computed at run time). Static quantisation fixes the activation scales ahead
of time from calibration texts, which saves that work and lets ONNX Runtime run the whole
layer in int8 (``QLinearMatMul`` in the QOperator format, or Q/DQ pairs it fuses in the QDQ
format). This script measures whether that is faster here and what it costs in agreement.

1. Source: the fp32 graph of the release (its fp16 weights widened back to fp32; the export
   measured fp16 at 99.98 % argmax agreement with fp32, docs/model.md), or ``--fp32`` (a
   ``sentimon export`` output's ``model.fp32.onnx``), with shapes inferred symbolically so the
   quantiser can follow the fused operators (Attention, SkipLayerNormalization).
2. Calibration: ``--calib-n`` real stream texts (StockNet tweets and news headlines, a seed
   apart from the timed texts), or with ``--calib-texts train`` texts of the training split
   (what the validation texts resemble); never a validation text. Padded to one width.
3. Variants: each ``FORMAT-METHOD-FFN`` of ``--variants``: format ``qoperator`` or ``qdq``;
   calibration ``minmax``, ``percentile`` (99.99) or ``entropy``; the FFN output products
   (whose activations have outliers) ``static`` like the rest, ``dynamic``, or ``keep``: the
   first half of the layers' in fp32 as the shipped export does, the rest static.
   Per-channel int8 weights, uint8 activations. The fused attention products and the
   embeddings have no static form here and are quantised dynamically, as in the shipped model.
4. Agreement: argmax of both heads against the fp32 source on ``--agreement-n`` validation
   texts in runs of 64 in file order, as ``sentimon export`` measures it (the target: 98 %).
5. Speed: ``--n`` real texts tokenized once, length-sorted runs of 64, interleaved repeats,
   median seq/s, as a ratio of the shipped int8 model in the same run.

examples:
  python -m benchmarks.static_int8 --json-out benchmarks/results/static_int8.json
  python -m benchmarks.static_int8 --fp32 runs/export/model.fp32.onnx --variants qdq-entropy-dynamic
  python -m benchmarks.static_int8 --n 64 --calib-n 16 --agreement-n 64 --repeats 1   # smoke run
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
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

OUTPUTS = ["topic_logits", "sentiment_logits"]
RUN = 64
FORMATS = ("qoperator", "qdq")
METHODS = ("minmax", "percentile", "entropy")
FFN = ("static", "keep", "dynamic")
PERCENTILE = 99.99
DEFAULT_VARIANTS = ",".join(["qdq-minmax-static", "qdq-minmax-keep", "qdq-minmax-dynamic",
                             "qdq-percentile-dynamic", "qoperator-minmax-dynamic"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser("benchmarks.static_int8", __doc__ or "")
    p.add_argument("--fp32", type=Path,
                   help="fp32 source graph (default: the release's fp16 weights widened to fp32)")
    p.add_argument("--variants", default=DEFAULT_VARIANTS,
                   help="comma-separated FORMAT-METHOD-FFN (default %(default)s)")
    p.add_argument("--calib-n", type=int, default=512, help="calibration texts (default 512)")
    p.add_argument("--calib-texts", choices=("stream", "train"), default="stream",
                   help="calibrate on stream texts (default) or on the training split's")
    p.add_argument("--agreement-n", type=int, default=2000, help="validation texts (default 2000)")
    p.add_argument("--n", type=int, default=2048, help="timed texts (default 2048)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; median reported")
    p.add_argument("--data-dir", type=Path, help="data root (default ../shared/data)")
    p.add_argument("--json-out", type=Path, help="also write all figures as JSON here")
    args = p.parse_args(argv)
    for v in args.variants.split(","):
        parts = v.split("-")
        if len(parts) != 3 or parts[0] not in FORMATS or parts[1] not in METHODS or parts[2] not in FFN:
            p.error(f"--variants: {v!r} is not FORMAT-METHOD-FFN with FORMAT in {FORMATS}, "
                    f"METHOD in {METHODS} and FFN in {FFN}")
    return args


def widen_fp16(src: Path, dst: Path) -> None:
    """Write ``src`` (an fp16 graph with fp32 inputs and outputs) with every fp16 tensor in fp32."""
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph

    def widen(t: onnx.TensorProto) -> onnx.TensorProto:
        if t.data_type != TensorProto.FLOAT16:
            return t
        return numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name)

    for i, init in enumerate(graph.initializer):
        graph.initializer[i].CopyFrom(widen(init))
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                attr.t.CopyFrom(widen(attr.t))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT16:
                attr.i = TensorProto.FLOAT
    for info in [*graph.value_info, *graph.input, *graph.output]:
        if info.type.tensor_type.elem_type == TensorProto.FLOAT16:
            info.type.tensor_type.elem_type = TensorProto.FLOAT
    onnx.save(model, str(dst))


def prepare(source: Path, dst: Path) -> None:
    """Symbolic shape inference, so the quantiser knows the fused operators' output types."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # auto_merge: the position ids are sliced to min(512, length), which plain inference
    # leaves unresolved.
    quant_pre_process(str(source), str(dst), skip_optimization=True, skip_onnx_shape=True,
                      auto_merge=True, guess_output_rank=True)


def feeds(ids: list[list[int]], *, run: int = RUN, width: int | None = None) -> list[dict[str, np.ndarray]]:
    """Runs of ``run`` texts in the given order, padded to the run's longest (or ``width``)."""
    from sentimon.model.text import pad_batch

    out = []
    for i in range(0, len(ids), run):
        input_ids, mask = pad_batch(ids[i:i + run])
        if width is not None and input_ids.shape[1] < width:
            pad = ((0, 0), (0, width - input_ids.shape[1]))
            input_ids, mask = np.pad(input_ids, pad), np.pad(mask, pad)
        out.append({"input_ids": input_ids, "attention_mask": mask})
    return out


def ffn_outputs(path: Path, layers: int | None = None) -> list[str]:
    """Names of the FFN output products (GELU output -> hidden) of the first ``layers`` layers."""
    import onnx

    nodes = onnx.load(str(path), load_external_data=False).graph.node
    return [n.name for n in nodes if n.op_type == "MatMul" and "/output/dense/" in n.name
            and "/attention/" not in n.name
            and (layers is None or any(f"/layer.{k}/" in n.name for k in range(layers)))]


def quantize(source: Path, dst: Path, variant: str, calib: list[dict[str, np.ndarray]]) -> None:
    """Quantise ``source`` as ``variant`` says (FORMAT-METHOD-FFN) into ``dst``."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    fmt, method, ffn = variant.split("-")
    ffn_all = ffn_outputs(source)
    # The shipped export keeps the first half of the layers' FFN outputs in fp32 (outliers).
    keep_fp32 = ffn_outputs(source, len(ffn_all) // 2) if ffn == "keep" else []
    extra: dict[str, Any] = {"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT}
    if method == "percentile":
        extra["CalibPercentile"] = PERCENTILE
    static = dst.with_suffix(".static.onnx")
    quantize_static(
        str(source), str(static), Reader(),
        quant_format=QuantFormat.QOperator if fmt == "qoperator" else QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"], per_channel=True,
        nodes_to_exclude=[] if ffn == "static" else ffn_all,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method={"minmax": CalibrationMethod.MinMax,
                          "percentile": CalibrationMethod.Percentile,
                          "entropy": CalibrationMethod.Entropy}[method],
        extra_options=extra,
    )
    # Then what has no static form here, dynamically as the shipped model does: the fused
    # Attention (query, key and value in one product), the fused embeddings (size, not
    # speed), and the FFN outputs left out above. Statically quantised products no longer
    # have a constant fp32 weight, so this pass leaves them alone.
    quantize_dynamic(str(static), str(dst),
                     op_types_to_quantize=["Attention", "EmbedLayerNormalization", "MatMul"],
                     per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=keep_fp32,
                     extra_options={"MatMulConstBOnly": True,
                                    "DefaultTensorType": onnx.TensorProto.FLOAT})
    static.unlink()


def session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the scorer
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def logits(sess: Any, runs: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    parts = [sess.run(OUTPUTS, f) for f in runs]
    return [np.concatenate([p[h] for p in parts]) for h in range(len(OUTPUTS))]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import onnxruntime as ort

    from sentimon.model.evaluate import validation_rows
    from sentimon.model.export import agreement
    from sentimon.model.inference import RELEASE_DIR
    from sentimon.model.text import load_tokenizer, normalize

    # The quantiser warns for every tensor of the fused operators whose type it cannot infer
    # (the pre-processing step below resolves what it needs) and for the initialisers it drops.
    logging.getLogger().setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    info = machine_info()
    print_machine(info)
    data = data_dir(args.data_dir)
    tok = load_tokenizer(RELEASE_DIR / "tokenizer.json", 128)

    def encode(texts: list[str]) -> list[list[int]]:
        return [e.ids for e in tok.encode_batch(texts)]

    val = [e.text for part in validation_rows(data) for e in part]
    keep = sorted(random.Random(13).sample(range(len(val)), min(args.agreement_n, len(val))))
    val_ids = encode([normalize(val[i]) for i in keep])  # file order, as the export ran them
    timed_ids = sorted(encode([normalize(t.text) for t in load_texts(data, args.n, seed=13)]), key=len)
    if args.calib_texts == "train":
        from sentimon.model.data import load_splits

        train = [e.text for e in load_splits(data).train]
        calib_ids = encode(random.Random(99).sample(train, min(args.calib_n, len(train))))
    else:
        calib_ids = encode([normalize(t.text) for t in load_texts(data, args.calib_n, seed=99)])
    calib = feeds(calib_ids, run=32, width=max(map(len, calib_ids)))  # histograms need one shape

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="static_int8_") as tmp_s:
        tmp = Path(tmp_s)
        source = args.fp32
        if source is None:
            source = tmp / "fp32.onnx"
            widen_fp16(RELEASE_DIR / "model.fp16.onnx", source)
        prepared = tmp / "prepared.onnx"
        prepare(source, prepared)
        paths = {"dynamic (shipped)": RELEASE_DIR / "model.int8.onnx"}
        for variant in args.variants.split(","):
            t0 = time.monotonic()
            paths[variant] = tmp / f"{variant}.onnx"
            quantize(prepared, paths[variant], variant, calib)
            print(f"{variant}: quantised in {time.monotonic() - t0:.0f} s", flush=True)

        ref = logits(session(source), feeds(val_ids))
        sessions = {name: session(p) for name, p in paths.items()}
        for name, sess in sessions.items():
            out = logits(sess, feeds(val_ids))
            same = agreement((out[0], out[1]), (ref[0], ref[1]))
            topic, sent = same["topic"], same["sentiment"]
            rows.append({"variant": name, "mb": paths[name].stat().st_size / 1e6,
                         "topic_agreement": topic, "sentiment_agreement": sent, "seq_s": []})
        runs = feeds(timed_ids)
        for sess in sessions.values():
            sess.run(OUTPUTS, runs[0])  # warm-up
        for _ in range(args.repeats):
            for row, sess in zip(rows, sessions.values(), strict=True):
                t0 = time.perf_counter()
                for f in runs:
                    sess.run(OUTPUTS, f)
                row["seq_s"].append(len(timed_ids) / (time.perf_counter() - t0))
    base = median(rows[0]["seq_s"])
    for row in rows:
        row["seq_s_runs"], row["seq_s"] = row["seq_s"], median(row["seq_s"])
        row["x_shipped"] = row["seq_s"] / base
    print(table(rows, [("variant", "variant"), ("mb", "MB"), ("seq_s", "seq/s"),
                       ("x_shipped", "x shipped"), ("topic_agreement", "topic agree"),
                       ("sentiment_agreement", "sentiment agree")]))
    print("agreement: argmax against the fp32 source on validation texts, runs of 64 in file order")
    write_json(args.json_out, {"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                               "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
