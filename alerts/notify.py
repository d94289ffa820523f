"""``sentimon notify``: the receiver of Alertmanager's webhook notifications.

Alertmanager POSTs a group of alerts to ``/alertmanager``. Each alert becomes one readable
line on stdout and one JSON object appended to the notifications file (the full record:
labels, annotations, figures, tickers, exemplars, links); the group can also be forwarded to
a Slack-compatible webhook as one message with blocks (:mod:`sentimon.alerts.forward`
retries it with backoff). A firing spike alert without an ``exemplars`` annotation gets the
series' most negative recent texts, tickers and figures from the monitor first
(:mod:`sentimon.alerts.exemplars`, bounded by a short timeout). The same port serves
``/metrics``, ``/healthz``, ``/readyz``, the page of recent alerts at ``/`` and topic report
PNGs at ``/report.png`` (:mod:`sentimon.alerts.page`).

Requests are checked before their body is read: an optional shared secret (``Authorization:
Bearer``, compared in constant time; the page and PNGs also take it as the password of HTTP
Basic, which a browser asks for) and a size limit. A notification that cannot be written to
the file gets a 500, so Alertmanager retries it instead of it being lost.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hmac
import json
import logging
import sys
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, Any

from prometheus_client import CollectorRegistry, Counter

from sentimon.alerts import message
from sentimon.alerts.exemplars import TIMEOUT_S, ExemplarFetcher, FetchMetrics, enrich, series_of
from sentimon.alerts.forward import Forwarder, ForwardMetrics
from sentimon.http import DaemonHTTPServer

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/alertmanager"
#: Labels that say what an alert is about, in the order they are shown.
SUBJECT_LABELS = ("topic", "ticker", "kind", "job", "instance")
_STATUSES = ("firing", "resolved")


class PayloadError(ValueError):
    """The request body is not an Alertmanager webhook payload; the message says why."""


def _loopback_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"  # a wildcard bind is reached over loopback here
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def parse_payload(body: bytes) -> dict[str, Any]:
    """Decode and check an Alertmanager webhook body (version 4)."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError("body must be a JSON object")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("'alerts' must be a list")
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
            raise PayloadError(f"alerts[{i}] must be an object with a 'labels' object")
        if not isinstance(alert.get("annotations", {}), dict):
            raise PayloadError(f"alerts[{i}].annotations must be an object")
    return payload


def alert_status(alert: Mapping[str, Any]) -> str:
    """``firing`` or ``resolved`` (anything else is reported as ``unknown``)."""
    status = str(alert.get("status", "")).lower()
    return status if status in _STATUSES else "unknown"


def describe(alert: Mapping[str, Any]) -> str:
    """One readable line: status, alert name, what it is about, its summary and link."""
    labels: Mapping[str, Any] = alert.get("labels") or {}
    annotations: Mapping[str, Any] = alert.get("annotations") or {}
    parts = [f"[{alert_status(alert).upper()}]", str(labels.get("alertname", "(unnamed alert)"))]
    parts += [f"{k}={labels[k]}" for k in SUBJECT_LABELS if labels.get(k)]
    if labels.get("severity"):
        parts.append(f"({labels['severity']})")
    line = " ".join(parts)
    summary = annotations.get("summary") or annotations.get("description")
    if summary:
        line += f": {' '.join(str(summary).split())}"
    if alert_status(alert) == "resolved" and alert.get("endsAt"):
        line += f" (resolved at {alert['endsAt']})"
    if annotations.get("dashboard_url"):
        line += f" {annotations['dashboard_url']}"
    return line


def notification_record(
    alert: Mapping[str, Any], payload: Mapping[str, Any], *, received_at: datetime,
    base_url: str | None = None,
) -> dict[str, Any]:
    """The JSON object appended to the notifications file for one alert.

    ``base_url`` is where people reach this receiver (for the report and page links).
    """
    labels = dict(alert.get("labels") or {})
    annotations = dict(alert.get("annotations") or {})
    return {
        "received_at": received_at.isoformat().replace("+00:00", "Z"),
        "status": alert_status(alert),
        "alertname": labels.get("alertname"),
        "labels": labels,
        "annotations": dict(alert.get("annotations") or {}),
        "starts_at": alert.get("startsAt"),
        "ends_at": alert.get("endsAt"),
        "fingerprint": alert.get("fingerprint"),
        "generator_url": alert.get("generatorURL"),
        "group_key": payload.get("groupKey"),
        "receiver": payload.get("receiver"),
        "figures": message.figures(annotations),
        "tickers": message.tickers(labels, annotations),
        "exemplars": message.exemplars(annotations),
        "links": message.links(alert, base_url=base_url),
        "text": describe(alert),
    }


