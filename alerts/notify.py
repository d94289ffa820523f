"""``sentimon notify``: the receiver of Alertmanager's webhook notifications.

Alertmanager POSTs a group of alerts to ``/alertmanager``. Each alert becomes one readable
line on stdout and one JSON object appended to the notifications file; the group's lines can
also be forwarded to a Slack-compatible webhook (``{"text": ...}``). The same port serves
``/metrics`` (``sentimon_notify_alerts_received_total{status}``), ``/healthz`` and ``/readyz``.

Requests are checked before their body is read: an optional shared secret (``Authorization:
Bearer``, compared in constant time) and a size limit. A notification that cannot be written
to the file gets a 500, so Alertmanager retries it instead of it being lost.
"""

from __future__ import annotations

import hmac
import json
import logging
import queue
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, Any

from prometheus_client import CollectorRegistry, Counter

from sentimon.http import DaemonHTTPServer

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/alertmanager"
#: Labels that say what an alert is about, in the order they are shown.
SUBJECT_LABELS = ("topic", "ticker", "kind", "job", "instance")
_STATUSES = ("firing", "resolved")


class PayloadError(ValueError):
    """The request body is not an Alertmanager webhook payload; the message says why."""


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
    alert: Mapping[str, Any], payload: Mapping[str, Any], *, received_at: datetime
) -> dict[str, Any]:
    """The JSON object appended to the notifications file for one alert."""
    labels = dict(alert.get("labels") or {})
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
        self.forwarded = Counter(
            "sentimon_notify_forwarded", "Messages forwarded to the chat webhook, by result.",
            ["result"], registry=self.registry,
        )
        for status in (*_STATUSES, "unknown"):
            self.received.labels(status=status)
        for result in ("ok", "error", "dropped"):
            self.forwarded.labels(result=result)


class Forwarder:
    """Posts ``{"text": ...}`` to a Slack-compatible webhook from a background thread.

    The webhook handler only enqueues, so a slow chat service never delays Alertmanager.
    Failures are logged and counted; they never stop the receiver.
    """

    def __init__(
        self, url: str, *, metrics: Metrics, timeout_s: float = 10.0, capacity: int = 1000
    ) -> None:
        self.url = url
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name="notify-forward", daemon=True)
        self._thread.start()

    def submit(self, text: str) -> None:
        try:
            self._queue.put_nowait(text)
        except queue.Full:
            self._metrics.forwarded.labels(result="dropped").inc()
            log.warning("forward queue full, message dropped", extra={"url": self.url})

    def close(self, *, timeout_s: float = 10.0) -> None:
        """Send what is queued (within ``timeout_s``), then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while (text := self._queue.get()) is not None:
            self._post(text)

    def _post(self, text: str) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps({"text": text}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # HTTPError is a URLError: a 4xx/5xx answer is a failure too.
            self._metrics.forwarded.labels(result="error").inc()
            log.warning("forwarding failed", extra={"url": self.url, "error": str(exc)})
            return
        self._metrics.forwarded.labels(result="ok").inc()


class Notifier:
    """What happens to a received payload: print, append to the JSONL file, forward."""

    def __init__(
        self,
        *,
        jsonl_path: Path,
        metrics: Metrics,
        forwarder: Forwarder | None = None,
        out: IO[str] | None = None,
    ) -> None:
        self.jsonl_path = jsonl_path
        self._metrics = metrics
        self._forwarder = forwarder
        self._out = out if out is not None else sys.stdout
        self._lock = threading.Lock()

    def handle(self, payload: Mapping[str, Any]) -> list[str]:
        """Record every alert of ``payload``; returns the lines. Raises OSError if not stored."""
        now = datetime.now(UTC)
        alerts: Sequence[Mapping[str, Any]] = payload["alerts"]
        records = [notification_record(a, payload, received_at=now) for a in alerts]
        lines = [r["text"] for r in records]
        with self._lock:  # whole lines from concurrent requests, never interleaved
            self.jsonl_path.parent.mkdir(parents=True, exist_ok=True)
            with self.jsonl_path.open("a", encoding="utf-8") as f:
                f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            for line in lines:
                print(line, file=self._out, flush=True)
        for record in records:
            self._metrics.received.labels(status=record["status"]).inc()
        if self._forwarder is not None and lines:
            self._forwarder.submit("\n".join(lines))
        return lines


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
        max_body_bytes: int = 1_000_000,
        out: IO[str] | None = None,
    ) -> None:
        self.metrics = Metrics()
        self.forwarder = (
            Forwarder(forward_url, metrics=self.metrics) if forward_url else None
        )
        self.notifier = Notifier(
            jsonl_path=jsonl_path, metrics=self.metrics, forwarder=self.forwarder, out=out
        )
        self._secret = secret.encode() if secret else None
        self._max_body_bytes = max_body_bytes
        super().__init__(host=host, port=port, registry=self.metrics.registry)

    def stop(self) -> None:
        super().stop()
        if self.forwarder is not None:
            self.forwarder.close()

    def authorized(self, header: str | None) -> bool:
        """True when no secret is configured or ``header`` is ``Bearer <secret>``."""
        if self._secret is None:
            return True
        scheme, _, token = (header or "").partition(" ")
        # compare_digest on both branches: the time taken says nothing about the secret.
        ok = hmac.compare_digest(token.strip().encode(), self._secret)
        return ok and scheme.lower() == "bearer"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self
        base = super()._handler_class()

        class Handler(base):  # type: ignore[valid-type,misc]
            timeout = 30  # seconds per socket read: a stalled client cannot hold a thread

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
