"""``sentimon config``: show the effective configuration or every SENTIMON_* variable."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from sentimon.config import Settings, env_reference


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "config",
        help="print the effective configuration (secrets masked) or the variable list",
        description="Print the configuration after file and SENTIMON_* variables are applied.",
    )
    p.add_argument("--env", action="store_true", help="list every SENTIMON_* variable instead")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.env:
        for var, default, desc in env_reference():
            print(f"{var}={default}\n    {desc}")
        return 0
    # mode="json" renders SecretStr as '**********', so no secret reaches the terminal.
    print(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False), end="")
    return 0
