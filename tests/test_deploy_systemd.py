"""The systemd units: required keys and hardening, and `systemd-analyze verify` when present."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).parent.parent / "deploy" / "systemd"
INSTALLED_EXE = "/opt/sentimon/venv/bin/sentimon"
UNITS = {
    "sentimon-scorer@.service": "score",
    "sentimon-monitor.service": "monitor",
    "sentimon-notify.service": "notify",
}
HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
    "PrivateTmp": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes", "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes",
    "LockPersonality": "yes", "CapabilityBoundingSet": "",
}


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) in order; keys may repeat (Environment=, EnvironmentFile=),
    which configparser's strict mode refuses."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path.name}: key outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not key=value: {line}"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def test_all_units_are_shipped() -> None:
    assert {p.name for p in SYSTEMD_DIR.glob("*.service")} == set(UNITS)


@pytest.mark.parametrize(("name", "command"), sorted(UNITS.items()))
def test_unit_has_required_keys(name: str, command: str) -> None:
    unit = parse_unit(SYSTEMD_DIR / name)
    assert set(unit) == {"Unit", "Service", "Install"}

    def one(key: str) -> str:
        found = values(unit, "Service", key)
        assert len(found) == 1, f"{name}: {key}= set {len(found)} times"
        return found[0]

    assert one("ExecStart") == f"{INSTALLED_EXE} {command}"
    assert one("Restart") == "on-failure"
    assert one("KillSignal") == "SIGTERM"
    assert int(one("TimeoutStopSec")) >= 10
    assert "/etc/sentimon/env" in values(unit, "Service", "EnvironmentFile")
    assert "SENTIMON_HOME=/var/lib/sentimon" in values(unit, "Service", "Environment")
    assert one("StateDirectory") == "sentimon"
    for key, want in HARDENING.items():
        assert one(key) == want, f"{name}: {key}"
    assert values(unit, "Install", "WantedBy") == ["multi-user.target"]
    assert "network-online.target" in values(unit, "Unit", "After")


def test_scorer_template_takes_its_metrics_port_from_the_instance() -> None:
    unit = parse_unit(SYSTEMD_DIR / "sentimon-scorer@.service")
    assert "SENTIMON_SCORER__METRICS_PORT=%i" in values(unit, "Service", "Environment")
    assert "-/etc/sentimon/scorer-%i.env" in values(unit, "Service", "EnvironmentFile")


@pytest.mark.parametrize("command", sorted(set(UNITS.values())))
def test_exec_start_subcommands_exist(command: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "sentimon", command, "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"sentimon {command}" in proc.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not found")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart= is executable: point the copies at this environment's
    # sentimon, and verify the template as an instance, as systemd would load it.
    exe = Path(sys.executable).parent / "sentimon"
    assert exe.exists(), exe
    paths = []
    for name in UNITS:
        text = (SYSTEMD_DIR / name).read_text().replace(INSTALLED_EXE, str(exe))
        dest = tmp_path / name.replace("@.service", "@19100.service")
        dest.write_text(text)
        paths.append(f"./{dest.name}")
    proc = subprocess.run(["systemd-analyze", "verify", *paths], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    # verify exits 0 on unknown keys or bad values, so warnings count as failures too.
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stdout + proc.stderr
