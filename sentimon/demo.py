"""``sentimon demo``: the whole pipeline on real data, ending in a spike notification.

Stack up -> notify, monitor and scorer daemons in the background -> replay the committed
demo slice (tweets as comments, news tweets as news) compressed in time -> a negative
burst about one topic -> wait until Prometheus -> Alertmanager -> ``sentimon notify``
delivers ``NegativeSentimentSpike`` for that topic -> summary, report PNG, URLs.

The demo's windows and ``for:`` durations come from ``deploy/demo/demo.yaml``; the code
paths are the production ones. :class:`Pipeline` and :func:`wait_for_alert` are shared with
the end-to-end tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

from sentimon.config import Settings, load_settings, to_env

log = logging.getLogger(__name__)

DEMO_DIR = Path(str(files("sentimon.deploy").joinpath("demo")))
#: Seconds between progress lines when the output is not a terminal.
PROGRESS_EVERY_S = 15.0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on real data and end with a spike alert",
        description=__doc__,
        epilog="examples:\n  sentimon demo\n  sentimon demo --burst-topic 'Stock Movement' --stop\n"
        "  sentimon demo --comments ../shared/data/stocknet_tweets/stocknet_tweets.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--comments", type=Path, default=DEMO_DIR / "comments.csv", metavar="FILE",
                   help="comments stream, CSV with ts (default: the committed StockNet slice, "
                   "deploy/demo/comments.csv)")
    p.add_argument("--news", type=Path, default=DEMO_DIR / "news.csv", metavar="FILE",
                   help="news stream (default: the committed Twitter Financial News slice, "
                   "deploy/demo/news.csv)")
    p.add_argument("--duration", type=float, default=150.0, metavar="S",
                   help="seconds of replay; the comments' time span is compressed into it "
                   "(default 150)")
    p.add_argument("--news-rate", type=float, default=8.0, metavar="N",
                   help="news per second (default 8)")
    p.add_argument("--burst-topic", default="Stock Movement", metavar="TOPIC",
                   help="topic of the injected negative burst (default 'Stock Movement')")
    p.add_argument("--burst-after", type=float, default=100.0, metavar="S",
                   help="seconds into the replay at which the burst starts (default 100)")
    p.add_argument("--burst-count", type=int, default=200, metavar="N",
                   help="negative texts in the burst, from deploy/demo/negative.csv (default 200)")
    p.add_argument("--alert-timeout", type=float, default=240.0, metavar="S",
                   help="how long to wait for the notification after the replay (default 240)")
    p.add_argument("--stop", action="store_true",
                   help="stop daemons and stack at the end (default: leave them for a look)")
    p.set_defaults(func=run)


# -- background daemons -------------------------------------------------------------------------


class Pipeline:
    """The scorer, monitor and notify daemons as background processes of one ``SENTIMON_HOME``."""

    COMMANDS: ClassVar[dict[str, list[str]]] = {"notify": ["notify"], "monitor": ["monitor"], "scorer": ["score"]}

    def __init__(self, settings: Settings) -> None:
        from sentimon.stack.process import ProcessTable

        self.settings = settings
        self.table = ProcessTable(settings.home)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMON_")}
        self.env.update(to_env(settings))

    def health_url(self, name: str) -> str:
        s = self.settings
        host, port = {
            "scorer": (s.scorer.metrics_host, s.scorer.metrics_port),
            "monitor": (s.monitor.metrics_host, s.monitor.metrics_port),
            "notify": (s.notify.host, s.notify.port),
        }[name]
        return f"http://{host}:{port}"

    def start(self, name: str, *, extra_args: list[str] | None = None, timeout_s: float = 90) -> None:
        from sentimon.stack.kafka_broker import StackError
        from sentimon.stack.observability import http_ok
        from sentimon.stack.process import wait_until

        if self.table.running(name) is None:
            cmd = [sys.executable, "-m", "sentimon", *self.COMMANDS[name], *(extra_args or [])]
            log_path = self.settings.home / "logs" / f"{name}.log"
            self.table.start(name, cmd, log=log_path, url=self.health_url(name), env=self.env)
        ready = "/healthz" if name == "notify" else "/readyz"

        def up() -> bool:
            if self.table.running(name) is None:
                raise StackError(f"{name} exited during start-up; see {self.settings.home}/logs/{name}.log")
            return http_ok(self.health_url(name) + ready)

        if not wait_until(up, timeout_s=timeout_s, interval_s=0.5):
            raise StackError(f"{name} not ready after {timeout_s:.0f}s")

    def start_all(self) -> None:
        for name in ("notify", "monitor", "scorer"):
            self.start(name)

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash would (for restart tests)."""
        rec = self.table.get(name)
        if rec is not None and rec.alive():
            os.kill(rec.pid, 9)
            while rec.alive():
                time.sleep(0.05)
        self.table.path(name).unlink(missing_ok=True)

    def stop_all(self) -> None:
        for name in ("scorer", "monitor", "notify"):
            self.table.stop(name)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of a /metrics page: {(name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def metric_sum(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def drained(pipeline: Pipeline, *, timeout_s: float) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Scorer metrics once its lag is 0 and every consumed record is scored or dead-lettered."""
    deadline = time.monotonic() + timeout_s
    while True:
        samples = scrape(pipeline.health_url("scorer") + "/metrics")
        consumed = metric_sum(samples, "sentimon_scorer_records_consumed_total")
        done = (metric_sum(samples, "sentimon_scorer_records_scored_total")
                + metric_sum(samples, "sentimon_scorer_records_dead_lettered_total"))
        lag = metric_sum(samples, "sentimon_scorer_consumer_lag")
        if (consumed == done and lag == 0) or time.monotonic() >= deadline:
            return samples
        time.sleep(1.0)


def read_notifications(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def wait_for_alert(
    path: Path, *, alertname: str, labels: dict[str, str], timeout_s: float, status: str = "firing",
    after: datetime | None = None,
) -> dict[str, Any] | None:
    """The first notification in ``path`` that matches, waiting up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        for rec in read_notifications(path):
            if rec.get("alertname") != alertname or rec.get("status") != status:
                continue
            if any(rec.get("labels", {}).get(k) != v for k, v in labels.items()):
                continue
            if after is not None and rec["received_at"] < after.isoformat().replace("+00:00", "Z"):
                continue
            return rec
        if time.monotonic() >= deadline:
            return None
        time.sleep(1.0)


# -- the demo itself ----------------------------------------------------------------------------


@dataclass
class DemoResult:
    burst_started: datetime
    notification: dict[str, Any] | None
    early_spikes: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    consumed: float
    scored: float
    dead_lettered: float
    report: Path | None


def replay_streams(settings: Settings, args: argparse.Namespace) -> datetime:
    """Replay comments and news side by side; return when the burst started (UTC)."""
    from sentimon.ingest import replay
    from sentimon.kafka import make_producer
    from sentimon.model.inference import SentimentModel

    comments = replay.load_items(args.comments, kind="comment", lang="en")
    first, last = (comments[0].ts, comments[-1].ts) if comments else (None, None)
    span = (last - first).total_seconds() if first and last else 0.0
    c_offsets = replay.Schedule(speedup=max(span / args.duration, 1.0)).offsets(comments)
    news = replay.load_items(args.news, kind="news", limit=int(args.duration * args.news_rate))
    n_offsets = replay.Schedule(rate=args.news_rate).offsets(news)
    model = SentimentModel.from_settings(settings)
    burst = replay.burst_items(DEMO_DIR / "negative.csv", topic=args.burst_topic,
                               count=args.burst_count, model=model, kind="news")
    news, n_offsets = replay.merge_burst(news, n_offsets, burst, after_s=args.burst_after, rate=10.0)
    start = datetime.now(UTC)
    producer = make_producer(settings.kafka, client_suffix="demo")
    results: dict[str, int] = {}

    # A bar redrawn with carriage returns suits a terminal; a log file gets a line now and then.
    tty = sys.stderr.isatty()

    def go(name: str, topic: str, items: list[Any], offsets: list[float]) -> None:
        results[name] = replay.send(producer, topic, items, offsets, retime=True,
                                    progress=tty and name == "comments", desc="replay")

    threads = [
        threading.Thread(target=go, args=("comments", settings.topics.comments, comments, c_offsets)),
        threading.Thread(target=go, args=("news", settings.topics.news, news, n_offsets)),
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        next(t for t in threads if t.is_alive()).join(PROGRESS_EVERY_S)
        if not tty and any(t.is_alive() for t in threads):
            print(f"replay: {time.monotonic() - started:.0f} s of ~{args.duration:.0f} s", flush=True)
    for t in threads:
        t.join()
    producer.close()
    print(f"replayed {results.get('comments', 0)} comments and {results.get('news', 0)} news "
          f"(burst of {len(burst)} about {args.burst_topic!r} included)")
    return start + timedelta(seconds=args.burst_after)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sentimon.stack.kafka_broker import StackError
    from sentimon.stack.manager import Stack
    from sentimon.stack.observability import alertmanager_url, prometheus_url

    if args.config is None and "SENTIMON_CONFIG" not in os.environ:
        settings = load_settings(DEMO_DIR / "demo.yaml")
    print(f"sentimon demo: home {settings.home}")
    stack = Stack(settings)
    pipeline = Pipeline(settings)
    try:
        print("1/5 starting Kafka, Prometheus and Alertmanager ...", flush=True)
        stack.up()
        print("2/5 starting notify, monitor and scorer daemons ...", flush=True)
        pipeline.start_all()
        print(f"3/5 replaying ~{args.duration:.0f}s of real streams, burst about "
              f"{args.burst_topic!r} at {args.burst_after:.0f}s ...", flush=True)
        notify_path = settings.notifications_path()
        t0 = datetime.now(UTC)
        burst_at = replay_streams(settings, args)
        print("4/5 waiting for the NegativeSentimentSpike notification ...", flush=True)
        note = wait_for_alert(notify_path, alertname="NegativeSentimentSpike",
                              labels={"topic": args.burst_topic}, timeout_s=args.alert_timeout,
                              after=t0)
        early = [r for r in read_notifications(notify_path)
                 if r.get("alertname") == "NegativeSentimentSpike" and r.get("status") == "firing"
                 and t0.isoformat() <= r["received_at"] < burst_at.isoformat()]
        print("5/5 summary and report", flush=True)
        scorer = drained(pipeline, timeout_s=120)
        report = settings.home / "demo-report.png"
        since = f"{int((datetime.now(UTC) - t0).total_seconds()) + 60}s"
        rep = subprocess.run([sys.executable, "-m", "sentimon", "report", "--since", since,
                              "--out", str(report)], env=pipeline.env, capture_output=True,
                             text=True, check=False)
        t0_text = t0.isoformat().replace("+00:00", "Z")
        raised = [r for r in read_notifications(notify_path) if r.get("received_at", "") >= t0_text]
        result = DemoResult(
            burst_started=burst_at, notification=note, early_spikes=early, alerts=raised,
            consumed=metric_sum(scorer, "sentimon_scorer_records_consumed_total"),
            scored=metric_sum(scorer, "sentimon_scorer_records_scored_total"),
            dead_lettered=metric_sum(scorer, "sentimon_scorer_records_dead_lettered_total"),
            report=report if rep.returncode == 0 else None,
        )
    except StackError as exc:
        print(f"sentimon demo: {exc}", file=sys.stderr)
        pipeline.stop_all()
        return 1
    except KeyboardInterrupt:
        pipeline.stop_all()
        raise
    _print_summary(settings, result, args, prometheus_url(settings), alertmanager_url(settings),
                   pipeline)
    if args.stop:
        print("stopped: " + ", ".join(stack.down()))
    else:
        print("\nstill running; stop everything with: sentimon stack down")
    return 0 if result.notification else 1


def _print_summary(settings: Settings, r: DemoResult, args: argparse.Namespace, prom: str, am: str,
                   pipeline: Pipeline) -> None:
    print("\n== sentimon demo summary ==")
    print(f"records consumed {r.consumed:.0f} = scored {r.scored:.0f} + dead-lettered "
          f"{r.dead_lettered:.0f}")
    if r.notification:
        got = datetime.fromisoformat(r.notification["received_at"].replace("Z", "+00:00"))
        print(f"spike alert for {args.burst_topic!r} received {(got - r.burst_started).total_seconds():.0f}s "
              f"after the burst started:\n  {r.notification.get('text')}")
    else:
        print(f"NO spike notification for {args.burst_topic!r} within {args.alert_timeout:.0f}s: "
              f"see {settings.home}/logs/")
    if r.early_spikes:
        print(f"note: {len(r.early_spikes)} spike notification(s) arrived before the burst")
    print(f"every notification during the demo ({len(r.alerts)}):")
    for rec in r.alerts:
        print(f"  {rec.get('received_at', '?')[11:19]}  {rec.get('text', '')}")
    print(f"report:         {r.report or 'not written (see sentimon report --help)'}")
    print(f"notifications:  {settings.notifications_path()}")
    print(f"alerts page:    {pipeline.health_url('notify')}/   (recent alerts, figures, report PNGs)")
    print(f"Prometheus:     {prom}/alerts   (graph: {prom}/graph)")
    print(f"Alertmanager:   {am}")
    for name in ("scorer", "monitor", "notify"):
        print(f"{name + ' metrics:':<16}{pipeline.health_url(name)}/metrics")
    print(f"Grafana:        provision {DEMO_DIR.parent / 'grafana'} (see docs/alerts.md)")
