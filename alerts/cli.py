"""``sentimon notify``: run the Alertmanager webhook receiver."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from pathlib import Path
from typing import Any

from sentimon.config import Settings

log = logging.getLogger(__name__)

NOTIFY_EPILOG = """\
Alertmanager posts to http://HOST:PORT/alertmanager (see `sentimon.deploy.render`).
Each alert is printed as one line, appended as JSON to the notifications file and,
with --forward-url, posted to a Slack-compatible webhook ({"text": ..., "blocks": [...]},
retried with backoff: notify.forward_attempts, notify.forward_backoff_s).
Open http://HOST:PORT/ for the recent alerts with their figures and report PNGs
(/report.png?topic=Macro&since=3h). /metrics, /healthz and /readyz are served on the
same port. A firing spike alert gets the most negative texts of its burst, its tickers
and figures from the monitor's /exemplars (notify.monitor_url, default the local monitor;
at most 2 s, else the alert goes out without them). With SENTIMON_NOTIFY__SECRET set, the
webhook needs it as a Bearer token and the page asks for it as a password (any user name).

examples:
  sentimon notify
  sentimon notify --port 29102 --jsonl /tmp/alerts.jsonl
  SENTIMON_NOTIFY__SECRET=s3cr3t sentimon notify --forward-url https://hooks.slack.com/services/T/B/X
  tail -f ~/.local/state/sentimon/notifications.jsonl | jq .text
"""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "notify",
        help="receive Alertmanager notifications (print, JSONL, forward)",
        description="Receive Alertmanager webhook notifications: print them, append them to "
        "a JSONL file and optionally forward them to a Slack-compatible webhook.",
        epilog=NOTIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", help="bind address (default notify.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default notify.port, 19102)")
    p.add_argument("--jsonl", type=Path, metavar="FILE",
                   help="notifications file (default notify.jsonl_path, HOME/notifications.jsonl)")
    p.add_argument("--forward-url", metavar="URL",
                   help="Slack-compatible webhook to forward to (default notify.forward_url, none)")
    p.add_argument("--external-url", metavar="URL",
                   help="base URL of this receiver in notification links "
                   "(default notify.external_url, http://HOST:PORT)")
    p.add_argument("--prometheus-url", metavar="URL",
                   help="Prometheus the report PNGs are drawn from (default "
                   "notify.prometheus_url, else http://stack.host:stack.prometheus_port)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT."""
    from sentimon.alerts.notify import WEBHOOK_PATH, NotifyServer
    from sentimon.cli import with_options
    from sentimon.kafka import GracefulStop
    from sentimon.stack.observability import prometheus_url

    settings = with_options(settings, "notify", host=args.host, port=args.port,
                            jsonl_path=args.jsonl, forward_url=args.forward_url,
                            external_url=args.external_url, prometheus_url=args.prometheus_url)
    n = settings.notify
    host, port = n.host, n.port
    jsonl = settings.notifications_path()
    forward_url = n.forward_url
    secret = n.secret.get_secret_value() if n.secret else None
    if secret is None and not _is_loopback(host):
        log.warning("listening beyond loopback without a shared secret; "
                    "set SENTIMON_NOTIFY__SECRET", extra={"host": host})
    stop = GracefulStop.install()
    try:
        server = NotifyServer(
            host=host, port=port, jsonl_path=jsonl, secret=secret,
            forward_url=forward_url, forward_attempts=n.forward_attempts,
            forward_backoff_s=n.forward_backoff_s, max_body_bytes=n.max_body_bytes,
            external_url=n.external_url,
            prometheus_url=n.prometheus_url or prometheus_url(settings),
            history=n.history, min_volume=settings.monitor.min_volume,
            monitor_url=monitor_url(settings),
        ).start()
    except OSError as exc:
        print(f"sentimon notify: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    log.info("notify receiver listening", extra={
        "url": f"http://{host}:{server.port}{WEBHOOK_PATH}", "page": server.external_url + "/",
        "jsonl": str(jsonl),
        "forward": bool(forward_url), "secret": secret is not None,
    })
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
    log.info("notify receiver stopped")
    return 0


def monitor_url(settings: Settings) -> str | None:
    """Where the exemplars of spike alerts come from: ``notify.monitor_url``, else the local
    monitor's metrics port (loopback for a wildcard bind); None when set to an empty string."""
    from sentimon.alerts.notify import _loopback_url

    url = settings.notify.monitor_url
    if url is None:
        m = settings.monitor
        return _loopback_url(m.metrics_host, m.metrics_port)
    return url.strip() or None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
