"""``sentimon stack`` as a user runs it: up twice, status, down, nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_ports

pytestmark = pytest.mark.integration


def _cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sentimon", *args], env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)


def test_up_twice_status_down(tmp_path: Path) -> None:
    kafka, controller, prom, am, scorer, monitor, notify = free_ports(7)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SENTIMON_")},
        "SENTIMON_HOME": str(tmp_path / "home"),
        "SENTIMON_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka}",
        "SENTIMON_STACK__KAFKA_PORT": str(kafka),
        "SENTIMON_STACK__KAFKA_CONTROLLER_PORT": str(controller),
        "SENTIMON_STACK__PROMETHEUS_PORT": str(prom),
        "SENTIMON_STACK__ALERTMANAGER_PORT": str(am),
        "SENTIMON_SCORER__METRICS_PORT": str(scorer),
        "SENTIMON_MONITOR__METRICS_PORT": str(monitor),
        "SENTIMON_NOTIFY__PORT": str(notify),
    }
    first = _cli(env, "stack", "up")
    assert first.returncode == 0, first.stderr
    status = json.loads(_cli(env, "stack", "status", "--json").stdout)
    assert [s["name"] for s in status] == [
        "kafka", "prometheus", "alertmanager", "scorer", "monitor", "notify"]
    servers = [s for s in status if s["kind"] == "server"]
    pids = {s["name"]: s["pid"] for s in servers}
    assert all(s["running"] and s["answering"] for s in servers), status
    daemons = {s["name"]: s for s in status if s["kind"] == "daemon"}
    assert daemons["notify"]["url"] == f"http://127.0.0.1:{notify}"
    assert not any(d["running"] or d["answering"] for d in daemons.values())

    second = _cli(env, "stack", "up")  # harmless: nothing new is started
    assert second.returncode == 0, second.stderr
    again = {s["name"]: s["pid"] for s in json.loads(_cli(env, "stack", "status", "--json").stdout)
             if s["kind"] == "server"}
    assert again == pids

    doctor = _cli(env, "doctor", "--json", "--timeout", "5")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    for name in ("kafka", "prometheus server", "alertmanager server"):
        assert checks[name]["ok"], checks[name]

    down = _cli(env, "stack", "down")
    assert down.returncode == 0
    assert "kafka" in down.stdout and "prometheus" in down.stdout
    for pid in pids.values():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    status = json.loads(_cli(env, "stack", "status", "--json").stdout)
    assert not any(s["running"] or s["answering"] for s in status)
    assert "nothing was running" in _cli(env, "stack", "down").stdout


def test_broker_restart_keeps_data(tmp_path: Path) -> None:
    """Storage is formatted once; a restart on the same home keeps cluster id and topics."""
    from sentimon.config import KafkaSettings, Settings, StackSettings
    from sentimon.kafka.clients import make_admin
    from sentimon.stack.manager import Stack

    kafka, controller = free_ports(2)
    settings = Settings(home=tmp_path, kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{kafka}"),
                        stack=StackSettings(kafka_port=kafka, kafka_controller_port=controller))
    stack = Stack(settings)
    try:
        stack.up(["kafka"])
        cluster_id = stack.broker().cluster_id()
        stack.down()
        stack.up(["kafka"])
        assert stack.broker().cluster_id() == cluster_id
        admin = make_admin(settings.kafka)
        assert settings.topics.scored in admin.list_topics()
        admin.close()
    finally:
        stack.down()


@pytest.mark.parametrize("secret", [None, "k"])
def test_status_lists_the_daemons_and_which_answer(tmp_path: Path, secret: str | None) -> None:
    """A notify receiver answering on its port shows ready, pid-less (not started by the
    demo); scorer and monitor, with nothing on their ports, show stopped. Doctor says so too."""
    from sentimon.alerts.notify import NotifyServer
    from sentimon.config import Settings
    from sentimon.doctor import collect
    from sentimon.stack.manager import Stack

    scorer, monitor = free_ports(2)
    receiver = NotifyServer(host="127.0.0.1", port=0, jsonl_path=tmp_path / "n.jsonl",
                            secret=secret).start()
    settings = Settings(home=tmp_path, scorer={"metrics_port": scorer},
                        monitor={"metrics_port": monitor}, notify={"port": receiver.port})
    try:
        status = {s.name: s for s in Stack(settings).status()}
        assert status["notify"].answering and status["notify"].kind == "daemon"
        assert status["notify"].url == f"http://127.0.0.1:{receiver.port}"
        assert not status["scorer"].answering and not status["scorer"].running
        assert not status["monitor"].answering
        checks = {c.name: c for c in collect(settings, timeout_s=0.5)}
        assert checks["notify daemon"].ok
        assert checks["notify daemon"].detail.startswith("ready at http://127.0.0.1:")
        assert checks["scorer daemon"].ok and not checks["scorer daemon"].required
        assert checks["scorer daemon"].detail.startswith("not running")
    finally:
        receiver.stop()
