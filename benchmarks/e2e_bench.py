"""End-to-end throughput and latency of the scorer on a real Kafka broker, and alert latency.

Throughput mode (default): starts its own broker (the project's stack code, free ports, a
temporary SENTIMON_HOME, torn down at the end), then

  (a) full load: pre-loads ``--n`` real texts into the input topics and runs
      ``sentimon score --max-records N``; messages/second over the steady part (from the end
      of the first batch to the last record) and latency ts -> scored_at, where ts is the
      moment the record was produced: with a backlog, latency measures queueing;
  (b) steady load: the scorer runs while ``--paced-fraction`` (50 %) of rate (a) is produced,
      paced, for ``--paced-s`` seconds; latency ts -> scored_at is the real service latency;
  (c) scale-out: the backlog of (a) with 2 scorer processes in one consumer group;
  with ``--legacy``, (a) and (b) run a second time with the scorer configured as before
  2026-12-02 (``scorer.length_buckets=false``, ``scorer.cache_entries=0``), (b) at the same
  offered rate, for same-run ratios;
  and the model-level throughput of the same configuration (same variant, the scorer's
  micro-batches of ``scorer.max_batch`` texts, length-sorted within a batch), measured in
  the same run, for the ratio end-to-end / model-level. Scorer peak RSS (psutil, sampled, and
  the kernel's max RSS) and CPU seconds of scorer and broker are recorded.

Alert mode (``--alert``): the embedded stack with Prometheus and Alertmanager, the demo's
settings (deploy/demo/demo.yaml), the notify/monitor/scorer daemons and the demo's replay
with a negative burst; times from the first burst message to the notification, with the
stages: scoring, window (monitor spike gauge), scrape, rule ``for:``, Alertmanager.

examples:
  python -m benchmarks.e2e_bench --json-out runs/bench/e2e.json
  python -m benchmarks.e2e_bench --n 20000 --processes 1,2 --paced-s 30
  python -m benchmarks.e2e_bench --n 4000 --processes 1 --paced-s 20 --legacy   # ours vs before
  python -m benchmarks.e2e_bench --alert --json-out runs/bench/alert.json
  python -m benchmarks.e2e_bench --n 300 --paced-s 3 --processes 1 --model-repeats 1   # smoke
  python -m benchmarks.e2e_bench --device cuda                 # fp16 on the GPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Text,
    data_dir,
    load_texts,
    machine_info,
    median,
    percentiles,
    print_machine,
    script_parser,
    table,
    timed,
    write_json,
)
from sentimon.config import (
    KafkaSettings,
    ModelSettings,
    MonitorSettings,
    NotifySettings,
    ScorerSettings,
    Settings,
    StackSettings,
    TopicSettings,
    read_yaml,
    to_env,
)

TARGET_RATIO = 0.9
TARGET_RSS_MB = 600.0
TARGET_PACED_P99_S = 0.3
AT_MOST = ("peak_rss_mb", "paced_p99_s")
SAMPLE_S = 0.2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser("benchmarks.e2e_bench", __doc__ or "")
    p.add_argument("--n", type=int, default=20_000, help="pre-loaded backlog of real texts (default 20000)")
    p.add_argument("--processes", default="1,2", help="scorer process counts for the backlog (default 1,2)")
    p.add_argument("--paced-fraction", type=float, default=0.5, help="steady load as a share of rate (a)")
    p.add_argument("--paced-s", type=float, default=30.0, help="seconds of paced production in (b)")
    p.add_argument("--model-n", type=int, default=5000, help="texts for the model-level figure")
    p.add_argument("--model-repeats", type=int, default=3, help="repeats of the model-level figure")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    p.add_argument("--variant", choices=["auto", "fp32", "int8", "fp16"], default="auto")
    p.add_argument("--model-dir", type=Path, help="model directory (default the packaged release)")
    p.add_argument("--max-batch", type=int, help="scorer.max_batch (default from the configuration)")
    p.add_argument("--max-wait-ms", type=int, help="scorer.max_wait_ms (default from the configuration)")
    p.add_argument("--threads", type=int, help="model.threads (default from the configuration)")
    p.add_argument("--paced-rate", type=float,
                   help="only (b), at this many msg/s: no backlog runs, no model level (latency studies)")
    p.add_argument("--legacy", action="store_true",
                   help="also run (a) and (b) with fixed runs and no cache (the scorer before 2026-12-02)")
    p.add_argument("--alert", action="store_true", help="measure alert latency instead of throughput")
    p.add_argument("--burst-topic", default="Earnings", help="--alert: topic of the negative burst")
    p.add_argument("--burst-after", type=float, default=100.0, help="--alert: seconds of stream before it")
    p.add_argument("--duration", type=float, default=150.0, help="--alert: seconds of replay")
    p.add_argument("--alert-timeout", type=float, default=240.0, help="--alert: wait after the burst")
    p.add_argument("--data-dir", type=Path, help="data root (default ../shared/data)")
    p.add_argument("--keep-home", action="store_true", help="keep the temporary SENTIMON_HOME (logs)")
    p.add_argument("--json-out", type=Path, help="also write all figures as JSON here")
    args = p.parse_args(argv)
    args.processes = [int(x) for x in args.processes.split(",") if x.strip()]
    if args.n < 1 or not args.processes or min(args.processes) < 1:
        p.error("--n and --processes must be positive")
    return args


def free_ports(n: int) -> list[int]:
    from tests.conftest import free_ports as _free

    return _free(n)


def ms(rfc3339: str) -> float:
    """Epoch seconds of an RFC 3339 UTC timestamp."""
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- Kafka helpers ---------------------------------------------------------------------------------


def fresh_topics(settings: Settings, tag: str) -> TopicSettings:
    from sentimon.kafka.admin import ensure_pipeline_topics

    sfx = f"{tag}.{uuid.uuid4().hex[:6]}"
    t = TopicSettings(news=f"bench.news.{sfx}", comments=f"bench.comments.{sfx}",
                      scored=f"bench.scored.{sfx}", dlq=f"bench.dlq.{sfx}",
                      partitions=settings.topics.partitions)
    ensure_pipeline_topics(settings.kafka, t)
    wait_partitions(settings, [t.news, t.comments], t.partitions)
    return t


def wait_partitions(settings: Settings, names: list[str], count: int, *, timeout_s: float = 30) -> None:
    """Until the broker's metadata shows every partition with a leader.

    A consumer that joins while a new topic's metadata is still settling sees its partitions
    change and rebalances at once; that is not what the benchmark measures.
    """
    from sentimon.kafka import make_consumer

    consumer = make_consumer(settings.kafka, group_id=None, client_suffix="bench-meta")
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(len(consumer.partitions_for_topic(n) or ()) == count for n in names):
                return
            consumer.topics()  # forces a metadata refresh
            time.sleep(0.2)
        raise RuntimeError(f"topics {names} did not show {count} partitions within {timeout_s:.0f}s")
    finally:
        consumer.close()


def message(t: Text, i: int, tag: str, ts: float) -> tuple[bytes, bytes]:
    key = f"{tag}:{i}"
    doc = {"id": key, "ts": rfc3339(ts), "kind": t.kind, "source": t.source, "text": t.text,
           "tickers": list(t.tickers)}
    return key.encode(), json.dumps(doc, ensure_ascii=False).encode()


def produce(settings: Settings, topics: TopicSettings, texts: list[Text], tag: str,
            *, rate: float | None = None) -> float:
    """Send every text (news to the news topic, tweets to comments), ts = the moment of sending.

    ``rate`` paces the sends (messages/second); returns seconds until all were acknowledged.
    """
    from sentimon.kafka import make_producer

    producer = make_producer(settings.kafka, client_suffix="bench", linger_ms=10 if rate is None else 0)
    for topic in (topics.news, topics.comments):
        # The first send would block on the topic's metadata after its record was stamped,
        # which would count this producer's start against the scorer's latency.
        producer.partitions_for(topic)
    started = time.monotonic()
    futures = []
    for i, t in enumerate(texts):
        if rate:
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        key, value = message(t, i, tag, time.time())
        topic = topics.news if t.kind == "news" else topics.comments
        futures.append(producer.send(topic, key=key, value=value))
    producer.flush(timeout=120)
    for f in futures:
        f.get(timeout=60)
    producer.close()
    return time.monotonic() - started


def read_topic(settings: Settings, topic: str, *, timeout_s: float = 120) -> list[dict[str, Any]]:
    """Every record of ``topic`` as parsed JSON (read from the beginning to the end offsets)."""
    from kafka.structs import TopicPartition

    from sentimon.kafka import make_consumer

    consumer = make_consumer(settings.kafka, group_id=None, client_suffix="bench-read",
                             max_poll_records=10_000)
    try:
        parts = None
        deadline = time.monotonic() + timeout_s
        while not parts and time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                time.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(parts or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise RuntimeError(f"reading {topic} timed out after {timeout_s:.0f}s")
            for recs in consumer.poll(timeout_ms=1000).values():
                out += [json.loads(r.value) for r in recs]
        return out
    finally:
        consumer.close()


# -- scorer processes ------------------------------------------------------------------------------


@dataclass
class Sampler:
    """Samples RSS of the scorer processes and scrapes their /metrics until stopped."""

    pids: list[int]
    urls: list[str]
    peak_rss: dict[int, int] = field(default_factory=dict)
    metrics: dict[str, dict[Any, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        import psutil

        from sentimon.demo import scrape

        procs = {pid: psutil.Process(pid) for pid in self.pids}
        next_scrape = 0.0
        while not self._stop.wait(SAMPLE_S):
            for pid, proc in procs.items():
                try:
                    self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), proc.memory_info().rss)
                except psutil.Error:
                    continue
            if time.monotonic() >= next_scrape:
                next_scrape = time.monotonic() + 1.0
                for url in self.urls:
                    try:
                        self.metrics[url] = scrape(url + "/metrics")
                    except OSError:
                        continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def scorer_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMON_")}
    env.update(to_env(settings))
    return env


def start_scorers(settings: Settings, count: int, stop_args: list[str], log_dir: Path, tag: str
                  ) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    """``count`` ``sentimon score`` processes in one group, each with its own metrics port."""
    ports = free_ports(count)
    procs, urls = [], []
    threads = settings.model.threads
    if count > 1 and threads == 0:
        threads = max(1, (os.cpu_count() or 1) // count)  # no more threads than cores in all
    for k, port in enumerate(ports):
        s = settings.model_copy(update={
            "scorer": settings.scorer.model_copy(update={"metrics_port": port}),
            "model": settings.model.model_copy(update={"threads": threads}),
        })
        log = (log_dir / f"scorer-{tag}-{k}.log").open("wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "sentimon", "score", *stop_args],
                                      env=scorer_env(s), stdout=log, stderr=subprocess.STDOUT))
        urls.append(f"http://{s.scorer.metrics_host}:{port}")
    return procs, urls


def wait_ready(procs: list[subprocess.Popen[bytes]], urls: list[str], log_dir: Path,
               timeout_s: float = 180) -> float:
    """Wall time (epoch s) at which every scorer had a partition assignment (/readyz)."""
    from sentimon.stack.observability import http_ok

    deadline = time.monotonic() + timeout_s
    pending = set(range(len(urls)))
    while pending:
        for k in list(pending):
            if procs[k].poll() is not None:
                raise RuntimeError(f"scorer {k} exited with {procs[k].returncode}; see {log_dir}")
            if http_ok(urls[k] + "/readyz", timeout_s=0.5):
                pending.discard(k)
        if time.monotonic() > deadline:
            raise RuntimeError(f"scorers not ready after {timeout_s:.0f}s; see {log_dir}")
        if pending:
            time.sleep(0.05)
    return time.time()


def cpu_seconds(pid: int | None) -> float:
    import psutil

    if pid is None:
        return float("nan")
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return float("nan")
    return float(t.user + t.system)


def metric_mean(samples: dict[Any, float], name: str) -> float | None:
    total = sum(v for (n, _), v in samples.items() if n == f"{name}_sum")
    count = sum(v for (n, _), v in samples.items() if n == f"{name}_count")
    return total / count if count else None


@dataclass
class Run:
    """What one scorer run produced: records, timings, resources."""

    label: str
    processes: int
    sent: int
    records: list[dict[str, Any]]
    dead_letters: int
    t_ready: float
    t_started: float
    wall_s: float
    peak_rss_mb: float
    maxrss_mb: float
    scorer_cpu_s: float
    broker_cpu_s: float
    mean_batch: float | None
    mean_inference_ms: float | None
    cache_hits: float
    exit_codes: list[int]


LEGACY = {"length_buckets": False, "cache_entries": 0}
"""Scorer settings that reproduce its model path before 2026-12-02 (tokenised once all the same)."""


def scorer_run(settings: Settings, texts: list[Text], *, label: str, processes: int,
               broker_pid: int | None, rate: float | None = None,
               scorer: dict[str, Any] | None = None) -> Run:
    """Pre-load (``rate`` None) or pace ``texts`` into fresh topics; score them; read the output.

    ``scorer`` overrides scorer settings for this run (``LEGACY``).
    """
    topics = fresh_topics(settings, label)
    s = settings.model_copy(update={
        "topics": topics,
        "scorer": settings.scorer.model_copy(update={"group_id": f"bench-{topics.scored}",
                                                     **(scorer or {})}),
    })
    log_dir = settings.home / "logs"
    n = len(texts)
    if rate is None:
        secs = produce(s, topics, texts, label)
        print(f"  pre-loaded {n} messages in {secs:.1f}s", flush=True)
    stop_args = ["--max-records", str(n)] if processes == 1 else ["--once"]
    if rate is not None:
        stop_args = ["--max-records", str(n)]
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    broker0 = cpu_seconds(broker_pid)
    t_started = time.time()
    procs, urls = start_scorers(s, processes, stop_args, log_dir, label)
    sampler = Sampler([p.pid for p in procs], urls).start()
    try:
        t_ready = wait_ready(procs, urls, log_dir)
        if rate is not None:
            secs = produce(s, topics, texts, label, rate=rate)
            print(f"  produced {n} messages paced at {rate:.0f}/s in {secs:.1f}s", flush=True)
        codes = [p.wait(timeout=900) for p in procs]
    finally:
        sampler.stop()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    wall = time.time() - t_started
    broker1 = cpu_seconds(broker_pid)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    records = read_topic(s, topics.scored)
    dead = len(read_topic(s, topics.dlq))
    merged: dict[Any, float] = {}
    for m in sampler.metrics.values():
        for k, v in m.items():
            merged[k] = merged.get(k, 0.0) + v
    return Run(
        label=label, processes=processes, sent=n, records=records, dead_letters=dead,
        t_ready=t_ready, t_started=t_started, wall_s=wall,
        peak_rss_mb=max(sampler.peak_rss.values(), default=0) / 2**20,
        maxrss_mb=children1.ru_maxrss / 1024,  # KiB on Linux; the largest child so far
        scorer_cpu_s=(children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime),
        broker_cpu_s=broker1 - broker0,
        mean_batch=metric_mean(merged, "sentimon_scorer_batch_size"),
        mean_inference_ms=(lambda v: v * 1000 if v is not None else None)(
            metric_mean(merged, "sentimon_scorer_inference_seconds")),
        cache_hits=sum(v for (name, labels), v in merged.items()
                       if name == "sentimon_scorer_cache_requests_total" and ("result", "hit") in labels),
        exit_codes=codes,
    )


def _windows(records: list[dict[str, Any]], width_s: float = 5.0) -> list[float]:
    if not records:
        return []
    ts = [ms(r["ts"]) for r in records]
    lat = [ms(r["scored_at"]) - t for r, t in zip(records, ts, strict=True)]
    start = min(ts)
    by: dict[int, list[float]] = {}
    for t, x in zip(ts, lat, strict=True):
        by.setdefault(int((t - start) // width_s), []).append(x)
    return [round(percentiles(by[k])["p99"], 3) for k in sorted(by)]


def summarize(run: Run) -> dict[str, Any]:
    """Throughput over the steady part and latency percentiles of one run."""
    scored = sorted(ms(r["scored_at"]) for r in run.records)
    unique = len({r["id"] for r in run.records})
    lat = [ms(r["scored_at"]) - ms(r["ts"]) for r in run.records]
    # Steady part: from the first batch that completed after every process was ready to the
    # last record; model loading and group joining are outside it (they are in wall_s).
    t0 = next((t for t in scored if t >= run.t_ready), scored[0] if scored else run.t_ready)
    after = sum(1 for t in scored if t > t0)
    span = (scored[-1] - t0) if scored else 0.0
    rate = after / span if span > 0 else float("nan")
    if span <= 0 and scored and scored[-1] > run.t_ready:
        # Everything fit in one batch (tiny runs): count it from the moment of readiness.
        rate = len(scored) / (scored[-1] - run.t_ready)
    out = {
        "label": run.label, "processes": run.processes, "sent": run.sent, "scored": len(run.records),
        "unique_ids": unique, "dead_letters": run.dead_letters,
        "msg_per_s": rate,
        "wall_s": run.wall_s,
        "msg_per_s_wall": len(run.records) / run.wall_s if run.wall_s else float("nan"),
        "latency_s": percentiles(lat),
        # Where the tail is: each 5 s of produce time, its p99 (a stall shows as one window).
        "latency_p99_by_5s": _windows(run.records),
        "latency_over_300ms": sum(x > 0.3 for x in lat) / len(lat) if lat else float("nan"),
        # Records produced from 3 s after the scorer was ready: without its start-up transient
        # (measured: the first 2-3 s of a paced run queue up to 0.5 s; reported beside, never
        # instead of, the figures over every record).
        "latency_after_3s": percentiles([ms(r["scored_at"]) - ms(r["ts"]) for r in run.records
                                         if ms(r["ts"]) >= run.t_ready + 3]),
        "peak_rss_mb": run.peak_rss_mb, "maxrss_mb": run.maxrss_mb,
        "scorer_cpu_s": run.scorer_cpu_s, "broker_cpu_s": run.broker_cpu_s,
        "steady_s": span, "mean_batch": run.mean_batch, "mean_inference_ms": run.mean_inference_ms,
        "cache_hits": run.cache_hits,
        "exit_codes": run.exit_codes,
    }
    if run.records:
        # Queueing after the scorer was ready (a backlog waits for the scorer to start, too).
        out["latency_since_ready_s"] = percentiles(
            [ms(r["scored_at"]) - max(ms(r["ts"]), run.t_ready) for r in run.records])
    return out


def _model_level_child(model_kw: dict[str, Any], size: int, model_batch: int, plan: str, texts: list[str],
                       repeats: int) -> dict[str, Any]:
    from sentimon.ingest.batching import plan_runs
    from sentimon.ingest.scorer import RUN_OVERHEAD_TOKENS, model_run_size
    from sentimon.model.inference import SentimentModel, fixed_runs
    from sentimon.model.text import normalize

    model = SentimentModel.load(**model_kw)
    chunks = [texts[i : i + size] for i in range(0, len(texts), size)]

    def score(c: list[str]) -> None:  # what the scorer does with one micro-batch, no cache
        ids = model.encode([normalize(t) for t in c], normalized=True)
        lengths = [len(x) for x in ids]
        cap = model_run_size(len(c), configured=model_batch, provider=model.provider)
        if plan == "one_run":
            runs = fixed_runs(lengths, len(c), True)
        elif plan == "fixed" or model.provider == "CUDAExecutionProvider":
            runs = fixed_runs(lengths, cap, True)
        else:
            runs = plan_runs(lengths, max_run=cap, run_overhead=RUN_OVERHEAD_TOKENS)
        model.predict_ids(ids, runs)

    score(chunks[0])  # warm-up

    def go() -> None:
        for c in chunks:
            score(c)

    cpu0 = time.process_time()  # every thread of this process, ONNX Runtime's included
    secs = timed(go, repeats=repeats)
    cpu_ms = (time.process_time() - cpu0) * 1000 / (repeats * len(texts))
    tok = timed(lambda: model.token_counts(texts), repeats=repeats)
    return {"seq_per_s": len(texts) / median(secs), "seconds": secs, "n": len(texts), "cpu_ms_per_seq": cpu_ms,
            "batch": size, "inner_batch": model_run_size(size, configured=model_batch, provider=model.provider),
            "plan": plan, "variant": model.variant, "provider": model.provider,
            "model": f"{model.name}@{model.version}", "tokenizer_s": median(tok),
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def model_level(settings: Settings, texts: list[str], *, repeats: int, plan: str = "") -> dict[str, Any]:
    """Throughput of the scorer's model path without Kafka or cache: its micro-batches.

    Runs in a fresh process, so that its peak RSS compares with the scorer's. ``plan`` is
    how a micro-batch becomes model runs: ``buckets`` (``plan_runs``, the scorer's default),
    ``fixed`` (length-sorted runs of ``scorer.model_batch``, ``length_buckets=false``) or
    ``one_run`` (one run padded to its longest text, the scorer before 2026-11-25); empty:
    as the settings say.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    m = settings.model
    plan = plan or ("buckets" if settings.scorer.length_buckets else "fixed")
    model_kw = {"model_dir": m.dir, "device": m.device, "variant": m.variant, "max_length": m.max_length,
                "threads": m.threads, "thread_spinning": m.thread_spinning}
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_model_level_child, model_kw, settings.scorer.max_batch,
                           settings.scorer.model_batch, plan, texts, repeats).result()


