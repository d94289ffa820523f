"""The daemons' HTTP endpoint: ``/metrics`` (Prometheus), ``/healthz`` and ``/readyz``.

Binds 127.0.0.1 unless configured otherwise. Liveness says the process serves requests;
readiness is a callable supplied by the daemon (e.g. "joined the group and model loaded").
A daemon can add read-only JSON endpoints of its own (``routes``; the monitor's
``/exemplars``) without a server class of its own.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

#: A JSON endpoint: the query string's parameters -> (HTTP status, JSON-serialisable body).
JSONRoute = Callable[[Mapping[str, list[str]]], tuple[int, Any]]


class DaemonHTTPServer:
    """Serve metrics and health checks on a background thread."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ready: Callable[[], bool] = lambda: True,
        registry: CollectorRegistry = REGISTRY,
        routes: Mapping[str, JSONRoute] | None = None,
    ) -> None:
        self._ready = ready
        self._registry = registry
        self._routes = dict(routes or {})
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="http")

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> DaemonHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                route = outer._routes.get(path)
                if route is not None:
                    try:
                        # Blank values kept: ``?market`` is a parameter without a value.
                        code, body = route(urllib.parse.parse_qs(query, keep_blank_values=True))
                    except Exception as exc:  # a broken endpoint must not kill the server
                        log.exception("endpoint failed", extra={"path": path})
                        code, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
                    self._send(code, json.dumps(body, ensure_ascii=False).encode(),
                               "application/json; charset=utf-8")
                elif path == "/metrics":
                    self._send(200, generate_latest(outer._registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._json(200, {"status": "ok"})
                elif path == "/readyz":
                    ok = bool(outer._ready())
                    self._json(200 if ok else 503, {"ready": ok})
                else:
                    self._json(404, {"error": "not found"})

            def _json(self, code: int, body: dict[str, Any]) -> None:
                self._send(code, json.dumps(body).encode(), "application/json")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes every few seconds would drown the daemon's own log

        return Handler
