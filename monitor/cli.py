"""Subcommands ``sentimon monitor`` (the daemon) and ``sentimon report`` (a PNG chart)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sentimon.config import Settings, StackSettings

MONITOR_EPILOG = """\
examples:
  sentimon monitor                                   # windows 15 min / 24 h, port 19101
  SENTIMON_MONITOR__SHORT_WINDOW_S=300 sentimon monitor --metrics-port 19111
  curl -s 127.0.0.1:19101/metrics | grep sentimon_topic_spike

Figures are rebuilt from the scored topic on start (no state on disk); readiness
(/readyz) turns 200 once the rebuild has caught up. Stop with SIGTERM or Ctrl-C.
"""

REPORT_EPILOG = """\
examples:
  sentimon report                                    # last hour, all topics -> report.png
  sentimon report --since 6h --out /tmp/day.png --topics "Earnings,Macro"
  sentimon report --prometheus-url http://prom.example:9090 --since 2d
"""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "monitor",
        help="aggregate scored records in sliding windows and serve Prometheus metrics",
        description="Consume the scored topic, keep short and baseline windows per topic, "
        "watchlist ticker and the whole market (in event time), and serve them on /metrics.",
        epilog=MONITOR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="metrics/health port (default monitor.metrics_port)")
    p.add_argument("--idle-exit-s", type=float, metavar="S",
                   help="exit after S seconds without records once caught up (for tests)")
    p.set_defaults(func=run_monitor)

    r = sub.add_parser(
        "report",
        help="draw a PNG of rolling sentiment per topic from Prometheus",
        description="Read the monitor's series and spike alerts from Prometheus's HTTP API "
        "and draw negative share and mean score per topic over time (no Grafana needed).",
        epilog=REPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stack = StackSettings()
    r.add_argument("--prometheus-url", metavar="URL",
                   help="Prometheus base URL (default the embedded stack's, "
                   f"http://{stack.host}:{stack.prometheus_port} unless stack.host or "
                   "stack.prometheus_port say otherwise)")
    r.add_argument("--since", default="1h", metavar="DURATION",
                   help="how far back, e.g. 30m, 6h, 2d (default 1h)")
    r.add_argument("--out", type=Path, default=Path("report.png"), metavar="FILE",
                   help="PNG to write (default report.png)")
    r.add_argument("--topics", action="append", metavar="T1,T2",
                   help="only these topics (comma-separated, repeatable)")
    r.set_defaults(func=run_report)


def run_monitor(args: argparse.Namespace, settings: Settings) -> int:
    from sentimon.cli import with_options
    from sentimon.kafka import GracefulStop
    from sentimon.monitor.daemon import Monitor

    settings = with_options(settings, "monitor", metrics_port=args.metrics_port)
    if args.idle_exit_s is not None and args.idle_exit_s <= 0:
        print("sentimon monitor: --idle-exit-s must be positive", file=sys.stderr)
        return 2
    return Monitor(settings, stop=GracefulStop.install()).run(idle_exit_s=args.idle_exit_s)


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    from sentimon.monitor.report import ReportError, parse_duration, render_report
    from sentimon.stack.observability import prometheus_url

    try:
        since_s = parse_duration(args.since)
    except ValueError as exc:
        print(f"sentimon report: --since: {exc}", file=sys.stderr)
        return 2
    topics = [t.strip() for group in args.topics or [] for t in group.split(",") if t.strip()]
    url = args.prometheus_url or prometheus_url(settings)
    try:
        result = render_report(prometheus_url=url, since_s=since_s, out=args.out,
                               topics=topics or None)
    except ReportError as exc:
        print(f"sentimon report: {exc}", file=sys.stderr)
        return 1
    if result.skipped_topics:
        print(f"no data for: {', '.join(result.skipped_topics)}", file=sys.stderr)
    print(f"wrote {result.path} ({result.bytes} bytes): {len(result.topics)} topics, "
          f"{result.series} series, {result.alert_points} alert points")
    return 0
