"""Placeholder until built."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("doctor", help="doctor (not built yet)")
    p.set_defaults(func=lambda a, s: 1)