# -- throughput mode -------------------------------------------------------------------------------


def base_settings(home: Path, args: argparse.Namespace, components: list[str],
                  extra: dict[str, Any] | None = None) -> Settings:
    kafka, controller, prom, am, scorer, monitor, notify = free_ports(7)
    extra = extra or {}
    scorer_kw: dict[str, Any] = {"metrics_port": scorer}
    if args.max_batch:
        scorer_kw["max_batch"] = args.max_batch
    if args.max_wait_ms is not None:
        scorer_kw["max_wait_ms"] = args.max_wait_ms
    model_kw: dict[str, Any] = {"device": args.device, "variant": args.variant}
    if args.threads is not None:
        model_kw["threads"] = args.threads
    if args.model_dir:
        model_kw["dir"] = args.model_dir
    return Settings(
        home=home,
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{kafka}"),
        stack=StackSettings(**{**extra.get("stack", {}), "kafka_port": kafka,
                               "kafka_controller_port": controller, "prometheus_port": prom,
                               "alertmanager_port": am, "components": components}),
        model=ModelSettings(**model_kw),
        scorer=ScorerSettings(**scorer_kw),
        monitor=MonitorSettings(**{**extra.get("monitor", {}), "metrics_port": monitor}),
        notify=NotifySettings(port=notify),
        alerts=extra.get("alerts", {}),
    )


