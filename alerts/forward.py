"""Forwarding notifications to a Slack-compatible webhook, with retries that are bounded.

The webhook handler of ``sentimon notify`` only enqueues, so a slow or broken chat service
never delays Alertmanager. One background thread posts each message; a failed try (refused
connection, timeout, 5xx, 429, a response cut off mid-read) is retried after a wait that
doubles each time (``backoff_s``, at most ``max_backoff_s``), up to ``attempts`` tries. Every
failed try is counted (``sentimon_notify_forward_failures_total{reason}``); a message given up
is counted (``sentimon_notify_forwarded_total{result="error"}``) and logged with its text, and
the alert itself is already in the JSONL file: nothing is lost silently. Any unexpected error
is logged and the thread goes on with the next message.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)

#: ``reason`` values of the failure counter.
FAILURE_REASONS = ("http_status", "network", "broken_response")


class ForwardMetrics:
    """The forwarder's series, registered in the receiver's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.forwarded = Counter(
            "sentimon_notify_forwarded", "Messages forwarded to the chat webhook, by final result "
            "(ok, error = given up after every try, dropped = queue full).",
            ["result"], registry=registry,
        )
        self.failures = Counter(
            "sentimon_notify_forward_failures", "Failed tries to post to the chat webhook, by reason.",
            ["reason"], registry=registry,
        )
        self.queued = Gauge(
            "sentimon_notify_forward_queue", "Messages waiting to be forwarded.", registry=registry
        )
        for result in ("ok", "error", "dropped"):
            self.forwarded.labels(result=result)
        for reason in FAILURE_REASONS:
            self.failures.labels(reason=reason)


@dataclass(frozen=True)
class _Failure(Exception):
    reason: str
    detail: str
    retry: bool
    retry_after_s: float | None = None


class Forwarder:
    """Posts JSON messages (``{"text": ..., "blocks": [...]}``) from a background thread."""

    def __init__(
        self,
        url: str,
        *,
        metrics: ForwardMetrics,
        attempts: int = 6,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        timeout_s: float = 10.0,
        capacity: int = 1000,
    ) -> None:
        if attempts < 1 or backoff_s <= 0:
            raise ValueError("attempts must be >= 1 and backoff_s > 0")
        self.url = url
        self._metrics = metrics
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._timeout_s = timeout_s
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=capacity)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-forward", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the posting thread runs (it only ends on :meth:`close`)."""
        return self._thread.is_alive()

    def submit(self, message: dict[str, Any]) -> None:
        """Queue ``message``; a full queue drops it (counted and logged with its text)."""
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self._metrics.forwarded.labels(result="dropped").inc()
            log.error("forward queue full, message dropped",
                      extra={"text": str(message.get("text", ""))[:500]})
            return
        self._metrics.queued.inc()

    def close(self, *, timeout_s: float = 10.0) -> None:
        """Send what is queued within ``timeout_s``, then stop; pending retries are given up."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            self._stopping.set()
            return
        self._thread.join(timeout_s)
        self._stopping.set()  # a message still in its backoff wait is given up now
        self._thread.join(1.0)

    def _run(self) -> None:
        while (message := self._queue.get()) is not None:
            self._metrics.queued.dec()
            try:
                self._deliver(message)
            except Exception:  # never let the thread die: the next alert must still go out
                self._metrics.forwarded.labels(result="error").inc()
                log.exception("forwarding failed unexpectedly",
                              extra={"text": str(message.get("text", ""))[:500]})

    def _deliver(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, ensure_ascii=False).encode()
        delay = self._backoff_s
        for attempt in range(1, self._attempts + 1):
            try:
                self._post(body)
            except _Failure as failure:
                self._metrics.failures.labels(reason=failure.reason).inc()
                last = attempt == self._attempts or not failure.retry
                log.warning("forward try failed", extra={
                    "attempt": attempt, "of": self._attempts, "reason": failure.reason,
                    "error": failure.detail, "retrying": not last,
                })
                if last:
                    break
                wait = min(self._max_backoff_s, max(delay, failure.retry_after_s or 0.0))
                if self._stopping.wait(wait):
                    break
                delay = min(self._max_backoff_s, delay * 2)
                continue
            self._metrics.forwarded.labels(result="ok").inc()
            return
        self._metrics.forwarded.labels(result="error").inc()
        log.error("forward given up; the alert is in the notifications file", extra={
            "url_host": urllib.parse.urlsplit(self.url).hostname,
            "text": str(message.get("text", ""))[:500],
        })

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            code = exc.code
            # 5xx and 429 are the service's trouble and pass; other 4xx are ours and will not.
            retry_after = _seconds(exc.headers.get("Retry-After") if exc.headers else None)
            raise _Failure("http_status", f"HTTP {code}", retry=code >= 500 or code == 429,
                           retry_after_s=retry_after) from None
        except (http.client.HTTPException, ConnectionResetError) as exc:
            # IncompleteRead, BadStatusLine, RemoteDisconnected: the answer broke off.
            raise _Failure("broken_response", repr(exc), retry=True) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise _Failure("network", str(getattr(exc, "reason", exc)), retry=True) from None


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
