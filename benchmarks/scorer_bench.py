"""The scorer's model path without Kafka: run plans, tokenizing once, the prediction cache.

Two parts, each a same-run comparison on real texts:

1. run plans: micro-batches of ``--sizes`` texts (arrival order) scored three ways, repeats
   interleaved: ``old`` as the scorer did before (``token_counts`` to shape the batch, then
   ``predict`` on the texts: tokenised again, length-sorted runs of ``model_run_size``, so a
   micro-batch of up to 64 is one run padded to its longest text); ``fixed`` tokenising once
   with the same fixed runs; ``buckets`` tokenising once with runs from ``plan_runs``
   (``scorer.length_buckets``, the default). Wall and CPU time per text.
2. cache (``--cache``): the English StockNet tweets in time order, as ``sentimon replay``
   sends them: share of records whose normalised text was seen before, for several cache
   bounds; memory of a full cache (the scorer's estimate against ``tracemalloc``); and the
   model time of a time-ordered slice scored with and without the cache.
3. outside the model: microseconds per message of the scorer's other steps on the same
   texts (input JSON decode and checks, normalisation, the scored document, its JSON), the
   upper limit of what a faster JSON library could save.

examples:
  python -m benchmarks.scorer_bench --json-out benchmarks/results/scorer.json
  python -m benchmarks.scorer_bench --sizes 60 --overheads 8,16,32,64 --no-cache   # the constant
  python -m benchmarks.scorer_bench --n 128 --sizes 16 --repeats 1 --cache-n 300   # smoke run
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections import OrderedDict
from pathlib import Path
from typing import Any

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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser("benchmarks.scorer_bench", __doc__ or "")
    p.add_argument("--n", type=int, default=768, help="texts for the run-plan part (default 768)")
    p.add_argument("--sizes", default="8,60,256", help="micro-batch sizes (default 8,60,256)")
    p.add_argument("--overheads", default="", help="run_overhead values to try besides the scorer's")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; median reported")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = default, as the scorer)")
    p.add_argument("--no-cache", dest="cache", action="store_false", help="skip the cache part")
    p.add_argument("--cache-n", type=int, default=2000, help="tweets of the timed cache slice")
    p.add_argument("--cache-sizes", default="1000,10000,50000,0", help="cache bounds to count (0 = none)")
    p.add_argument("--data-dir", type=Path, help="data root (default ../shared/data)")
    p.add_argument("--json-out", type=Path, help="also write all figures as JSON here")
    args = p.parse_args(argv)
    args.sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    args.overheads = [int(x) for x in args.overheads.split(",") if x.strip()]
    args.cache_sizes = [int(x) for x in args.cache_sizes.split(",") if x.strip()]
    return args


def _timed(fn: Any) -> tuple[float, float]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall0, time.process_time() - cpu0


def run_plans(model: Any, texts: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    from sentimon.ingest.batching import plan_runs
    from sentimon.ingest.scorer import RUN_OVERHEAD_TOKENS, model_run_size
    from sentimon.model.inference import fixed_runs
    from sentimon.model.text import normalize

    provider = model.provider

    def old(batch: list[str]) -> None:
        model.token_counts(batch)  # the scorer's batching count, then predict tokenises again
        model.predict(batch, batch_size=model_run_size(len(batch), configured=0, provider=provider))

    def new(batch: list[str], overhead: int | None) -> None:
        ids = model.encode([normalize(t) for t in batch], normalized=True)
        lengths = [len(x) for x in ids]
        cap = model_run_size(len(batch), configured=0, provider=provider)
        runs = (fixed_runs(lengths, cap, True) if overhead is None
                else plan_runs(lengths, max_run=cap, run_overhead=overhead))
        model.predict_ids(ids, runs)

    jobs: list[tuple[dict[str, Any], Any]] = []
    for size in args.sizes:
        chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
        variants: list[tuple[str, Any]] = [
            ("old", lambda c=chunks: _each(c, old)),
            ("fixed", lambda c=chunks: _each(c, new, None)),
            (f"buckets/{RUN_OVERHEAD_TOKENS}", lambda c=chunks: _each(c, new, RUN_OVERHEAD_TOKENS)),
        ]
        variants += [(f"buckets/{o}", lambda c=chunks, o=o: _each(c, new, o))
                     for o in args.overheads if o != RUN_OVERHEAD_TOKENS]
        for name, fn in variants:
            jobs.append(({"size": size, "path": name, "wall": [], "cpu": []}, fn))
    new(texts[:64], RUN_OVERHEAD_TOKENS)  # warm-up
    for r in range(args.repeats):
        for row, fn in jobs:
            wall, cpu = _timed(fn)
            row["wall"].append(wall)
            row["cpu"].append(cpu)
        print(f"  repeat {r + 1}/{args.repeats} done", flush=True)
    rows = [row for row, _ in jobs]
    for row in rows:
        row["seq_per_s"] = len(texts) / median(row["wall"])
        row["cpu_ms_per_seq"] = median(row["cpu"]) * 1000 / len(texts)
        old_row = next(o for o in rows if o["size"] == row["size"] and o["path"] == "old")
        row["x_old"] = row["seq_per_s"] / (len(texts) / median(old_row["wall"]))
    return rows


def stocknet_keys(data: Path) -> list[str]:
    """Normalised English StockNet tweets in time order (a replay's order)."""
    import pandas as pd

    from sentimon.model.text import normalize

    df = pd.read_csv(data / "stocknet_tweets" / "stocknet_tweets.csv", dtype=str,
                     keep_default_na=False, usecols=["ts", "lang", "text"])
    df = df[(df["lang"] == "en") & (df["text"].str.strip() != "")].sort_values("ts", kind="stable")
    return [normalize(t) for t in df["text"]]


def hit_rates(keys: list[str], bounds: list[int]) -> list[dict[str, Any]]:
    out = []
    for bound in bounds:
        lru: OrderedDict[str, None] = OrderedDict()
        hits = 0
        for k in keys:
            if k in lru:
                lru.move_to_end(k)
                hits += 1
                continue
            lru[k] = None
            if bound and len(lru) > bound:
                lru.popitem(last=False)
        out.append({"bound": bound or "none", "records": len(keys), "hits": hits, "hit_rate": hits / len(keys)})
    return out


def cache_memory(keys: list[str], entries: int) -> dict[str, Any]:
    """The scorer's ``cache_bytes`` estimate against what tracemalloc sees, for a full cache."""
    from sentimon.ingest.scorer import PredictionCache
    from sentimon.model.inference import Prediction

    distinct = list(dict.fromkeys(keys))[:entries]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cache = PredictionCache(entries)
    for i, key in enumerate(distinct):
        k = key.encode().decode()  # a string of its own, as each record's key is in the scorer
        p = i / len(distinct)
        cache.put(k, Prediction("Earnings", 0.5 + p / 3, "positive",
                                {"negative": p / 3, "neutral": p / 3, "positive": 1 - 2 * p / 3}, 1 - p))
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {"entries": len(cache), "estimate_bytes": cache.nbytes, "traced_bytes": traced}


def cache_timing(model: Any, keys: list[str], n: int, repeats: int) -> dict[str, Any]:
    """A time-ordered slice through micro-batches of 256 with and without the cache."""
    from sentimon.ingest.batching import plan_runs
    from sentimon.ingest.scorer import RUN_OVERHEAD_TOKENS, model_run_size

    start = len(keys) // 2  # mid-file: ordinary traffic, not the file's first hours
    keys = keys[start : start + n]

    def score(batch_keys: list[str]) -> None:
        ids = model.encode(batch_keys, normalized=True)
        cap = model_run_size(len(ids), configured=0, provider=model.provider)
        model.predict_ids(ids, plan_runs([len(x) for x in ids], max_run=cap, run_overhead=RUN_OVERHEAD_TOKENS))

    def without() -> None:
        for i in range(0, len(keys), 256):
            score(keys[i : i + 256])

    def with_cache() -> None:
        seen: set[str] = set()
        for i in range(0, len(keys), 256):
            todo = list(dict.fromkeys(k for k in keys[i : i + 256] if k not in seen))
            seen.update(todo)
            if todo:
                score(todo)

    secs: dict[str, list[tuple[float, float]]] = {"without": [], "with": []}
    for _ in range(repeats):
        secs["without"].append(_timed(without))
        secs["with"].append(_timed(with_cache))
    hits = len(keys) - len(set(keys))
    w, c = (median([t[0] for t in secs[k]]) for k in ("without", "with"))
    wc, cc = (median([t[1] for t in secs[k]]) for k in ("without", "with"))
    # CPU time is less disturbed than wall time by other work on a shared machine.
    return {"n": len(keys), "from_record": start, "hits": hits, "hit_rate": hits / len(keys),
            "without_s": w, "with_s": c, "time_saved": 1 - c / w, "without_cpu_s": wc, "with_cpu_s": cc,
            "cpu_saved": 1 - cc / wc, "seconds_wall_cpu": secs}


def outside_model(texts: list[Any]) -> dict[str, float]:
    """Microseconds per message of the scorer's steps around the model (best of 3)."""
    import json

    from sentimon.ingest.message import InputMessage, RawRecord, decode
    from sentimon.ingest.output import encode, scored_value
    from sentimon.model.inference import Prediction
    from sentimon.model.text import normalize

    now = int(time.time() * 1000)
    values = [json.dumps({"id": f"b:{i}", "ts": "2024-01-02T03:04:05Z", "kind": t.kind, "source": t.source,
                          "text": t.text, "tickers": list(t.tickers)}).encode() for i, t in enumerate(texts)]
    raws = [RawRecord("sentimon.comments", 0, i, now, None, v) for i, v in enumerate(values)]
    msgs = [m for m in (decode(r, default_kind="comment", max_bytes=10**6) for r in raws)
            if isinstance(m, InputMessage)]
    pred = Prediction("Earnings", 0.8, "positive", {"negative": 0.1, "neutral": 0.1, "positive": 0.8}, 0.7)
    docs = [scored_value(m, pred, model="m@v", scored_at_ms=now) for m in msgs]
    steps = {
        "json.loads of the input": lambda: [json.loads(v) for v in values],
        "decode() (JSON and every check)": lambda: [decode(r, default_kind="comment", max_bytes=10**6)
                                                    for r in raws],
        "normalize() (the cache key)": lambda: [normalize(m.text) for m in msgs],
        "scored_value()": lambda: [scored_value(m, pred, model="m@v", scored_at_ms=now) for m in msgs],
        "encode() (output JSON)": lambda: [encode(d) for d in docs],
    }
    return {name: min(_timed(fn)[0] for _ in range(3)) * 1e6 / len(values) for name, fn in steps.items()}



def _each(chunks: list[list[str]], score: Any, *args: Any) -> None:
    """Score every chunk in turn (what one timed variant does)."""
    for chunk in chunks:
        score(chunk, *args)

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    print_machine(info)
    from sentimon.model.inference import SentimentModel

    data = data_dir(args.data_dir)
    model = SentimentModel.load(device="cpu", threads=args.threads)
    texts = [t.text for t in load_texts(data, args.n)]
    plans: list[dict[str, Any]] = []
    if args.sizes:  # --sizes "": the cache part only
        print(f"run plans: {len(texts)} benchmark texts in micro-batches of {args.sizes} ...", flush=True)
        plans = run_plans(model, texts, args)
        print(table(plans, [("size", "micro-batch"), ("path", "path"), ("seq_per_s", "seq/s"),
                            ("x_old", "x old"), ("cpu_ms_per_seq", "CPU ms/seq")]))
    doc: dict[str, Any] = {"benchmark": "scorer", "machine": info, "run_plans": plans}
    steps = outside_model(load_texts(data, 2000))
    print("\noutside the model, us per message: " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))
    doc["outside_model_us"] = steps
    if args.cache:
        keys = stocknet_keys(data)
        rates = hit_rates(keys, args.cache_sizes)
        print(f"\ncache: {len(keys)} English StockNet tweets in time order")
        print(table(rates, [("bound", "cache entries"), ("records", "records"), ("hits", "hits"),
                            ("hit_rate", "hit rate")]))
        mem = cache_memory(keys, 50_000)
        print(f"memory of {mem['entries']} entries: estimate (sentimon_scorer_cache_bytes) "
              f"{mem['estimate_bytes'] / 2**20:.1f} MiB, tracemalloc {mem['traced_bytes'] / 2**20:.1f} MiB")
        timing = cache_timing(model, keys, args.cache_n, args.repeats)
        print(f"{timing['n']} consecutive tweets from record {timing['from_record']}: {timing['hit_rate']:.1%} "
              f"repeats; model path {timing['without_s']:.2f}s without the cache, {timing['with_s']:.2f}s "
              f"with it: {timing['time_saved']:.1%} saved (CPU {timing['without_cpu_s']:.2f}s -> "
              f"{timing['with_cpu_s']:.2f}s, {timing['cpu_saved']:.1%})")
        doc.update({"cache_hit_rates": rates, "cache_memory": mem, "cache_timing": timing})
    write_json(args.json_out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