def throughput(args: argparse.Namespace, settings: Settings, info: dict[str, Any]) -> dict[str, Any]:
    from sentimon.stack.manager import Stack

    texts = load_texts(data_dir(args.data_dir), args.n)
    print(f"{len(texts)} real texts ({sum(t.kind == 'news' for t in texts)} headlines -> news topic, "
          f"{sum(t.kind == 'comment' for t in texts)} StockNet tweets -> comments topic)", flush=True)
    stack = Stack(settings)
    print("starting the Kafka broker ...", flush=True)
    stack.up(["kafka"], timeout_s=180)
    rec = stack.table.get("kafka")
    broker_pid = rec.pid if rec is not None else None
    try:
        if args.paced_rate:
            return paced_only(args, info, settings, texts, broker_pid)
        print(f"model level, scorer configuration (batches of {settings.scorer.max_batch}) ...", flush=True)
        sample = [t.text for t in texts[: args.model_n]]
        model = model_level(settings, sample, repeats=args.model_repeats)
        print(f"  {model['seq_per_s']:.1f} seq/s ({model['variant']}, {model['provider']}, {model['plan']} runs "
              f"of at most {model['inner_batch']}), peak RSS {model['maxrss_mb']:.0f} MB", flush=True)
        alt = model_level(settings, sample, repeats=args.model_repeats, plan="fixed")
        print(f"  before 2026-12-02, length-sorted runs of exactly {alt['inner_batch']}: "
              f"{alt['seq_per_s']:.1f} seq/s, peak RSS {alt['maxrss_mb']:.0f} MB", flush=True)
        model["alternative"] = alt
        runs = []
        variants: list[tuple[str, dict[str, Any] | None]] = [("", None)]
        if args.legacy:
            variants.append(("-legacy", LEGACY))
        for count in args.processes:
            for suffix, update in variants if count == 1 else variants[:1]:
                label = f"backlog-{count}p{suffix}"
                print(f"(a/c) backlog of {len(texts)}, {count} scorer process(es) {suffix} ...", flush=True)
                runs.append(summarize(scorer_run(settings, texts, label=label, processes=count,
                                                 broker_pid=broker_pid, scorer=update)))
                print(f"  {runs[-1]['msg_per_s']:.1f} msg/s", flush=True)
        full = runs[0]
        rate = full["msg_per_s"] * args.paced_fraction
        n_paced = max(1, int(rate * args.paced_s))
        for suffix, update in variants:
            print(f"(b) steady load at {args.paced_fraction:.0%} of {full['msg_per_s']:.0f} msg/s for "
                  f"{args.paced_s:.0f}s {suffix} ...", flush=True)
            paced = summarize(scorer_run(settings, texts[:n_paced], label=f"paced-1p{suffix}", processes=1,
                                         broker_pid=broker_pid, rate=rate, scorer=update))
            paced["offered_per_s"] = rate
            runs.append(paced)
    finally:
        stack.down()
    return report_throughput(args, info, model, runs, settings)


