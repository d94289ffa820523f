"""Shared fixtures: the real servers, started by the same code as ``sentimon stack up``."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sentimon.config import (
    AlertSettings,
    KafkaSettings,
    MonitorSettings,
    NotifySettings,
    ScorerSettings,
    Settings,
    StackSettings,
    TopicSettings,
)
from sentimon.logs import formatter

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("SENTIMON_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # A failed test's "Captured log" shows pytest's format, which drops the ``extra`` fields
    # where sentimon puts the reason (a scorer's "giving up" without its error, once in CI):
    # show them as the daemons' own log lines do.
    plugin = config.pluginmanager.get_plugin("logging-plugin")
    handler = getattr(plugin, "report_handler", None)
    if handler is not None:
        handler.setFormatter(formatter())


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that were free a moment ago on 127.0.0.1."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def stack_settings(home: Path, *, components: list[str]) -> Settings:
    """Settings for an isolated stack under ``home`` on fresh ports (1 s scrapes for tests)."""
    kafka, controller, prom, am, scorer, monitor, notify = free_ports(7)
    return Settings(
        home=home,
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{kafka}"),
        stack=StackSettings(
            kafka_port=kafka, kafka_controller_port=controller, prometheus_port=prom,
            alertmanager_port=am, scrape_interval="1s", components=components,
        ),
        scorer=ScorerSettings(metrics_port=scorer),
        monitor=MonitorSettings(metrics_port=monitor),
        notify=NotifySettings(port=notify),
        # Rules and routing render once per session: test-sized `for:` and Alertmanager timings.
        alerts=AlertSettings(spike_for="5s", group_wait="1s", group_interval="5s",
                             repeat_interval="1h"),
    )


@pytest.fixture(scope="session")
def kafka_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at a real Kafka broker (KRaft) started for this test session."""
    from sentimon.stack.manager import Stack

    settings = stack_settings(tmp_path_factory.mktemp("stack"), components=["kafka"])
    stack = Stack(settings)
    try:
        stack.up(["kafka"], timeout_s=120)
        yield settings
    finally:
        stack.down()


@dataclass(frozen=True)
class Observability:
    settings: Settings
    prometheus_url: str
    alertmanager_url: str


@pytest.fixture(scope="session")
def observability(kafka_settings: Settings) -> Iterator[Observability]:
    """Prometheus and Alertmanager (real binaries) beside the session's broker."""
    from sentimon.stack import observability as obs
    from sentimon.stack.manager import Stack

    stack = Stack(kafka_settings)
    try:
        stack.up(["alertmanager", "prometheus"], timeout_s=60)
        yield Observability(
            settings=kafka_settings,
            prometheus_url=obs.prometheus_url(kafka_settings),
            alertmanager_url=obs.alertmanager_url(kafka_settings),
        )
    finally:
        stack.down(["prometheus", "alertmanager"])


@pytest.fixture
def topics(kafka_settings: Settings) -> TopicSettings:
    """Fresh, uniquely named pipeline topics (3 partitions each) on the session broker."""
    from sentimon.kafka.admin import ensure_pipeline_topics

    suffix = uuid.uuid4().hex[:8]
    t = TopicSettings(
        news=f"test.news.{suffix}", comments=f"test.comments.{suffix}",
        scored=f"test.scored.{suffix}", dlq=f"test.dlq.{suffix}", partitions=3,
    )
    ensure_pipeline_topics(kafka_settings.kafka, t)
    return t


@pytest.fixture
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.fail(f"test data not found at {DATA_DIR}; set SENTIMON_DATA_DIR")
    return DATA_DIR
