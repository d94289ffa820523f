"""Subcommands of this package (placeholder until the package lands)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction[Any]) -> None:
    for name in "notify".split(","):
        p = sub.add_parser(name, help=f"{name} (not built yet)")
        p.set_defaults(func=_todo)


def _todo(args: argparse.Namespace, settings: object) -> int:
    raise SystemExit(f"sentimon {args.command}: not built yet")