def paced_only(args: argparse.Namespace, info: dict[str, Any], settings: Settings, texts: list[Text],
               broker_pid: int | None) -> dict[str, Any]:
    """``--paced-rate``: (b) alone (and its legacy twin with ``--legacy``), for latency studies."""
    n = max(1, int(args.paced_rate * args.paced_s))
    variants: list[tuple[str, dict[str, Any] | None]] = [("", None)]
    if args.legacy:
        variants.append(("-legacy", LEGACY))
    runs = []
    for suffix, update in variants:
        print(f"(b) steady load at {args.paced_rate:.0f} msg/s for {args.paced_s:.0f}s {suffix} ...", flush=True)
        run = scorer_run(settings, texts[:n], label=f"paced-1p{suffix}", processes=1,
                         broker_pid=broker_pid, rate=args.paced_rate, scorer=update)
        r = summarize(run)
        r["offered_per_s"] = args.paced_rate
        # Every record: seconds from the scorer's readiness to its production, and its latency.
        r["latency_series"] = sorted((round(ms(x["ts"]) - run.t_ready, 3), round(ms(x["scored_at"]) - ms(x["ts"]), 3))
                                     for x in run.records)
        runs.append(r)
        lat = r["latency_s"]
        print(f"  {r['msg_per_s']:.1f} msg/s, p50 {lat['p50']:.3f}s p95 {lat['p95']:.3f}s p99 {lat['p99']:.3f}s, "
              f"{r['latency_over_300ms']:.1%} over 0.3 s, mean batch {r['mean_batch']:.1f}, "
              f"inference {r['mean_inference_ms']:.0f} ms, CPU {r['scorer_cpu_s'] * 1000 / r['sent']:.2f} ms/msg; "
              f"p99 per 5 s: {r['latency_p99_by_5s']}", flush=True)
    return {"benchmark": "e2e-paced", "machine": info, "runs": runs,
            "scorer": settings.scorer.model_dump(), "model_settings": settings.model.model_dump(mode="json")}


