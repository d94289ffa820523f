"""Rendered Alertmanager config and the shipped example pass the real amtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sentimon.config import ConfigError, Settings
from sentimon.deploy.render import (
    alertmanager_config,
    notify_url,
    render_alertmanager,
    render_grafana_datasource,
)

EXAMPLE = Path(__file__).parent.parent / "deploy" / "alertmanager.example.yml"
AMTOOL = shutil.which("amtool")
needs_amtool = pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (scripts/setup.sh)")


def amtool_check(path: Path) -> subprocess.CompletedProcess[str]:
    assert AMTOOL is not None
    return subprocess.run(
        [AMTOOL, "check-config", str(path)], capture_output=True, text=True, timeout=60
    )


def uncomment_blocks(text: str) -> str:
    """The example with every ``# --- BEGIN``/``# --- END`` block uncommented."""
    out, inside = [], False
    for line in text.splitlines():
        mark = line.strip()
        if mark.startswith("# --- BEGIN"):
            inside = True
            continue
        if mark.startswith("# --- END"):
            inside = False
            continue
        if inside:
            i = line.index("# ")
            line = line[:i] + line[i + 2 :]
        out.append(line)
    assert not inside, "unterminated BEGIN block"
    return "\n".join(out) + "\n"


def test_route_groups_and_timings_come_from_settings() -> None:
    timings = {"group_wait": "5s", "group_interval": "1m", "repeat_interval": "2h"}
    settings = Settings(alerts=timings)
    route = alertmanager_config(settings)["route"]
    assert route["group_by"][:2] == ["alertname", "topic"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "5s", "1m", "2h"
    )


def test_bad_timing_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"alerts\.group_wait"):
        render_alertmanager(Settings(alerts={"group_wait": "half a minute"}))


def test_spikes_are_inhibited_only_by_their_own_monitor_being_down() -> None:
    [rule] = alertmanager_config(Settings())["inhibit_rules"]
    assert rule["source_matchers"] == ['alertname=~"MonitorDown"']
    assert rule["target_matchers"] == ['alertname=~"NegativeSentimentSpike|TickerNegativeSpike"']
    assert rule["equal"] == ["instance"]  # a silent source or another monitor mutes nothing


def test_webhook_points_at_notify_with_the_secret_as_bearer() -> None:
    settings = Settings(notify={"host": "127.0.0.2", "port": 20001, "secret": "hunter2"})
    [receiver] = alertmanager_config(settings)["receivers"]
    [hook] = receiver["webhook_configs"]
    assert hook["url"] == "http://127.0.0.2:20001/alertmanager"
    assert hook["send_resolved"] is True
    assert hook["http_config"] == {"authorization": {"type": "Bearer", "credentials": "hunter2"}}


def test_no_secret_means_no_authorization() -> None:
    [receiver] = alertmanager_config(Settings())["receivers"]
    assert "http_config" not in receiver["webhook_configs"][0]


@pytest.mark.parametrize(
    ("host", "url"),
    [("0.0.0.0", "http://127.0.0.1:19102/alertmanager"), ("::1", "http://[::1]:19102/alertmanager")],
)
def test_notify_url_for_wildcard_and_ipv6_binds(host: str, url: str) -> None:
    assert notify_url(Settings(notify={"host": host})) == url


def test_no_slack_receiver_without_a_slack_url() -> None:
    config = alertmanager_config(Settings())
    assert [r["name"] for r in config["receivers"]] == ["sentimon-notify"]
    assert "routes" not in config["route"]


def test_slack_url_adds_a_slack_receiver_beside_notify() -> None:
    settings = Settings(alerts={"slack_url": "https://hooks.slack.com/services/T/B/X",
                                "slack_channel": "#markets"},
                        notify={"external_url": "http://alerts.example:8080/"})
    config = alertmanager_config(settings)
    assert config["route"]["routes"] == [
        {"receiver": "sentimon-notify", "continue": True}, {"receiver": "sentimon-slack"}]
    [slack] = next(r for r in config["receivers"] if r["name"] == "sentimon-slack")["slack_configs"]
    assert slack["api_url"] == "https://hooks.slack.com/services/T/B/X"
    assert slack["channel"] == "#markets" and slack["send_resolved"] is True
    assert slack["title_link"] == "http://alerts.example:8080/"
    assert "http://alerts.example:8080/report.png?topic={{ . | urlquery }}" in slack["text"]


