"""CPU per message on a stream of small batches: ONNX Runtime thread spinning on against off.

A live scorer rarely runs back to back: it gets a few records, runs the model, waits for the
next poll. ONNX Runtime's CPU threads spin-wait after each run by default, which costs CPU
that the broker and the other daemons on the same cores need. This script feeds the scorer's
model (the released int8 variant, ``SentimentModel``) the same real texts in a stream-like
pattern, batches of ``b`` texts with a pause of ``g`` ms between runs, once with spinning on
(ONNX Runtime's default) and once off (``model.thread_spinning``, sentimon's default), each in
a fresh process, repeats interleaved. It prints CPU ms per message (every thread of the
process) and the latency of one run.

examples:
  python -m benchmarks.spin_bench --json-out benchmarks/results/spin.json
  python -m benchmarks.spin_bench --n 200 --repeats 1 --patterns 4:40   # smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    data_dir,
    load_texts,
    machine_info,
    median,
    percentiles,
    print_machine,
    script_parser,
    table,
    write_json,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser("benchmarks.spin_bench", __doc__ or "")
    p.add_argument("--n", type=int, default=1200, help="real texts streamed per measurement")
    p.add_argument("--patterns", default="4:40,16:50,64:0",
                   help="comma-separated BATCH:PAUSE_MS stream patterns (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="measurements per configuration, interleaved")
    p.add_argument("--model-dir", type=Path, default=None, help="model directory (default the packaged release)")
    p.add_argument("--data-dir", type=Path, default=None, help="data root (default ../shared/data)")
    p.add_argument("--json-out", type=Path, default=None, help="also write all figures as JSON here")
    return p.parse_args(argv)


def _stream(model_dir: Path | None, spinning: bool, texts: list[str], batch: int, pause_s: float
            ) -> dict[str, Any]:
    """In a fresh process: stream ``texts`` in runs of ``batch`` with ``pause_s`` between them."""
    from sentimon.model.inference import SentimentModel

    model = SentimentModel.load(model_dir, device="cpu", thread_spinning=spinning)
    model.predict(texts[:batch], batch_size=batch)  # warm-up
    calls = []
    cpu0 = time.process_time()
    for i in range(0, len(texts), batch):
        started = time.perf_counter()
        model.predict(texts[i : i + batch], batch_size=batch)
        calls.append(time.perf_counter() - started)
        time.sleep(pause_s)
    cpu = time.process_time() - cpu0
    lat = percentiles(calls, (50, 95))
    return {"cpu_ms_per_msg": cpu * 1000 / len(texts), "call_p50_ms": lat["p50"] * 1000,
            "call_p95_ms": lat["p95"] * 1000}


def main(argv: list[str] | None = None) -> int:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    args = parse_args(argv)
    info = machine_info()
    print_machine(info)
    texts = [t.text for t in load_texts(data_dir(args.data_dir), args.n)]
    patterns = [(int(b), float(g)) for b, g in (p.split(":") for p in args.patterns.split(","))]
    results: dict[tuple[int, float, bool], list[dict[str, Any]]] = {}
    ctx = get_context("spawn")
    for r in range(args.repeats):
        for batch, pause_ms in patterns:
            for spinning in (True, False):
                with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                    res = pool.submit(_stream, args.model_dir, spinning, texts, batch, pause_ms / 1000).result()
                results.setdefault((batch, pause_ms, spinning), []).append(res)
                print(f"  repeat {r + 1}: batch {batch}, pause {pause_ms:g} ms, spinning "
                      f"{'on ' if spinning else 'off'}: {res['cpu_ms_per_msg']:.2f} CPU ms/msg", flush=True)
    rows: list[dict[str, Any]] = []
    for (batch, pause_ms, spinning), runs in results.items():
        rows.append({"batch": batch, "pause": pause_ms, "spin": "on" if spinning else "off",
                     **{k: median([x[k] for x in runs]) for k in runs[0]}})
    for row in rows:
        on = next(x for x in rows if (x["batch"], x["pause"], x["spin"]) == (row["batch"], row["pause"], "on"))
        row["cpu_vs_on"] = row["cpu_ms_per_msg"] / on["cpu_ms_per_msg"]
    print(f"\n{len(texts)} texts per measurement, median of {args.repeats}, int8 on CPU")
    print(table(rows, [("batch", "batch"), ("pause", "pause ms"), ("spin", "spinning"),
                       ("cpu_ms_per_msg", "CPU ms/msg"), ("cpu_vs_on", "x spinning on"),
                       ("call_p50_ms", "run p50 ms"), ("call_p95_ms", "run p95 ms")]))
    write_json(args.json_out, {"machine": info, "n": len(texts), "repeats": args.repeats, "rows": rows,
                               "raw": [{"batch": b, "pause_ms": g, "spinning": s, "runs": v}
                                       for (b, g, s), v in results.items()]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
