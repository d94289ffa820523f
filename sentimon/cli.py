"""The ``sentimon`` command: one subcommand tree over the whole pipeline.

Each package owns its subcommands in its own ``cli.py`` (``register(subparsers)``), so
``--help`` at every level comes from the code that runs. Handlers take the parsed
arguments and the loaded :class:`~sentimon.config.Settings` and return an exit code;
heavy imports (onnxruntime, torch) happen inside handlers, never at parse time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sentimon import __version__
from sentimon.config import ConfigError, Settings, load_settings

EPILOG = """\
pipeline:  replay -> Kafka (sentimon.news, sentimon.comments) -> score -> sentimon.scored
           -> monitor -> /metrics -> Prometheus rules -> Alertmanager -> notify

first steps:
  sentimon stack up        start the embedded Kafka, Prometheus and Alertmanager
  sentimon doctor          check versions, providers and what answers
  sentimon demo            the whole pipeline on real data, ending in a spike alert

Every option also reads from the config file (--config) and SENTIMON_* variables;
`sentimon config --env` lists them all.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentimon",
        description="Streaming financial sentiment monitor.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sentimon {__version__}")
    parser.add_argument(
        "--config", type=Path, metavar="FILE",
        help="YAML config file (default: none, or SENTIMON_CONFIG)"
    )
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log level (default log_level, INFO; also SENTIMON_LOG_LEVEL)")
    parser.add_argument("--log-json", action="store_true", default=None,
                        help="one JSON object per log line (default: text; also SENTIMON_LOG_JSON)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # Imported here so that `sentimon --help` lists commands in pipeline order.
    from sentimon import config_cli, demo, doctor
    from sentimon.alerts import cli as alerts_cli
    from sentimon.ingest import cli as ingest_cli
    from sentimon.model import cli as model_cli
    from sentimon.monitor import backtest_cli
    from sentimon.monitor import cli as monitor_cli
    from sentimon.stack import cli as stack_cli

    for module in (
        stack_cli, ingest_cli, model_cli, monitor_cli, backtest_cli, alerts_cli, demo, doctor,
        config_cli
    ):
        module.register(sub)
    return parser


def with_options(settings: Settings, section: str, **options: Any) -> Settings:
    """``settings`` with command-line options put into ``section``, checked by the same model
    as the configuration. ``None`` means "not given". A bad value is a :class:`ConfigError`
    of one line naming the flag: ``--port: Input should be less than 65536 (got 70000)``."""
    given = {k: v for k, v in options.items() if v is not None}
    if not given:
        return settings
    current = getattr(settings, section)
    try:
        checked = type(current).model_validate({**current.model_dump(), **given})
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else section
        raise ConfigError(f"{flag}: {err['msg']} (got {err.get('input')!r})") from None
    return settings.model_copy(update={section: checked})


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {}
    if args.log_level:
        overrides["log_level"] = args.log_level
    if args.log_json:
        overrides["log_json"] = True
    try:
        settings: Settings = load_settings(args.config, **overrides)
    except ConfigError as exc:
        print(f"sentimon: {exc}", file=sys.stderr)
        return 2
    from sentimon.logs import setup_logging

    setup_logging(settings.log_level, as_json=settings.log_json)
    try:
        return int(args.func(args, settings) or 0)
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:
        print(f"sentimon: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        # A wrong path (a model or data folder, a file) is the user's to fix: name it, without
        # a traceback unless asked for one.
        if settings.log_level == "DEBUG":
            raise
        what = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
        print(f"sentimon {args.command}: {what} (--log-level DEBUG shows where)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