def report_throughput(args: argparse.Namespace, info: dict[str, Any], model: dict[str, Any],
                      runs: list[dict[str, Any]], settings: Settings) -> dict[str, Any]:
    full = runs[0]
    rows = []
    for r in runs:
        lat = r["latency_s"]
        rows.append({
            "run": r["label"], "proc": r["processes"], "scored": r["scored"], "dlq": r["dead_letters"],
            "msg_s": r["msg_per_s"],
            # Only 1-process backlogs run a model configuration that model level measures.
            "x_model": (r["msg_per_s"] / model["seq_per_s"] if r is runs[0] else
                        r["msg_per_s"] / model["alternative"]["seq_per_s"]
                        if r["label"] == "backlog-1p-legacy" else None),
            "p50": lat["p50"], "p95": lat["p95"], "p99": lat["p99"],
            "rss": r["peak_rss_mb"], "cpu_scorer": r["scorer_cpu_s"],
            "cpu_ms": r["scorer_cpu_s"] * 1000 / r["sent"] if r["sent"] else None,
            "cpu_broker": r["broker_cpu_s"], "batch": r["mean_batch"],
            "hits": r["cache_hits"] / r["sent"] if r["sent"] else None,
        })
    print()
    print(f"model level (same configuration, no Kafka): {model['seq_per_s']:.1f} seq/s "
          f"({model['variant']} on {model['provider']}, micro-batches of {model['batch']} in {model['plan']} "
          f"runs of at most {model['inner_batch']}, no cache), peak RSS {model['maxrss_mb']:.0f} MB")
    alt = model.get("alternative")
    if alt:
        print(f"  before 2026-12-02 ({alt['plan']} runs of {alt['inner_batch']}, the legacy rows' model level): "
              f"{alt['seq_per_s']:.1f} seq/s ({alt['seq_per_s'] / model['seq_per_s']:.2f}x), "
              f"peak RSS {alt['maxrss_mb']:.0f} MB")
    print(table(rows, [("run", "run"), ("proc", "procs"), ("scored", "scored"), ("dlq", "dlq"),
                       ("msg_s", "msg/s"), ("x_model", "/ model"), ("p50", "p50 s"), ("p95", "p95 s"),
                       ("p99", "p99 s"), ("rss", "peak RSS MB"), ("cpu_scorer", "scorer CPU s"),
                       ("cpu_ms", "CPU ms/msg"), ("cpu_broker", "broker CPU s"), ("batch", "mean batch"),
                       ("hits", "cache hits")]))
    by = {r["label"]: r for r in runs}
    for r in runs:
        if r["label"].startswith("paced"):
            a = r["latency_after_3s"]
            print(f"{r['label']}: records produced 3 s or more after the scorer was ready: p50 {a['p50']:.3f}s, "
                  f"p95 {a['p95']:.3f}s, p99 {a['p99']:.3f}s; p99 per 5 s of the run: {r['latency_p99_by_5s']}")
    for kind in ("backlog-1p", "paced-1p"):
        ours, old = by.get(kind), by.get(kind + "-legacy")
        if ours and old:
            print(f"{kind}: ours / legacy msg/s {ours['msg_per_s'] / old['msg_per_s']:.2f}x, CPU per message "
                  f"{ours['scorer_cpu_s'] / old['scorer_cpu_s']:.2f}x, p99 {ours['latency_s']['p99']:.3f}s vs "
                  f"{old['latency_s']['p99']:.3f}s")
    if "latency_since_ready_s" in full:
        q = full["latency_since_ready_s"]
        print(f"(a) backlog latency counted from when the scorer was ready: p50 {q['p50']:.2f}s, "
              f"p95 {q['p95']:.2f}s, p99 {q['p99']:.2f}s (queueing: the backlog drains in "
              f"{full['steady_s']:.1f}s)")
    ratio = full["msg_per_s"] / model["seq_per_s"]
    rss = max(r["peak_rss_mb"] for r in runs if r["processes"] == 1)
    targets = {
        "e2e_over_model": {"value": ratio, "target": TARGET_RATIO, "met": ratio >= TARGET_RATIO},
        "peak_rss_mb": {"value": rss, "target": TARGET_RSS_MB, "met": rss <= TARGET_RSS_MB},
    }
    paced = by.get("paced-1p")
    if paced:
        p99 = paced["latency_s"]["p99"]
        targets["paced_p99_s"] = {"value": p99, "target": TARGET_PACED_P99_S, "met": p99 <= TARGET_PACED_P99_S}
    if "backlog-1p-legacy" in by:
        x = full["msg_per_s"] / by["backlog-1p-legacy"]["msg_per_s"]
        targets["backlog_over_legacy"] = {"value": x, "target": 1.0, "met": x >= 1.0}
    print(f"CPU per message: scorer process {full['scorer_cpu_s'] * 1000 / full['sent']:.2f} ms (start-up "
          f"included), model level {model['cpu_ms_per_seq']:.2f} ms, broker "
          f"{full['broker_cpu_s'] * 1000 / full['sent']:.2f} ms")
    cpu_total = full["scorer_cpu_s"] + full["broker_cpu_s"]
    print(f"CPU in (a): scorer {full['scorer_cpu_s']:.1f}s + broker {full['broker_cpu_s']:.1f}s over "
          f"{full['wall_s']:.1f}s wall on {os.cpu_count()} cores (broker share "
          f"{full['broker_cpu_s'] / cpu_total:.0%} of the two)" if cpu_total else "")
    print(f"tokenizer only, {model['n']} texts: {model['tokenizer_s']:.2f}s "
          f"({model['tokenizer_s'] * model['seq_per_s'] / model['n']:.0%} of model-level time; the scorer "
          "tokenizes each record once, on arrival)")
    if any(r["processes"] > 1 for r in runs):
        one = runs[0]["msg_per_s"]
        for r in runs[1:]:
            if r["label"].startswith("backlog") and r["processes"] > 1:
                print(f"scale-out: {r['processes']} processes {r['msg_per_s']:.1f} msg/s = "
                      f"{r['msg_per_s'] / one:.2f}x one process")
    for name, t in targets.items():
        print(f"target {name}: {t['value']:.3g} (target {'<=' if name in AT_MOST else '>='} "
              f"{t['target']:g}) {'MET' if t['met'] else 'NOT MET'}")
    return {"benchmark": "e2e", "machine": info, "model_level": model, "runs": runs, "targets": targets,
            "scorer": settings.scorer.model_dump(), "model_settings": settings.model.model_dump(mode="json")}


