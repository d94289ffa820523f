"""The page of recent alerts and the report PNGs served by ``sentimon notify``."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sentimon.alerts.notify import NotifyServer
from sentimon.alerts.page import render_page
from tests.test_alerts_notify import SPIKE, TICKER_RESOLVED, Receiver, webhook
from tests.test_monitor_report import closed_port


def get(url: str, *, auth: str | None = None) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_page_escapes_and_pictures_each_topic_once() -> None:
    hostile = {**SPIKE, "annotations": {"summary": "<script>alert(1)</script>"}}
    records = [{"status": "firing", "alertname": "NegativeSentimentSpike",
                "labels": r["labels"], "annotations": r["annotations"]}
               for r in (hostile, SPIKE)]
    page = render_page(records)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert page.count("<img") == 1
    assert "src='report.png?topic=Macro&amp;since=3h'" in page
    assert "No alert received yet." in render_page([])


def test_page_lists_recent_alerts_newest_first_and_keeps_them_across_restarts(
    tmp_path: Path,
) -> None:
    r = Receiver(tmp_path)
    try:
        assert r.post(webhook(SPIKE))[0] == 200
        assert r.post(webhook(TICKER_RESOLVED))[0] == 200
        status, ctype, body = get(f"{r.url}/")
        assert status == 200 and ctype.startswith("text/html")
        page = body.decode()
        assert page.index("TickerNegativeSpike: TSLA") < page.index("NegativeSentimentSpike: Macro")
        status, _, body = get(f"{r.url}/alerts.json")
        assert status == 200 and b'"TickerNegativeSpike"' in body
    finally:
        r.server.stop()
    again = NotifyServer(host="127.0.0.1", port=0, jsonl_path=r.jsonl, history=1).start()
    try:
        recent = again.notifier.recent()
        assert [x["alertname"] for x in recent] == ["TickerNegativeSpike"]  # history=1
    finally:
        again.stop()


def test_page_and_reports_need_the_secret_but_metrics_do_not(tmp_path: Path) -> None:
    r = Receiver(tmp_path, secret="s3cr3t")
    try:
        for path in ("/", "/alerts.json", "/report.png?topic=Macro"):
            assert get(r.url + path)[0] == 401
            assert get(r.url + path, auth=basic("me", "wrong"))[0] == 401
        assert get(f"{r.url}/", auth=basic("anyone", "s3cr3t"))[0] == 200
        assert get(f"{r.url}/", auth="Bearer s3cr3t")[0] == 200
        assert get(f"{r.url}/", auth="Basic !!notbase64")[0] == 401
        assert get(f"{r.url}/metrics")[0] == 200
    finally:
        r.server.stop()


def test_report_errors_are_plain_answers(tmp_path: Path) -> None:
    r = Receiver(tmp_path)  # no Prometheus configured
    try:
        assert get(f"{r.url}/report.png?topic=Macro")[0] == 404
    finally:
        r.server.stop()
    r = Receiver(tmp_path, prometheus_url=f"http://127.0.0.1:{closed_port()}")
    try:
        assert get(f"{r.url}/report.png")[0] == 400  # no topic
        assert get(f"{r.url}/report.png?topic=Macro&since=soon")[0] == 400
        assert get(f"{r.url}/report.png?topic=Macro&since=30d")[0] == 400
        status, ctype, body = get(f"{r.url}/report.png?topic=Macro&since=1h")
        assert status == 503 and ctype.startswith("text/plain")
        assert b"unreachable" in body
    finally:
        r.server.stop()


@pytest.mark.parametrize("external", [None, "https://alerts.example/sentimon/"])
def test_links_use_the_external_url(tmp_path: Path, external: str | None) -> None:
    r = Receiver(tmp_path, external_url=external)
    try:
        assert r.post(webhook(SPIKE))[0] == 200
        base = (external or r.url + "/").rstrip("/")
        assert r.records()[0]["links"]["report"] == f"{base}/report.png?topic=Macro&since=3h"
    finally:
        r.server.stop()


def test_history_reads_only_the_end_of_a_long_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from sentimon.alerts import notify

    monkeypatch.setattr(notify, "TAIL_BYTES", 2_000)
    path = tmp_path / "n.jsonl"
    path.write_text("".join(json.dumps({"alertname": f"A{i}", "pad": "x" * 50}) + "\n"
                            for i in range(500)) + "not json\n")
    server = NotifyServer(host="127.0.0.1", port=0, jsonl_path=path, history=5).start()
    try:
        assert [r["alertname"] for r in server.notifier.recent()] == [
            "A499", "A498", "A497", "A496", "A495"]
    finally:
        server.stop()


@pytest.mark.integration
def test_page_in_a_real_browser_after_an_alert_through_the_real_alertmanager(
    tmp_path: Path,
) -> None:
    """An alert posted to a real Alertmanager (rendered config, bearer secret) reaches the
    receiver; headless Chromium opens the page with the secret as its password and shows the
    alert's figures, tickers and exemplar texts. Needs no monitor: Alertmanager's API is the
    source, as Prometheus would be."""
    import json
    import time

    from sentimon.config import Settings
    from sentimon.stack import observability as obs
    from sentimon.stack.manager import Stack
    from tests.conftest import free_ports
    from tests.test_alerts_notify import browser_text
    from tests.test_deploy_render import _post_alerts

    am_port, notify_port = free_ports(2)
    settings = Settings(
        home=tmp_path / "home", stack={"alertmanager_port": am_port},
        notify={"port": notify_port, "secret": "page-secret"},
        alerts={"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
    )
    receiver = NotifyServer(host="127.0.0.1", port=notify_port, jsonl_path=tmp_path / "n.jsonl",
                            secret="page-secret").start()
    stack = Stack(settings)
    exemplar = {"text": "Chipmaker shares plunge after guidance cut", "source": "news",
                "ts": "2026-12-01T20:35:00Z", "tickers": ["NVDA"]}
    try:
        stack.up(["alertmanager"], timeout_s=60)
        _post_alerts(obs.alertmanager_url(settings), [{
            "labels": {"alertname": "NegativeSentimentSpike", "topic": "Stock Movement",
                       "severity": "warning"},
            "annotations": {
                "summary": "Negative sentiment spike on topic Stock Movement",
                "negative_share": "0.6737", "baseline_share": "0.3598", "volume": "331",
                "zscore": "12.4", "tickers": "NVDA,AMD", "exemplars": json.dumps([exemplar]),
            },
        }])
        deadline = time.monotonic() + 30
        while not receiver.notifier.recent():
            assert time.monotonic() < deadline, "Alertmanager never delivered the alert"
            time.sleep(0.2)
        shot = tmp_path / "page.png"
        text = browser_text(f"http://viewer:page-secret@127.0.0.1:{notify_port}/",
                            screenshot=shot)
    finally:
        stack.down(["alertmanager"])
        receiver.stop()
    assert "FIRING NegativeSentimentSpike: Stock Movement" in text, text
    assert "negative share 67% vs baseline 36%, 331 records in the short window, z=12.4" in text
    assert "Tickers: $NVDA, $AMD" in text
    assert "Chipmaker shares plunge after guidance cut" in text
    assert "news · 2026-12-01T20:35:00Z · $NVDA" in text
    assert shot.read_bytes().startswith(b"\x89PNG")
