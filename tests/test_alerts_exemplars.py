"""``sentimon notify`` fills firing spike alerts with the monitor's exemplars, never waiting long.

The monitor here is the real ``Monitor.exemplars_route`` on a real HTTP server, fed through
the daemon's own record path (no Kafka needed for that); the failure cases are real sockets
that refuse, never answer, or answer 404.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka.structs import TopicPartition

from sentimon.alerts.cli import monitor_url
from sentimon.alerts.message import slack_message
from sentimon.alerts.page import render_page
from sentimon.config import MonitorSettings, NotifySettings, Settings
from sentimon.http import DaemonHTTPServer
from sentimon.monitor.daemon import Monitor
from tests.test_alerts_notify import SPIKE as _SPIKE
from tests.test_alerts_notify import TICKER_RESOLVED as _TICKER
from tests.test_alerts_notify import Receiver, webhook
from tests.test_monitor_exemplars import T0, _Msg, _scored

TOPIC = "Macro"
SPIKE: dict[str, Any] = dict(_SPIKE)
TICKER_RESOLVED: dict[str, Any] = dict(_TICKER)


@pytest.fixture
def monitor() -> Iterator[str]:
    """A real monitor endpoint holding a burst of negative Macro news about ACME."""
    settings = Settings(monitor=MonitorSettings(
        watchlist=["ACME"], short_window_s=60, baseline_window_s=600, history_s=600,
        baseline_slot_s=60, detection_horizon_s=120, min_history_s=120))
    mon = Monitor(settings, clock=lambda: T0 + 10_000)
    tp = TopicPartition("sentimon.scored", 0)
    values = [_scored(i, T0 + 2 * i, topic=TOPIC, p=0.05, text=f"calm {i}") for i in range(300)]
    values += [_scored(1000 + i, T0 + 600 + i, topic=TOPIC, p=0.7 + i / 100,
                       tickers=("ACME",), text=f"ACME recalls every car it sold <{i}> & more")
               for i in range(20)]
    for offset, value in enumerate(values):
        mon._handle(tp, _Msg(offset, value))
    server = DaemonHTTPServer(host="127.0.0.1", port=0, registry=mon.registry,
                              routes={"/exemplars": mon.exemplars_route}).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def receiver(tmp_path: Path, url: str, **options: Any) -> Receiver:
    return Receiver(tmp_path, monitor_url=url, **options)


def test_firing_spike_gets_texts_tickers_and_figures_in_jsonl_page_and_slack(
        tmp_path: Path, monitor: str) -> None:
    r = receiver(tmp_path, monitor)
    try:
        code, _ = r.post(webhook(SPIKE, TICKER_RESOLVED))
        assert code == 200
        spike, resolved = r.records()
        texts = [e["text"] for e in spike["exemplars"]]
        assert texts == [f"ACME recalls every car it sold <{i}> & more" for i in (19, 18, 17, 16, 15)]
        first = spike["exemplars"][0]
        assert first["source"] == "wire1" and first["tickers"] == ["ACME"]
        assert first["ts"] == "2026-01-05T00:10:19.000Z" and first["p_negative"] == 0.89
        assert spike["tickers"] == ["ACME"] and spike["ticker_mentions"] == [["ACME", 20]]
        # The annotations of SPIKE carry no figures: the monitor's fill them in.
        f = spike["figures"]
        assert f["observed_negatives"] > f["expected_negatives"] > 0
        assert f["evidence"] >= f["threshold"] > 0 and f["volume"] == 20 + 20  # the burst + calm ones
        assert spike["exemplars_source"]["url"] == f"{monitor}/exemplars?topic=Macro"
        assert "exemplars_error" not in spike
        # A resolved alert is not enriched (its burst is over).
        assert resolved["exemplars"] == [] and "exemplars_source" not in resolved
        assert r.metric("sentimon_notify_exemplar_fetches_total", result="ok") == 1

        page = render_page(list(reversed(r.records())))
        assert "ACME recalls every car it sold &lt;19&gt; &amp; more" in page
        assert "wire1 · 2026-01-05T00:10:19.000Z · $ACME · P(negative) 0.89" in page
        blocks = slack_message(r.records())["blocks"]
        quotes = [b["text"]["text"] for b in blocks
                  if b["type"] == "section" and "text" in b and b["text"]["text"].startswith(">")]
        assert quotes[0].startswith(">ACME recalls every car it sold &lt;19&gt; &amp; more")
        assert len(quotes) == 5
    finally:
        r.server.stop()


def test_an_exemplars_annotation_or_another_alert_is_not_fetched_for(
        tmp_path: Path, monitor: str) -> None:
    given = {**SPIKE, "annotations": {**SPIKE["annotations"], "exemplars": json.dumps(
        [{"text": "from the rule", "source": "s", "ts": "t", "tickers": []}])}}
    lag = {"status": "firing", "labels": {"alertname": "ConsumerLagGrowing",
                                          "topic": "sentimon.news"}}
    r = receiver(tmp_path, monitor)
    try:
        assert r.post(webhook(given, lag))[0] == 200
        rec, lag_rec = r.records()
        assert [e["text"] for e in rec["exemplars"]] == ["from the rule"]
        assert "exemplars_source" not in lag_rec
        assert r.metric("sentimon_notify_exemplar_fetches_total", result="ok") == 0
    finally:
        r.server.stop()


def test_ticker_spike_asks_for_the_ticker_series(tmp_path: Path, monitor: str) -> None:
    alert = {**TICKER_RESOLVED, "status": "firing",
             "labels": {**TICKER_RESOLVED["labels"], "ticker": "ACME"}}
    r = receiver(tmp_path, monitor)
    try:
        assert r.post(webhook(alert))[0] == 200
        (rec,) = r.records()
        assert rec["exemplars_source"]["url"].endswith("/exemplars?ticker=ACME")
        assert len(rec["exemplars"]) == 5 and rec["tickers"] == ["ACME"]
    finally:
        r.server.stop()


def _silent_port() -> tuple[socket.socket, int]:
    """A socket that accepts connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s, s.getsockname()[1]