# -- alert mode ------------------------------------------------------------------------------------


@dataclass
class Watch:
    """First moments (epoch s) at which each stage showed the spike; polled in a thread."""

    settings: Settings
    topic: str
    seen: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def poll_once(self) -> None:
        import urllib.parse
        import urllib.request

        from sentimon.demo import scrape
        from sentimon.stack.observability import prometheus_url

        now = time.time()
        s = self.settings
        try:
            m = scrape(f"http://{s.monitor.metrics_host}:{s.monitor.metrics_port}/metrics")
            v = m.get(("sentimon_topic_spike", (("topic", self.topic),)), 0.0)
            self.seen.setdefault("monitor", []).append((now, v >= 1))
        except OSError:
            pass
        base = prometheus_url(s)
        try:
            q = urllib.parse.quote(f'sentimon_topic_spike{{topic="{self.topic}"}}')
            with urllib.request.urlopen(f"{base}/api/v1/query?query={q}", timeout=2) as resp:
                res = json.load(resp)["data"]["result"]
            self.seen.setdefault("prometheus", []).append(
                (now, any(float(r["value"][1]) >= 1 for r in res)))
            with urllib.request.urlopen(f"{base}/api/v1/alerts", timeout=2) as resp:
                alerts = json.load(resp)["data"]["alerts"]
            mine = [a for a in alerts if a["labels"].get("alertname") == "NegativeSentimentSpike"
                    and a["labels"].get("topic") == self.topic]
            self.seen.setdefault("pending", []).append((now, any(a["state"] in ("pending", "firing") for a in mine)))
            self.seen.setdefault("firing", []).append((now, any(a["state"] == "firing" for a in mine)))
        except (OSError, KeyError, ValueError):
            pass

    def run(self) -> None:
        while not self._stop.wait(0.5):
            self.poll_once()

    def first_true_after(self, stage: str, t: float) -> float | None:
        return next((ts for ts, on in self.seen.get(stage, []) if ts >= t and on), None)


