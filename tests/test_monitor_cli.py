"""``sentimon monitor`` and ``sentimon report`` on the command line."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sentimon.cli import build_parser, main
from sentimon.config import Settings, TopicSettings
from tests.test_monitor_daemon import REPO, monitor_settings, produce, scored


@pytest.mark.parametrize("command", ["monitor", "report"])
def test_help_has_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"sentimon {command}" in out


def test_idle_exit_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "--idle-exit-s", "0"]) == 2
    assert "--idle-exit-s" in capsys.readouterr().err


def test_unreachable_kafka_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": "127.0.0.1:1", "request_timeout_ms": 2000},
        "monitor": {"metrics_port": 0}}))
    proc = subprocess.run(
        [sys.executable, "-m", "sentimon", "--config", str(config), "monitor"],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 1
    assert "cannot reach Kafka" in proc.stderr


@pytest.mark.integration
def test_monitor_exits_when_idle(kafka_settings: Settings, topics: TopicSettings,
                                 tmp_path: Path) -> None:
    settings = monitor_settings(kafka_settings, topics)
    w = math.floor(time.time())
    produce(settings, [scored(f"r{i}", w - i) for i in range(5)])
    config = tmp_path / "c.yml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    proc = subprocess.run(
        [sys.executable, "-m", "sentimon", "--config", str(config), "monitor",
         "--idle-exit-s", "1"], capture_output=True, text=True, timeout=60, cwd=REPO)
    # The timeout above is what catches a monitor that never goes idle.
    assert proc.returncode == 0, proc.stderr
    assert "windows rebuilt, monitor ready" in proc.stderr, proc.stderr
    assert "records=5" in proc.stderr, proc.stderr
    assert "idle, exiting" in proc.stderr, proc.stderr