def test_a_monitor_that_never_answers_delays_the_notification_by_the_timeout_only(
        tmp_path: Path) -> None:
    silent, port = _silent_port()
    r = receiver(tmp_path, f"http://127.0.0.1:{port}", exemplar_timeout_s=1.0)
    try:
        alerts = [{**SPIKE, "labels": {**SPIKE["labels"], "topic": t}}
                  for t in ("Macro", "Earnings", "Markets")]
        start = time.monotonic()
        code, _ = r.post(webhook(*alerts))
        took = time.monotonic() - start
        assert code == 200
        # In parallel, given up together: one timeout, not three one after the other.
        assert 1.0 <= took < 2.5, f"{took:.2f}s"
        recs = r.records()
        assert len(recs) == 3 and all(rec["exemplars"] == [] for rec in recs)
        assert all(rec["exemplars_error"] == "no answer within 1 s" for rec in recs)
        assert r.metric("sentimon_notify_exemplar_fetches_total", result="timeout") == 3
        assert "[FIRING] NegativeSentimentSpike topic=Macro" in r.out.getvalue()
    finally:
        r.server.stop()
        silent.close()


def test_a_monitor_that_is_down_or_does_not_know_the_series_is_counted(
        tmp_path: Path, monitor: str) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    down = receiver(tmp_path / "down", f"http://127.0.0.1:{closed}")
    unknown = receiver(tmp_path / "unknown", monitor)
    try:
        assert down.post(webhook(SPIKE))[0] == 200
        (rec,) = down.records()
        assert rec["exemplars"] == [] and "refused" in rec["exemplars_error"]
        assert down.metric("sentimon_notify_exemplar_fetches_total", result="error") == 1

        other = {**SPIKE, "labels": {**SPIKE["labels"], "topic": "Nope"}}
        assert unknown.post(webhook(other))[0] == 200
        (rec,) = unknown.records()
        assert rec["exemplars_error"] == "HTTP 404"
        assert unknown.metric("sentimon_notify_exemplar_fetches_total", result="not_found") == 1
    finally:
        down.server.stop()
        unknown.server.stop()


def test_monitor_url_setting() -> None:
    assert monitor_url(Settings()) == "http://127.0.0.1:19101"
    wild = Settings(monitor=MonitorSettings(metrics_host="0.0.0.0", metrics_port=29101))
    assert monitor_url(wild) == "http://127.0.0.1:29101"
    assert monitor_url(Settings(notify=NotifySettings(monitor_url="http://mon:1/"))) == \
        "http://mon:1/"
    assert monitor_url(Settings(notify=NotifySettings(monitor_url=""))) is None


def test_monitor_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTIMON_NOTIFY__MONITOR_URL", "http://10.0.0.5:19101")
    assert monitor_url(Settings()) == "http://10.0.0.5:19101"
