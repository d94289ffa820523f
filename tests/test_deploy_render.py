"""Rendered Alertmanager config and the shipped example pass the real amtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from sentimon.deploy.render import (
    alertmanager_config,
    notify_url,
    render_alertmanager,
    render_grafana_datasource,
)

from sentimon.config import ConfigError, Settings

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


def test_spikes_are_inhibited_by_pipeline_failures() -> None:
    [rule] = alertmanager_config(Settings())["inhibit_rules"]
    assert rule["source_matchers"] == ['alertname=~"ScorerDown|MonitorDown|NoDataFromSource"']
    assert rule["target_matchers"] == ['alertname=~"NegativeSentimentSpike|TickerNegativeSpike"']
    assert "equal" not in rule  # the sources carry no topic label to match on


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


def test_grafana_datasource_points_at_the_stack_prometheus() -> None:
    doc = yaml.safe_load(render_grafana_datasource(Settings(stack={"prometheus_port": 29090})))
    [ds] = doc["datasources"]
    assert ds["uid"] == "sentimon-prometheus"
    assert ds["url"] == "http://127.0.0.1:29090"


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
