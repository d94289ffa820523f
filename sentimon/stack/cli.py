"""``sentimon stack up | down | status``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from sentimon.config import Settings

COMPONENT_CHOICES = ["kafka", "prometheus", "alertmanager"]


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "stack",
        help="start, inspect or stop the embedded Kafka, Prometheus and Alertmanager",
        description=(
            "The embedded default stack: a real Apache Kafka broker (KRaft, jars from Maven "
            "Central), Prometheus and Alertmanager (Debian packages), all on 127.0.0.1, state "
            "under SENTIMON_HOME."
        ),
        epilog="examples:\n  sentimon stack up\n  sentimon stack up kafka\n"
        "  sentimon stack status --json\n  sentimon stack down",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start what is not running (a second `up` is harmless)")
    up.add_argument("components", nargs="*", type=_component, metavar="COMPONENT",
                    help="kafka, prometheus, alertmanager (default: stack.components)")
    up.add_argument("--timeout", type=float, default=120.0, metavar="S",
                    help="seconds to wait for each server to answer (default 120)")
    up.set_defaults(func=run_up)
    down = actions.add_parser("down", help="stop exactly what `up` started")
    down.add_argument("components", nargs="*", type=_component, metavar="COMPONENT",
                      help="default: everything that runs")
    down.set_defaults(func=run_down)
    status = actions.add_parser(
        "status", help="what runs where, and whether it answers: servers and the scorer, "
        "monitor and notify daemons (pid, URL, ready)")
    status.add_argument("--json", action="store_true",
                        help="machine-readable output (default: a table)")
    status.set_defaults(func=run_status)


def _component(value: str) -> str:
    if value not in COMPONENT_CHOICES:
        raise argparse.ArgumentTypeError(f"unknown component {value!r}; choose from "
                                         + ", ".join(COMPONENT_CHOICES))
    return value


def run_up(args: argparse.Namespace, settings: Settings) -> int:
    from sentimon.stack.kafka_broker import StackError
    from sentimon.stack.manager import Stack

    stack = Stack(settings)
    try:
        stack.up(args.components or None, timeout_s=args.timeout)
    except StackError as exc:
        print(f"sentimon stack up: {exc}", file=sys.stderr)
        return 1
    _print_status(stack)
    return 0


def run_down(args: argparse.Namespace, settings: Settings) -> int:
    from sentimon.stack.manager import Stack
    from sentimon.stack.process import ProcessStopError

    try:
        stopped = Stack(settings).down(args.components or None)
    except ProcessStopError as exc:
        print(f"sentimon stack down: {exc}", file=sys.stderr)
        return 1
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    from sentimon.stack.manager import Stack

    stack = Stack(settings)
    if args.json:
        print(json.dumps([asdict(s) for s in stack.status()], indent=2))
        return 0
    _print_status(stack)
    return 0


def _print_status(stack: object) -> None:
    print(f"home: {stack.home}")  # type: ignore[attr-defined]
    kind = None
    for s in stack.status():  # type: ignore[attr-defined]
        if s.kind != kind:
            kind = s.kind
            print("servers:" if kind == "server" else "daemons (sentimon demo, or started by hand):")
        answering = "ready" if s.kind == "daemon" else "answering"
        state = answering if s.answering else ("running" if s.running else "stopped")
        pid = f"pid {s.pid}" if s.pid else "-"
        print(f"  {s.name:<13} {state:<10} {pid:<11} {s.url}")
