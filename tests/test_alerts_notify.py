"""``sentimon notify``: formatting, and the real HTTP receiver (auth, limits, JSONL, forward)."""

from __future__ import annotations

import html
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sentimon.alerts.notify import (
    NotifyServer,
    PayloadError,
    describe,
    notification_record,
    parse_payload,
)

SPIKE = {
    "status": "firing",
    "labels": {
        "alertname": "NegativeSentimentSpike", "topic": "Macro", "severity": "warning",
        "job": "sentimon-monitor", "instance": "127.0.0.1:19101",
    },
    "annotations": {
        "summary": "Negative sentiment spike on topic Macro: negative share 45% vs baseline 12%"
        " over 120 records in the short window (z=4.2).",
        "dashboard_url": "http://127.0.0.1:3000/d/sentimon-topics?var-topic=Macro",
    },
    "startsAt": "2026-11-25T03:00:00.000Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://127.0.0.1:19090/graph?g0.expr=sentimon_topic_spike+%3D%3D+1",
    "fingerprint": "a1b2c3d4e5f60718",
}
TICKER_RESOLVED = {
    "status": "resolved",
    "labels": {"alertname": "TickerNegativeSpike", "ticker": "TSLA", "severity": "warning"},
    "annotations": {"summary": "Negative sentiment spike on ticker TSLA: negative share 62%"},
    "startsAt": "2026-11-25T02:00:00Z",
    "endsAt": "2026-11-25T02:40:00Z",
    "fingerprint": "0f0e0d0c0b0a0908",
}


def webhook(*alerts: dict[str, Any]) -> dict[str, Any]:
    """An Alertmanager (0.25) webhook body, version 4."""
    return {
        "version": "4", "groupKey": '{}:{alertname="NegativeSentimentSpike"}',
        "truncatedAlerts": 0, "status": "firing", "receiver": "sentimon-notify",
        "groupLabels": {"alertname": "NegativeSentimentSpike"}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://127.0.0.1:19094",
        "alerts": list(alerts),
    }


# --- formatting -------------------------------------------------------------------------------

def test_describe_firing_topic_spike() -> None:
    assert describe(SPIKE) == (
        "[FIRING] NegativeSentimentSpike topic=Macro job=sentimon-monitor "
        "instance=127.0.0.1:19101 (warning): Negative sentiment spike on topic Macro: negative "
        "share 45% vs baseline 12% over 120 records in the short window (z=4.2). "
        "http://127.0.0.1:3000/d/sentimon-topics?var-topic=Macro"
    )


def test_describe_resolved_ticker_spike() -> None:
    assert describe(TICKER_RESOLVED) == (
        "[RESOLVED] TickerNegativeSpike ticker=TSLA (warning): Negative sentiment spike on "
        "ticker TSLA: negative share 62% (resolved at 2026-11-25T02:40:00Z)"
    )


def test_describe_copes_with_a_bare_alert() -> None:
    assert describe({"labels": {}}) == "[UNKNOWN] (unnamed alert)"
    multi_line = {"status": "firing", "labels": {"alertname": "X", "kind": "news"},
                  "annotations": {"description": "two\n  lines"}}
    assert describe(multi_line) == "[FIRING] X kind=news: two lines"