def test_grafana_datasource_points_at_the_stack_prometheus() -> None:
    doc = yaml.safe_load(render_grafana_datasource(Settings(stack={"prometheus_port": 29090})))
    [ds] = doc["datasources"]
    assert ds["uid"] == "sentimon-prometheus"
    assert ds["url"] == "http://127.0.0.1:29090"


@needs_amtool
def test_amtool_accepts_rendered_config_with_slack(tmp_path: Path) -> None:
    path = tmp_path / "am.yml"
    path.write_text(render_alertmanager(Settings(alerts={"slack_url": "https://hooks.slack.com/x"})))
    proc = amtool_check(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 receivers" in proc.stdout


@needs_amtool
@pytest.mark.parametrize("secret", [None, "s3cr3t"])
def test_amtool_accepts_rendered_config(tmp_path: Path, secret: str | None) -> None:
    settings = Settings(notify={"secret": secret}, alerts={"group_wait": "1s"})
    path = tmp_path / "alertmanager.yml"
    path.write_text(render_alertmanager(settings))
    proc = amtool_check(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 inhibit rules" in proc.stdout and "1 receivers" in proc.stdout


@needs_amtool
def test_amtool_rejects_a_broken_config(tmp_path: Path) -> None:
    # Guards the two tests around it: amtool really validates what it is given.
    path = tmp_path / "broken.yml"
    path.write_text(render_alertmanager(Settings()).replace("sentimon-notify\n", "nobody\n", 1))
    assert amtool_check(path).returncode != 0


@needs_amtool
def test_amtool_accepts_the_example_as_shipped_and_uncommented(tmp_path: Path) -> None:
    proc = amtool_check(EXAMPLE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    full = tmp_path / "full.yml"
    full.write_text(uncomment_blocks(EXAMPLE.read_text()))
    proc = amtool_check(full)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 receivers" in proc.stdout
    config = yaml.safe_load(full.read_text())
    assert {r["name"] for r in config["receivers"]} == {
        "sentimon-notify", "ops-email", "analysts-slack"
    }


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _post_alerts(am_url: str, alerts: list[dict]) -> None:
    import json
    import urllib.request

    req = urllib.request.Request(
        f"{am_url}/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


@pytest.mark.integration
def test_real_alertmanager_delivers_to_notify_and_inhibits_spikes(tmp_path: Path) -> None:
    """Rendered config in a real Alertmanager: bearer secret accepted by the real receiver;
    a spike of monitor m1 is held back while MonitorDown{instance=m1} fires and delivered
    once it resolves, while a spike of monitor m2 and NoDataFromSource never hold anything."""
    import io
    import time
    from datetime import UTC, datetime

    from sentimon.alerts.notify import NotifyServer
    from sentimon.stack import observability as obs
    from sentimon.stack.manager import Stack

    am_port, notify_port = _free_ports(2)
    settings = Settings(
        home=tmp_path / "home",
        stack={"alertmanager_port": am_port},
        notify={"port": notify_port, "secret": "am-to-notify"},
        alerts={"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
    )
    out = io.StringIO()
    receiver = NotifyServer(
        host="127.0.0.1", port=notify_port, jsonl_path=tmp_path / "n.jsonl",
        secret="am-to-notify", out=out,
    ).start()
    stack = Stack(settings)
    try:
        stack.up(["alertmanager"], timeout_s=60)
        am = obs.alertmanager_url(settings)
        monitor_down = {"labels": {"alertname": "MonitorDown", "job": "sentimon-monitor",
                                   "instance": "m1:19101", "severity": "critical"},
                        "annotations": {"summary": "Monitor m1:19101 is down"}}
        no_data = {"labels": {"alertname": "NoDataFromSource", "kind": "comment",
                              "severity": "warning"},
                   "annotations": {"summary": "No new comment records"}}
        spike = {"labels": {"alertname": "NegativeSentimentSpike", "topic": "Macro",
                            "instance": "m1:19101", "severity": "warning"},
                 "annotations": {"summary": "Negative sentiment spike on topic Macro"}}
        other = {"labels": {"alertname": "NegativeSentimentSpike", "topic": "Earnings",
                            "instance": "m2:19101", "severity": "warning"},
                 "annotations": {"summary": "Negative sentiment spike on topic Earnings"}}
        _post_alerts(am, [monitor_down, no_data, spike, other])

        def lines() -> list[str]:
            return out.getvalue().splitlines()

        def seen(text: str) -> bool:
            return any(text in line for line in lines())

        deadline = time.monotonic() + 30
        while not (seen("MonitorDown") and seen("topic=Earnings") and seen("NoDataFromSource")):
            assert time.monotonic() < deadline, f"notifications missing; got {lines()}"
            time.sleep(0.2)
        # The Earnings spike (monitor m2) went through; Macro's (m1) is held while m1 is down:
        # watched for three more group intervals (1 s each), it does not come.
        quiet_until = time.monotonic() + 3
        while time.monotonic() < quiet_until:
            assert not seen("topic=Macro"), lines()
            time.sleep(0.1)

        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        _post_alerts(am, [{**monitor_down, "endsAt": now}])
        # Two groups, two notifications: the released spike and MonitorDown's resolution come
        # in either order (a loaded machine delivered the spike first).
        deadline = time.monotonic() + 30
        while not (seen("topic=Macro")
                   and any(line.startswith("[RESOLVED] MonitorDown") for line in lines())):
            assert time.monotonic() < deadline, f"spike or resolution missing; got {lines()}"
            time.sleep(0.2)
        rejected = receiver.metrics.rejected.labels(reason="unauthorized")._value.get()
        assert rejected == 0
    finally:
        stack.down(["alertmanager"])
        receiver.stop()


@pytest.mark.integration
def test_real_alertmanager_retries_slack_until_it_answers(tmp_path: Path) -> None:
    """alerts.slack_url renders Alertmanager's own Slack receiver: a real Alertmanager posts
    there, and when the service fails twice (HTTP 500) it tries again until it gets through,
    counting the failures; the notify webhook gets the alert too."""
    import io
    import urllib.request

    from sentimon.alerts.notify import NotifyServer
    from sentimon.stack import observability as obs
    from sentimon.stack.manager import Stack
    from tests.test_alerts_notify import ChatServer, wait_for

    slack = ChatServer(script=[500, 500])
    am_port, notify_port = _free_ports(2)
    settings = Settings(
        home=tmp_path / "home",
        stack={"alertmanager_port": am_port},
        notify={"port": notify_port},
        alerts={"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h",
                "slack_url": slack.url},
    )
    out = io.StringIO()
    receiver = NotifyServer(host="127.0.0.1", port=notify_port,
                            jsonl_path=tmp_path / "n.jsonl", out=out).start()
    stack = Stack(settings)
    try:
        stack.up(["alertmanager"], timeout_s=60)
        am = obs.alertmanager_url(settings)
        _post_alerts(am, [{
            "labels": {"alertname": "NegativeSentimentSpike", "topic": "Stock Movement",
                       "severity": "warning"},
            "annotations": {"summary": "Negative sentiment spike on topic Stock Movement"},
            "generatorURL": "http://127.0.0.1:19090/graph?g0.expr=x",
        }])
        wait_for(lambda: len(slack.received) >= 3, timeout_s=60)
        assert slack.received[0] == slack.received[2]  # the same message, tried again
        attachment = slack.received[2]["attachments"][0]
        assert attachment["title"] == "FIRING: NegativeSentimentSpike Stock Movement"
        assert "report.png?topic=Stock+Movement&since=3h" in attachment["text"]

        def failed() -> float:
            with urllib.request.urlopen(f"{am}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            return sum(float(line.split()[-1]) for line in text.splitlines()
                       if line.startswith("alertmanager_notification_requests_failed_total")
                       and 'integration="slack"' in line)

        assert failed() == 2
        wait_for(lambda: "[FIRING] NegativeSentimentSpike" in out.getvalue(), timeout_s=30)
    finally:
        stack.down(["alertmanager"])
        receiver.stop()
        slack.close()