def alert(args: argparse.Namespace, home: Path, info: dict[str, Any]) -> dict[str, Any]:
    from sentimon.demo import DEMO_DIR, Pipeline, replay_streams, wait_for_alert
    from sentimon.stack.manager import Stack

    demo = read_yaml(DEMO_DIR / "demo.yaml")
    settings = base_settings(home, args, ["kafka", "prometheus", "alertmanager"], extra=demo)
    print(f"demo settings: {json.dumps(demo)}")
    stack = Stack(settings)
    pipeline = Pipeline(settings)
    watch = Watch(settings, args.burst_topic)
    poller = threading.Thread(target=watch.run, daemon=True)
    try:
        print("starting Kafka, Prometheus, Alertmanager and the notify/monitor/scorer daemons ...", flush=True)
        stack.up(timeout_s=180)
        pipeline.start_all()
        poller.start()
        ns = argparse.Namespace(comments=DEMO_DIR / "comments.csv", news=DEMO_DIR / "news.csv",
                                duration=args.duration, news_rate=8.0, burst_topic=args.burst_topic,
                                burst_after=args.burst_after, burst_count=200)
        t0 = datetime.now(UTC)
        print(f"replaying {args.duration:.0f}s of the demo streams, burst about {args.burst_topic!r} at "
              f"{args.burst_after:.0f}s ...", flush=True)
        burst_at = replay_streams(settings, ns)
        note = wait_for_alert(settings.notifications_path(), alertname="NegativeSentimentSpike",
                              labels={"topic": args.burst_topic}, timeout_s=args.alert_timeout, after=t0)
        watch._stop.set()
        poller.join()
        scored = read_topic(settings, settings.topics.scored)
    finally:
        watch._stop.set()
        pipeline.stop_all()
        stack.down()
    b = burst_at.timestamp()
    burst_scored = sorted(ms(r["scored_at"]) for r in scored if str(r["id"]).startswith("burst:"))
    t_note = ms(note["received_at"]) if note else None
    marks = {
        "first burst message": b,
        "first burst record scored": burst_scored[0] if burst_scored else None,
        "monitor spike gauge = 1": watch.first_true_after("monitor", b),
        "Prometheus sees spike = 1": watch.first_true_after("prometheus", b),
        "alert pending": watch.first_true_after("pending", b),
        "alert firing": watch.first_true_after("firing", b),
        "notification received": t_note,
    }
    rows, prev = [], b
    for name, t in marks.items():
        rows.append({"stage": name, "at_s": None if t is None else t - b,
                     "step_s": None if t is None else t - prev})
        prev = t if t is not None else prev
    print()
    print(table(rows, [("stage", "stage (from the first burst message)"), ("at_s", "at s"),
                       ("step_s", "step s")]))
    a = settings.alerts
    print(f"configured: short window {settings.monitor.short_window_s}s, scrape/eval "
          f"{settings.stack.scrape_interval}, spike for: {a.spike_for}, group_wait {a.group_wait}; "
          "steps are observed with 0.5 s polling")
    if note is None:
        print(f"NO notification within {args.alert_timeout:.0f}s; logs under {home}/logs (--keep-home)")
    return {"benchmark": "alert", "machine": info, "stages": marks, "rows": rows,
            "settings": {"monitor": settings.monitor.model_dump(mode="json"),
                         "alerts": settings.alerts.model_dump(mode="json"),
                         "scrape_interval": settings.stack.scrape_interval},
            "notification": note, "alert_latency_s": (t_note - b) if t_note else None}


# -- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    print_machine(info)
    home = Path(tempfile.mkdtemp(prefix="sentimon-bench-"))
    try:
        if args.alert:
            doc = alert(args, home, info)
        else:
            settings = base_settings(home, args, ["kafka"])
            doc = throughput(args, settings, info)
    finally:
        if args.keep_home:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    write_json(args.json_out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