class Metrics:
    """The receiver's counters, in a registry of its own (several receivers per process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.received = Counter(
            "sentimon_notify_alerts_received", "Alerts received from Alertmanager, by status.",
            ["status"], registry=self.registry,
        )
        self.rejected = Counter(
            "sentimon_notify_requests_rejected", "Webhook requests refused, by reason.",
            ["reason"], registry=self.registry,
        )
        self.forward = ForwardMetrics(self.registry)
        self.exemplars = FetchMetrics(self.registry)
        for status in (*_STATUSES, "unknown"):
            self.received.labels(status=status)


class Notifier:
    """What happens to a received payload: print, append to the JSONL file, forward."""

    def __init__(
        self,
        *,
        jsonl_path: Path,
        metrics: Metrics,
        forwarder: Forwarder | None = None,
        out: IO[str] | None = None,
        base_url: str | None = None,
        history: int = 200,
        fetcher: ExemplarFetcher | None = None,
    ) -> None:
        self.jsonl_path = jsonl_path
        self.base_url = base_url
        self._metrics = metrics
        self._forwarder = forwarder
        self._fetcher = fetcher
        self._out = out if out is not None else sys.stdout
        self._lock = threading.Lock()
        self._recent: collections.deque[dict[str, Any]] = collections.deque(
            _tail_records(jsonl_path, history), maxlen=history)

    def recent(self) -> list[dict[str, Any]]:
        """The last notifications received (kept across restarts via the file), newest first."""
        with self._lock:
            return list(reversed(self._recent))

    def handle(self, payload: Mapping[str, Any]) -> list[str]:
        """Record every alert of ``payload``; returns the lines. Raises OSError if not stored."""
        now = datetime.now(UTC)
        alerts: Sequence[Mapping[str, Any]] = payload["alerts"]
        records = [notification_record(a, payload, received_at=now, base_url=self.base_url)
                   for a in alerts]
        if self._fetcher is not None:
            # Before anything is stored or forwarded, so the JSONL record, the page and the
            # chat message all quote the same texts; bounded by the fetcher's timeout.
            fetched = self._fetcher.fetch_all(alerts)
            for alert, record in zip(alerts, records, strict=True):
                key = series_of(alert)
                if key is not None and key in fetched:
                    enrich(record, fetched[key])
        lines = [r["text"] for r in records]
        with self._lock:  # whole lines from concurrent requests, never interleaved
            self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
            with self.jsonl_path.open("a", encoding="utf-8") as f:
                f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            for line in lines:
                print(line, file=self._out, flush=True)
            self._recent.extend(records)
        for record in records:
            self._metrics.received.labels(status=record["status"]).inc()
        if self._forwarder is not None and records:
            self._forwarder.submit(message.slack_message(records))
        return lines


#: The page's history is read from at most this many bytes at the end of the file.
TAIL_BYTES = 4_000_000


def _tail_records(path: Path, n: int) -> list[dict[str, Any]]:
    """The last ``n`` readable records of the notifications file (none if it is missing).

    Only the file's last :data:`TAIL_BYTES` are read: the file grows for ever.
    """
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - TAIL_BYTES))
            data = f.read()
    except (FileNotFoundError, IsADirectoryError):
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if size > TAIL_BYTES:
        lines = lines[1:]  # the first line is cut
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out[-n:]


class NotifyServer(DaemonHTTPServer):
    """The HTTP receiver: ``POST /alertmanager`` plus the daemon endpoints on one port."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        jsonl_path: Path,
        secret: str | None = None,
        forward_url: str | None = None,
        forward_attempts: int = 6,
        forward_backoff_s: float = 1.0,
        max_body_bytes: int = 1_000_000,
        external_url: str | None = None,
        prometheus_url: str | None = None,
        history: int = 200,
        min_volume: int = 30,
        out: IO[str] | None = None,
        monitor_url: str | None = None,
        exemplar_timeout_s: float = TIMEOUT_S,
    ) -> None:
        """``monitor_url``: the monitor whose ``/exemplars`` fills firing spike alerts (None
        or empty: none); each request waits at most ``exemplar_timeout_s`` for it."""
        from sentimon.alerts.page import ReportRenderer

        self.metrics = Metrics()
        self.forwarder = (
            Forwarder(forward_url, metrics=self.metrics.forward, attempts=forward_attempts,
                      backoff_s=forward_backoff_s)
            if forward_url else None
        )
        self._secret = secret.encode() if secret else None
        self._max_body_bytes = max_body_bytes
        self.reports = ReportRenderer(prometheus_url, min_volume=min_volume) if prometheus_url else None
        self.fetcher = (
            ExemplarFetcher(monitor_url, metrics=self.metrics.exemplars,
                            timeout_s=exemplar_timeout_s)
            if monitor_url else None
        )
        super().__init__(host=host, port=port, registry=self.metrics.registry)
        self.external_url = (external_url or _loopback_url(host, self.port)).rstrip("/")
        self.notifier = Notifier(
            jsonl_path=jsonl_path, metrics=self.metrics, forwarder=self.forwarder, out=out,
            base_url=self.external_url, history=history, fetcher=self.fetcher,
        )

    def stop(self) -> None:
        super().stop()
        if self.forwarder is not None:
            self.forwarder.close()
        if self.fetcher is not None:
            self.fetcher.close()

    def authorized(self, header: str | None, *, basic: bool = False) -> bool:
        """True when no secret is configured or ``header`` is ``Bearer <secret>``.

        With ``basic`` (the page and PNGs, opened in a browser) ``Basic`` credentials whose
        password is the secret are accepted too, whatever the user name.
        """
        if self._secret is None:
            return True
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if basic and scheme.lower() == "basic":
            try:
                token = base64.b64decode(token, validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                token = ""
            scheme = "bearer"
        # compare_digest on both branches: the time taken says nothing about the secret.
        ok = hmac.compare_digest(token.encode(), self._secret)
        return ok and scheme.lower() == "bearer"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self
        base = super()._handler_class()

        class Handler(base):  # type: ignore[valid-type,misc]
            timeout = 30  # seconds per socket read: a stalled client cannot hold a thread

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path not in ("/", "/alerts.json", "/report.png"):
                    return super().do_GET()  # /metrics, /healthz, /readyz stay open to scrapes
                if not outer.authorized(self.headers.get("Authorization"), basic=True):
                    outer.metrics.rejected.labels(reason="unauthorized").inc()
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="sentimon notify"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if path == "/":
                    from sentimon.alerts.page import render_page

                    page = render_page(outer.notifier.recent())
                    return self._send(200, page.encode(), "text/html; charset=utf-8")
                if path == "/alerts.json":
                    return self._json(200, {"alerts": outer.notifier.recent()})
                return self._report(urllib.parse.parse_qs(query))

            def _report(self, params: dict[str, list[str]]) -> None:
                from sentimon.alerts.page import MAX_REPORT_SINCE_S
                from sentimon.monitor.report import ReportError, parse_duration

                topic = (params.get("topic") or [""])[0]
                try:
                    since_s = parse_duration((params.get("since") or [message.REPORT_SINCE])[0])
                except ValueError as exc:
                    return self._send(400, str(exc).encode(), "text/plain; charset=utf-8")
                if not topic or since_s > MAX_REPORT_SINCE_S:
                    return self._send(400, b"topic=T required, since at most 7d",
                                      "text/plain; charset=utf-8")
                if outer.reports is None:
                    return self._send(404, b"no Prometheus configured for reports",
                                      "text/plain; charset=utf-8")
                try:
                    png = outer.reports.png(topic, since_s=since_s)
                except ReportError as exc:
                    return self._send(503, str(exc).encode(), "text/plain; charset=utf-8")
                return self._send(200, png, "image/png")

            def do_POST(self) -> None:
                if self.path.split("?", 1)[0] != WEBHOOK_PATH:
                    return self._refuse(404, "not_found", f"POST to {WEBHOOK_PATH}")
                if not outer.authorized(self.headers.get("Authorization")):
                    return self._refuse(401, "unauthorized", "missing or wrong bearer token")
                length = self.headers.get("Content-Length")
                if length is None or "chunked" in self.headers.get("Transfer-Encoding", ""):
                    return self._refuse(411, "no_length", "Content-Length required")
                try:
                    size = int(length)
                except ValueError:
                    return self._refuse(400, "bad_length", "invalid Content-Length")
                if size < 0:
                    return self._refuse(400, "bad_length", "invalid Content-Length")
                if size > outer._max_body_bytes:
                    return self._refuse(
                        413, "too_large", f"body over {outer._max_body_bytes} bytes"
                    )
                body = self.rfile.read(size)
                if len(body) != size:
                    return self._refuse(400, "short_body", "body shorter than Content-Length")
                try:
                    payload = parse_payload(body)
                except PayloadError as exc:
                    return self._refuse(400, "bad_payload", str(exc), body_read=True)
                try:
                    lines = outer.notifier.handle(payload)
                except OSError as exc:
                    log.error("cannot store notification", extra={"error": str(exc)})
                    return self._refuse(500, "store_failed", "cannot store notification",
                                        body_read=True)
                self._json(200, {"received": len(lines)})

            def _refuse(
                self, code: int, reason: str, message: str, *, body_read: bool = False
            ) -> None:
                outer.metrics.rejected.labels(reason=reason).inc()
                log.warning("webhook request refused", extra={
                    "code": code, "reason": reason, "client": self.client_address[0],
                })
                if not body_read:
                    # The unread body is still in the socket: this connection is done.
                    self.close_connection = True
                self.send_response(code)
                if code == 401:
                    self.send_header("WWW-Authenticate", "Bearer")
                if not body_read:
                    self.send_header("Connection", "close")
                body = json.dumps({"error": message}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