def test_notification_record_keeps_labels_and_times() -> None:
    from datetime import UTC, datetime

    rec = notification_record(SPIKE, webhook(SPIKE), received_at=datetime(2026, 1, 2, tzinfo=UTC))
    assert rec["received_at"] == "2026-01-02T00:00:00Z"
    assert rec["status"] == "firing" and rec["alertname"] == "NegativeSentimentSpike"
    assert rec["labels"]["topic"] == "Macro"
    assert rec["fingerprint"] == "a1b2c3d4e5f60718" and rec["receiver"] == "sentimon-notify"
    assert rec["text"] == describe(SPIKE)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"alerts": {}}', "'alerts' must be a list"),
        (b'{"alerts": [{"status": "firing"}]}', r"alerts\[0\]"),
        (b'{"alerts": [{"labels": {}, "annotations": []}]}', r"alerts\[0\]\.annotations"),
    ],
)
def test_parse_payload_rejects(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_payload(body)


# --- the real receiver ------------------------------------------------------------------------

class Receiver:
    def __init__(self, tmp_path: Path, **options: Any) -> None:
        self.out = io.StringIO()
        self.jsonl = tmp_path / "n" / "notifications.jsonl"
        self.server = NotifyServer(
            host="127.0.0.1", port=0, jsonl_path=self.jsonl, out=self.out, **options
        ).start()
        self.url = f"http://127.0.0.1:{self.server.port}"

    def post(
        self, body: bytes | dict[str, Any], *, path: str = "/alertmanager",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request("POST", path, body=data, headers={
                "Content-Type": "application/json", **(headers or {})
            })
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def records(self) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        return [json.loads(line) for line in self.jsonl.read_text().splitlines()]

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(self.url, name, **labels)


def metric_value(url: str, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{want} not in /metrics:\n{text}")


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(tmp_path, max_body_bytes=10_000)
    yield r
    r.server.stop()


def test_receiver_prints_stores_and_counts_alerts(receiver: Receiver) -> None:
    status, body = receiver.post(webhook(SPIKE, TICKER_RESOLVED))
    assert (status, body) == (200, {"received": 2})
    assert receiver.out.getvalue().splitlines() == [describe(SPIKE), describe(TICKER_RESOLVED)]
    records = receiver.records()
    assert [r["status"] for r in records] == ["firing", "resolved"]
    assert records[0]["labels"]["topic"] == "Macro"
    assert records[1]["labels"]["ticker"] == "TSLA"
    assert receiver.metric("sentimon_notify_alerts_received_total", status="firing") == 1
    assert receiver.metric("sentimon_notify_alerts_received_total", status="resolved") == 1
    # A second notification is appended, not written over.
    assert receiver.post(webhook(SPIKE))[0] == 200
    assert len(receiver.records()) == 3
    assert receiver.metric("sentimon_notify_alerts_received_total", status="firing") == 2


def test_receiver_serves_health(receiver: Receiver) -> None:
    with urllib.request.urlopen(f"{receiver.url}/healthz", timeout=5) as resp:
        assert resp.status == 200


def test_bad_json_is_400_and_nothing_stored(receiver: Receiver) -> None:
    status, body = receiver.post(b'{"alerts": [')
    assert status == 400 and "not valid JSON" in body["error"]
    status, body = receiver.post({"alerts": "none"})
    assert status == 400 and "list" in body["error"]
    assert receiver.records() == [] and receiver.out.getvalue() == ""
    assert receiver.metric("sentimon_notify_requests_rejected_total", reason="bad_payload") == 2


def test_other_paths_are_404(receiver: Receiver) -> None:
    assert receiver.post(webhook(SPIKE), path="/")[0] == 404
    assert receiver.records() == []


def test_oversize_body_is_refused_before_it_is_read(receiver: Receiver) -> None:
    # Announce 50 MB and send none of it: a receiver that read the body would wait for it.
    with socket.create_connection(("127.0.0.1", receiver.server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n{"
        )
        started = time.monotonic()
        reply = sock.recv(4096).decode()
    assert reply.startswith("HTTP/1.0 413") or reply.startswith("HTTP/1.1 413"), reply
    assert time.monotonic() - started < 2
    # Just over the configured limit, sent in full, is refused the same way.
    status, _ = receiver.post(b"x" * 10_001)
    assert status == 413
    assert receiver.records() == []


def test_missing_content_length_is_411(receiver: Receiver) -> None:
    with socket.create_connection(("127.0.0.1", receiver.server.port), timeout=5) as sock:
        sock.sendall(b"POST /alertmanager HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"\r\n2\r\n{}\r\n0\r\n\r\n")
        assert b" 411 " in sock.recv(4096)


def test_shared_secret(tmp_path: Path) -> None:
    r = Receiver(tmp_path, secret="s3cr3t")
    try:
        assert r.post(webhook(SPIKE))[0] == 401
        assert r.post(webhook(SPIKE), headers={"Authorization": "Bearer wrong"})[0] == 401
        assert r.post(webhook(SPIKE), headers={"Authorization": "Basic s3cr3t"})[0] == 401
        assert r.post(webhook(SPIKE), headers={"Authorization": "Bearer s3cr3tX"})[0] == 401
        assert r.records() == []
        assert r.metric("sentimon_notify_requests_rejected_total", reason="unauthorized") == 4
        assert r.post(webhook(SPIKE), headers={"Authorization": "Bearer s3cr3t"})[0] == 200
        assert len(r.records()) == 1
    finally:
        r.server.stop()


def test_unwritable_file_is_500_so_alertmanager_retries(tmp_path: Path) -> None:
    r = Receiver(tmp_path)
    r.jsonl.mkdir(parents=True)  # a directory where the file should be
    try:
        status, body = r.post(webhook(SPIKE))
        assert status == 500 and "cannot store" in body["error"]
        assert r.metric("sentimon_notify_alerts_received_total", status="firing") == 0
    finally:
        r.server.stop()


class ChatServer:
    """A local Slack-compatible endpoint: answers each POST as ``script`` says, then 200.

    A script step is an HTTP status, or ``"break"``: headers promising 100 bytes, 2 sent,
    connection closed (a response cut off mid-read).
    """

    def __init__(self, *, script: list[int | str] | None = None, code: int = 200) -> None:
        self.received: list[dict[str, Any]] = []
        self.event = threading.Event()
        self.script = list(script or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers["Content-Length"])
                outer.received.append(json.loads(self.rfile.read(n)))
                step = outer.script.pop(0) if outer.script else code
                if step == "break":
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b"ok")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_response(int(step))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                outer.event.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/T/B/X"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_forwards_to_a_slack_compatible_webhook(tmp_path: Path) -> None:
    chat = ChatServer()
    r = Receiver(tmp_path, forward_url=chat.url)
    try:
        assert r.post(webhook(SPIKE, TICKER_RESOLVED))[0] == 200
        assert chat.event.wait(10)
        [sent] = chat.received
        assert sent["text"] == describe(SPIKE) + "\n" + describe(TICKER_RESOLVED)
        headers = [b["text"]["text"] for b in sent["blocks"] if b["type"] == "header"]
        assert headers == ["FIRING NegativeSentimentSpike: Macro", "RESOLVED TickerNegativeSpike: TSLA"]
        wait_for(lambda: r.metric("sentimon_notify_forwarded_total", result="ok") == 1)
    finally:
        r.server.stop()
        chat.close()


@pytest.mark.parametrize("script", [[500, 503, 429], ["break", "break"]], ids=["5xx", "broken_read"])
def test_forward_retries_until_the_service_recovers(tmp_path: Path, script: list[int | str]) -> None:
    chat = ChatServer(script=list(script))
    r = Receiver(tmp_path, forward_url=chat.url, forward_attempts=5, forward_backoff_s=0.05)
    try:
        started = time.monotonic()
        assert r.post(webhook(SPIKE))[0] == 200
        wait_for(lambda: r.metric("sentimon_notify_forwarded_total", result="ok") == 1)
        assert len(chat.received) == len(script) + 1  # each failure retried once, then done
        assert all(m == chat.received[0] for m in chat.received)
        reason = "broken_response" if script[0] == "break" else "http_status"
        assert r.metric("sentimon_notify_forward_failures_total", reason=reason) == len(script)
        assert r.metric("sentimon_notify_forwarded_total", result="error") == 0
        # Backoff doubles: 0.05 + 0.1 (+ 0.2) seconds at least were waited.
        assert time.monotonic() - started >= 0.05 * (2 ** len(script) - 1)
        assert r.server.forwarder is not None and r.server.forwarder.alive
    finally:
        r.server.stop()
        chat.close()


@pytest.mark.parametrize("broken", ["refused", "http_500", "broken_read"])
def test_forward_gives_up_after_bounded_tries_counted_and_logged(
    tmp_path: Path, broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    chat = ChatServer(code=500, script=["break"] * 10 if broken == "broken_read" else None)
    if broken == "refused":
        chat.close()  # nothing listens there any more
    r = Receiver(tmp_path, forward_url=chat.url, forward_attempts=3, forward_backoff_s=0.05)
    reason = {"refused": "network", "http_500": "http_status", "broken_read": "broken_response"}
    try:
        with caplog.at_level("WARNING", logger="sentimon.alerts.forward"):
            assert r.post(webhook(SPIKE))[0] == 200
            wait_for(lambda: r.metric("sentimon_notify_forwarded_total", result="error") == 1)
            assert r.metric("sentimon_notify_forward_failures_total",
                            reason=reason[broken]) == 3
            if broken != "refused":
                assert len(chat.received) == 3
            assert len(r.records()) == 1  # still stored
            given_up = [rec for rec in caplog.records if "given up" in rec.getMessage()]
            assert len(given_up) == 1 and given_up[0].levelname == "ERROR"
            assert "NegativeSentimentSpike" in given_up[0].__dict__["text"]
            # The thread lives on: the next alert is tried again, three times.
            assert r.post(webhook(TICKER_RESOLVED))[0] == 200
            wait_for(lambda: r.metric("sentimon_notify_forwarded_total", result="error") == 2)
            assert r.metric("sentimon_notify_forward_failures_total", reason=reason[broken]) == 6
            assert r.metric("sentimon_notify_forwarded_total", result="ok") == 0
    finally:
        r.server.stop()
        if broken != "refused":
            chat.close()


def test_forward_does_not_retry_a_client_error(tmp_path: Path) -> None:
    chat = ChatServer(code=400)  # Slack's invalid_payload: the same message fails again
    r = Receiver(tmp_path, forward_url=chat.url, forward_attempts=5, forward_backoff_s=0.05)
    try:
        assert r.post(webhook(SPIKE))[0] == 200
        wait_for(lambda: r.metric("sentimon_notify_forwarded_total", result="error") == 1)
        assert len(chat.received) == 1
    finally:
        r.server.stop()
        chat.close()


def test_cli_daemon_receives_and_stops_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    jsonl = tmp_path / "out.jsonl"
    env = {**os.environ, "SENTIMON_HOME": str(tmp_path), "SENTIMON_NOTIFY__SECRET": "k"}
    env.pop("SENTIMON_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentimon", "notify", "--port", str(port), "--jsonl", str(jsonl)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return urllib.request.urlopen(f"{url}/healthz", timeout=1).status == 200
            except OSError:
                return False

        wait_for(up, timeout_s=30)
        req = urllib.request.Request(
            f"{url}/alertmanager", data=json.dumps(webhook(SPIKE)).encode(), method="POST",
            headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
        assert metric_value(url, "sentimon_notify_alerts_received_total", status="firing") == 1
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.splitlines() == [describe(SPIKE)]
    assert json.loads(jsonl.read_text())["labels"]["topic"] == "Macro"
    assert "notify receiver stopped" in err


# --- the whole alerting path with real servers -------------------------------------------------

def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


TOPIC = "Stock Movement"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser_text(url: str, *, screenshot: Path | None = None) -> str:
    """The text of ``url`` as headless Chromium renders it (and a screenshot of it)."""
    if CHROMIUM is None:
        pytest.fail("chromium not installed: run scripts/setup.sh dev")
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--hide-scrollbars", "--virtual-time-budget=15000"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    if screenshot is not None:
        subprocess.run([*base, f"--screenshot={screenshot}", "--window-size=1100,1500", url],
                       capture_output=True, timeout=120, check=True)
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def _scored(i: int, *, ts: float, topic: str, negative: bool, tickers: list[str]) -> bytes:
    from datetime import UTC, datetime

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")

    probs = {"negative": 0.9, "neutral": 0.05, "positive": 0.05} if negative else \
        {"negative": 0.05, "neutral": 0.85, "positive": 0.1}
    return json.dumps({
        "id": f"e2e-{i}", "ts": iso(ts), "kind": "news", "source": "test", "tickers": tickers,
        "topic": topic, "topic_prob": 0.9, "sentiment": "negative" if negative else "neutral",
        "sentiment_probs": probs, "score": probs["positive"] - probs["negative"],
        "model": "test@0", "scored_at": iso(time.time()),
        "text": f"{'Tesla recalls' if negative else 'Tesla ships'} {i}: {topic.lower()} news",
    }).encode()


@pytest.mark.integration
def test_spike_reaches_notify_through_real_monitor_prometheus_and_alertmanager(
    kafka_settings, topics, tmp_path: Path
) -> None:
    """Scored records -> `sentimon monitor` -> Prometheus (rendered rules, scaled-down
    `for:`) -> Alertmanager (rendered config, bearer secret) -> `sentimon notify`."""
    from pydantic import SecretStr

    from sentimon.kafka import make_producer
    from sentimon.stack.manager import Stack

    prom_port, am_port, monitor_port, scorer_port, notify_port = _free_ports(5)
    base = kafka_settings
    settings = base.model_copy(update={
        "home": tmp_path / "home",
        "topics": topics,
        "stack": base.stack.model_copy(update={
            "prometheus_port": prom_port, "alertmanager_port": am_port, "scrape_interval": "1s"}),
        "scorer": base.scorer.model_copy(update={"metrics_port": scorer_port}),
        "monitor": base.monitor.model_copy(update={
            "metrics_port": monitor_port, "short_window_s": 60, "baseline_window_s": 3600,
            "min_volume": 20, "detection_horizon_s": 120, "baseline_slot_s": 60,
            "min_history_s": 300, "history_s": 3600}),
        "notify": base.notify.model_copy(update={
            "port": notify_port, "secret": SecretStr("e2e-secret")}),
        "alerts": base.alerts.model_copy(update={
            "spike_for": "3s", "group_wait": "1s", "group_interval": "1s",
            "dashboard_url": "http://grafana.test/d/sentimon-topics"}),
    })

    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMON_")}
    env |= {
        "SENTIMON_HOME": str(settings.home),
        "SENTIMON_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "SENTIMON_TOPICS__SCORED": topics.scored,
        "SENTIMON_MONITOR__GROUP_ID": f"monitor-{topics.scored}",
        "SENTIMON_MONITOR__METRICS_PORT": str(monitor_port),
        "SENTIMON_MONITOR__SHORT_WINDOW_S": "60",
        "SENTIMON_MONITOR__BASELINE_WINDOW_S": "3600",
        "SENTIMON_MONITOR__MIN_VOLUME": "20",
        # The detector on a 50-minute history (1-second buckets).
        "SENTIMON_MONITOR__DETECTION_HORIZON_S": "120",
        "SENTIMON_MONITOR__BASELINE_SLOT_S": "60",
        "SENTIMON_MONITOR__MIN_HISTORY_S": "300",
        "SENTIMON_MONITOR__HISTORY_S": "3600",
        "SENTIMON_NOTIFY__PORT": str(notify_port),
        "SENTIMON_NOTIFY__SECRET": "e2e-secret",
        "SENTIMON_NOTIFY__PROMETHEUS_URL": f"http://127.0.0.1:{prom_port}",
    }
    jsonl = tmp_path / "notifications.jsonl"
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("monitor", "notify")}
    procs = {
        "monitor": subprocess.Popen([sys.executable, "-m", "sentimon", "monitor"], env=env,
                                    stdout=logs["monitor"], stderr=subprocess.STDOUT),
        "notify": subprocess.Popen(
            [sys.executable, "-m", "sentimon", "notify", "--jsonl", str(jsonl)], env=env,
            stdout=logs["notify"], stderr=subprocess.STDOUT),
    }
    stack = Stack(settings)
    try:
        stack.up(["alertmanager", "prometheus"], timeout_s=60)
        # A quiet baseline over the last 50 minutes, then a burst of negatives in the
        # short window, for a topic and a watchlist ticker.
        now = time.time()
        producer = make_producer(settings.kafka, client_suffix="e2e-test")
        for i in range(300):
            producer.send(topics.scored, key=TOPIC.encode(), value=_scored(
                i, ts=now - 3000 + i * 9, topic=TOPIC, negative=i % 10 == 0,
                tickers=["TSLA"]))
        for i in range(300, 360):
            producer.send(topics.scored, key=TOPIC.encode(), value=_scored(
                i, ts=now - 30 + (i - 300) * 0.5, topic=TOPIC, negative=i % 5 != 0,
                tickers=["TSLA"]))
        producer.flush(30)
        producer.close()

        # ScorerDown (no scorer runs here) would inhibit spikes only after its 2m `for:`.
        deadline = time.monotonic() + 90
        records: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            for name, proc in procs.items():
                assert proc.poll() is None, (
                    f"{name} exited: " + (tmp_path / f"{name}.log").read_text()[-3000:])
            if jsonl.exists():
                records = [json.loads(line) for line in jsonl.read_text().splitlines()]
            names = {r["alertname"] for r in records if r["status"] == "firing"}
            if {"NegativeSentimentSpike", "TickerNegativeSpike"} <= names:
                break
            time.sleep(0.5)
        by_name = {r["alertname"]: r for r in records if r["status"] == "firing"}
        assert "NegativeSentimentSpike" in by_name, (
            records, (tmp_path / "notify.log").read_text()[-3000:])
        assert "TickerNegativeSpike" in by_name, records
        spike = by_name["NegativeSentimentSpike"]
        assert spike["labels"]["topic"] == TOPIC
        # A topic with a space: the links are URL-encoded.
        assert spike["annotations"]["dashboard_url"] == (
            "http://grafana.test/d/sentimon-topics?var-topic=Stock+Movement")
        summary = spike["annotations"]["summary"]
        assert "n/a" not in summary, summary
        assert "(negative share 80% vs 10% usually, over 60 records)" in summary, summary
        figures = spike["figures"]
        assert {k: figures[k] for k in ("negative_share", "baseline_share", "volume")} == \
            pytest.approx({"negative_share": 0.8, "baseline_share": 0.1, "volume": 60}, abs=0.005)
        assert figures["zscore"] > 3
        # The detector's own figures: evidence past its threshold, negatives far above baseline.
        assert figures["evidence"] >= figures["threshold"] > 0
        assert figures["observed_negatives"] > 5 * figures["expected_negatives"]
        notify_url = f"http://127.0.0.1:{notify_port}"
        assert spike["links"]["report"] == (
            f"{notify_url}/report.png?topic=Stock%20Movement&since=3h")
        assert spike["links"]["page"] == f"{notify_url}/"
        # Prometheus's --web.external-url: the link opens the loopback Prometheus.
        assert spike["generator_url"].startswith(f"http://127.0.0.1:{prom_port}/graph?"), spike
        with urllib.request.urlopen(spike["generator_url"], timeout=10) as resp:
            assert resp.status == 200
        assert by_name["TickerNegativeSpike"]["labels"]["ticker"] == "TSLA"
        assert by_name["TickerNegativeSpike"]["tickers"] == ["TSLA"]
        # Self-contained: the most negative texts of the burst, fetched by notify from the
        # monitor's /exemplars (notify.monitor_url defaults to the monitor's metrics port).
        for rec in by_name.values():
            quoted = rec["exemplars"]
            assert len(quoted) == 5, rec
            assert all(q["text"].startswith("Tesla recalls ") and q["source"] == "test"
                       and q["tickers"] == ["TSLA"] and q["p_negative"] == 0.9
                       for q in quoted), quoted
            # Equal P(negative): the newest first, all from the burst (ids 300-359).
            ids = [int(q["text"].split()[2].rstrip(":")) for q in quoted]
            assert ids == sorted(ids, reverse=True) and min(ids) >= 300, ids
            assert rec["ticker_mentions"][0][0] == "TSLA", rec
            assert rec["exemplars_source"]["url"].startswith(f"http://127.0.0.1:{monitor_port}/")
        assert metric_value(f"http://127.0.0.1:{notify_port}",
                            "sentimon_notify_exemplar_fetches_total", result="ok") >= 2
        assert f"[FIRING] NegativeSentimentSpike topic={TOPIC}" in (
            tmp_path / "notify.log").read_text()

        # The report PNG of the topic, drawn by the notify daemon from the real Prometheus.
        auth = {"Authorization": "Bearer e2e-secret"}
        req = urllib.request.Request(spike["links"]["report"], headers=auth)
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.headers["Content-Type"] == "image/png"
            assert resp.read().startswith(b"\x89PNG\r\n\x1a\n")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{notify_url}/", timeout=10)
        assert refused.value.code == 401

        # The page in a real browser: what a person without Slack or Grafana sees.
        shot = tmp_path / "notify-page.png"
        text = browser_text(f"http://viewer:e2e-secret@127.0.0.1:{notify_port}/",
                            screenshot=shot)
        assert "sentimon alerts" in text
        assert f"FIRING NegativeSentimentSpike: {TOPIC}" in text, text
        assert "FIRING TickerNegativeSpike: TSLA" in text, text
        assert "negative share 80% vs baseline 10%, 60 records in the short window" in text, text
        assert "Tickers: $TSLA" in text
        assert "Tesla recalls 359: stock movement news" in text, text
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
        if os.environ.get("SENTIMON_SCREENSHOT_OUT"):
            shutil.copyfile(shot, os.environ["SENTIMON_SCREENSHOT_OUT"])
    finally:
        stack.down(["prometheus", "alertmanager"])
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for f in logs.values():
            f.close()
