"""Security basics: loopback-only endpoints, SASL/SCRAM to Kafka, no credentials in output.

The SASL tests run a broker of their own with a ``SASL_PLAINTEXT`` listener accepting
SCRAM-SHA-256 (user created at format time), built by ``sentimon.stack.cluster``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from sentimon.config import (
    KafkaSettings,
    ModelSettings,
    MonitorSettings,
    NotifySettings,
    ScorerSettings,
    Settings,
    TopicSettings,
    to_env,
)
from sentimon.kafka import ensure_topics, make_consumer, make_producer
from sentimon.kafka.admin import ensure_pipeline_topics
from sentimon.kafka.clients import KafkaAuthError
from sentimon.stack.cluster import Cluster, free_ports
from sentimon.stack.process import ProcessTable
from tests.reliability.helpers import (
    REPO,
    Daemon,
    encode_all,
    messages,
    needs_model,
    produce,
    read_topic,
    stop_all,
    wait_for,
)

PASSWORD = f"alice-secret-{uuid.uuid4().hex[:12]}"  # unique, so a leak cannot hide in noise
NOTIFY_SECRET = f"notify-secret-{uuid.uuid4().hex[:12]}"


# -- endpoints bind loopback -------------------------------------------------------------


def test_every_endpoint_defaults_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [v for v in os.environ if v.startswith("SENTIMON_")]:
        monkeypatch.delenv(var)
    s = Settings()  # type: ignore[call-arg]
    assert s.scorer.metrics_host == "127.0.0.1"
    assert s.monitor.metrics_host == "127.0.0.1"
    assert s.notify.host == "127.0.0.1"
    assert s.stack.host == "127.0.0.1"
    assert s.kafka.bootstrap_servers.startswith("127.0.0.1:")


@needs_model
@pytest.mark.integration
@pytest.mark.timeout(300)
def test_running_daemons_listen_on_loopback_only(
        kafka_settings: Settings, topics: TopicSettings, tmp_path: Path) -> None:
    scorer_port, monitor_port, notify_port, other_port = free_ports(4)
    settings = kafka_settings.model_copy(update={
        "home": tmp_path, "topics": topics,
        "scorer": ScorerSettings(group_id=f"sec-{uuid.uuid4().hex[:8]}",  # type: ignore[call-arg]
                                 metrics_port=scorer_port),
        "monitor": MonitorSettings(group_id=f"sec-{uuid.uuid4().hex[:8]}",  # type: ignore[call-arg]
                                   metrics_port=monitor_port),
        "notify": NotifySettings(port=notify_port),  # type: ignore[call-arg]
        "model": ModelSettings(device="cpu"),  # type: ignore[call-arg]
    })
    # "Unless configured otherwise": another address is honoured. 127.0.0.2 is loopback
    # too, so the test opens nothing to the network.
    elsewhere = settings.model_copy(update={"monitor": settings.monitor.model_copy(
        update={"metrics_host": "127.0.0.2", "metrics_port": other_port,
                "group_id": f"sec-{uuid.uuid4().hex[:8]}"})})
    daemons = {
        "scorer": Daemon(settings, ["score"], tmp_path / "scorer.log", port=scorer_port),
        "monitor": Daemon(settings, ["monitor"], tmp_path / "monitor.log", port=monitor_port),
        "notify": Daemon(settings, ["notify"], tmp_path / "notify.log", port=notify_port),
        "elsewhere": Daemon(elsewhere, ["monitor"], tmp_path / "elsewhere.log", port=other_port,
                            host="127.0.0.2"),
    }
    try:
        for d in daemons.values():
            d.start()
        for d in daemons.values():
            d.wait_ready(timeout_s=180)
        bound = {name: d.listening() for name, d in daemons.items()}
    finally:
        stop_all(daemons.values())
    for name in ("scorer", "monitor", "notify"):
        assert bound[name] == [("127.0.0.1", daemons[name].port)], (name, bound[name])
    assert bound["elsewhere"] == [("127.0.0.2", other_port)]
    # The embedded broker too: client and controller listeners on loopback only.
    import psutil

    broker = ProcessTable(kafka_settings.home).running("kafka")
    assert broker is not None
    listening = {ipv4(c.laddr.ip) for c in psutil.Process(broker.pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN}
    assert listening == {"127.0.0.1"}


def ipv4(address: str) -> str:
    """``::ffff:127.0.0.1`` (how the JVM binds an IPv4 address) as ``127.0.0.1``."""
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


# -- SASL/SCRAM ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sasl_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("sasl"), nodes=1, heap="256m",
                      scram_users={"alice": PASSWORD})
    try:
        cluster.start(timeout_s=120)
        yield cluster
    finally:
        cluster.stop()


def sasl(cluster: Cluster, *, password: str = PASSWORD, user: str = "alice") -> KafkaSettings:
    return KafkaSettings(  # type: ignore[call-arg]
        bootstrap_servers=cluster.sasl_bootstrap(), security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256", sasl_username=user, sasl_password=SecretStr(password))


@pytest.mark.integration
def test_scram_login_through_the_shared_clients(sasl_cluster: Cluster) -> None:
    kafka = sasl(sasl_cluster)
    topic = f"sasl.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, [topic], partitions=1)
    produce(kafka, topic, [b"one", b"two"])
    assert [r.value for r in read_topic(kafka, topic)] == [b"one", b"two"]


@needs_model
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_daemons_over_sasl_never_print_the_password(
        sasl_cluster: Cluster, data_dir: Path, tmp_path: Path) -> None:
    scorer_port, monitor_port, notify_port = free_ports(3)
    topics = TopicSettings(partitions=2)  # type: ignore[call-arg]
    settings = Settings(  # type: ignore[call-arg]
        home=tmp_path, log_level="DEBUG", kafka=sasl(sasl_cluster), topics=topics,
        scorer=ScorerSettings(metrics_port=scorer_port),  # type: ignore[call-arg]
        monitor=MonitorSettings(metrics_port=monitor_port),  # type: ignore[call-arg]
        notify=NotifySettings(port=notify_port, secret=SecretStr(NOTIFY_SECRET)),  # type: ignore[call-arg]
        model=ModelSettings(device="cpu"),  # type: ignore[call-arg]
    )
    ensure_pipeline_topics(settings.kafka, topics)
    msgs = messages(data_dir, 40, prefix="sasl", now_ts=True)
    daemons = [Daemon(settings, ["score"], tmp_path / "scorer.log", port=scorer_port),
               Daemon(settings, ["monitor"], tmp_path / "monitor.log", port=monitor_port),
               Daemon(settings, ["notify"], tmp_path / "notify.log", port=notify_port)]
    try:
        for d in daemons:
            d.start()
        for d in daemons:
            d.wait_ready(timeout_s=180)
        produce(settings.kafka, topics.comments, encode_all(msgs))
        wait_for(lambda: daemons[1].metric_sum("sentimon_monitor_records_total") == len(msgs),
                 "the monitor to see every record scored over SASL", timeout_s=180)
        for d in daemons:
            assert d.terminate() == 0, d.tail()
    finally:
        stop_all(daemons)
    scored = {json.loads(r.value)["id"] for r in read_topic(settings.kafka, topics.scored)}
    assert scored == {m["id"] for m in msgs}

    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMON_")}
    env.update(to_env(settings))
    outputs = {d.command[0]: d.text() for d in daemons}
    for cmd in (["doctor", "--timeout", "2"], ["doctor", "--json", "--timeout", "2"], ["config"]):
        proc = subprocess.run([sys.executable, "-m", "sentimon", *cmd], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=180, check=False)
        outputs[" ".join(cmd)] = proc.stdout + proc.stderr
    assert "SCRAM-SHA-256 as alice" in outputs["doctor --timeout 2"]
    assert "answering at" in outputs["doctor --timeout 2"]
    for name, text in outputs.items():
        assert text.strip(), f"{name} printed nothing"
        assert PASSWORD not in text, f"the SASL password appears in the output of {name}"
        assert NOTIFY_SECRET not in text, f"the notify secret appears in the output of {name}"


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wrong_credentials_fail_clearly_and_in_bounded_time(
        sasl_cluster: Cluster, tmp_path: Path) -> None:
    wrong = f"wrong-{uuid.uuid4().hex[:8]}"
    settings = Settings(  # type: ignore[call-arg]
        home=tmp_path, kafka=sasl(sasl_cluster, password=wrong),
        scorer=ScorerSettings(metrics_port=free_ports(1)[0]),  # type: ignore[call-arg]
        model=ModelSettings(device="cpu"),  # type: ignore[call-arg]
    )
    # The daemon in the background while the client factories are checked in-process.
    daemon = Daemon(settings, ["score"], tmp_path / "scorer.log").start()
    try:
        # A shorter bootstrap than the default 30 s keeps the test short; the daemon uses
        # the default.
        for make, kafka in (
                (lambda k: make_consumer(k, group_id="g", bootstrap_timeout_ms=10_000),
                 settings.kafka),
                (lambda k: make_producer(k, bootstrap_timeout_ms=10_000),
                 sasl(sasl_cluster, user="mallory", password=wrong))):
            started = time.monotonic()
            with pytest.raises(KafkaAuthError) as err:
                make(kafka)
            took = time.monotonic() - started
            text = str(err.value)
            assert took < 45, f"{took:.0f}s to report a refused login"
            assert "SASL login" in text and repr(kafka.sasl_username) in text
            assert "SENTIMON_KAFKA__SASL_PASSWORD" in text
            assert wrong not in text
        code = daemon.wait(timeout_s=120)
    finally:
        stop_all([daemon])
    out = daemon.text()
    assert code == 2, out[-3000:]
    last = [line for line in out.splitlines() if line.strip()][-1]
    assert last.startswith("sentimon: Kafka refused the SASL login of user 'alice'"), last
    assert "Traceback" not in out
    assert wrong not in out

    # `sentimon doctor` says the login was refused, not that Kafka is down.
    from sentimon.doctor import collect

    kafka_check = next(c for c in collect(settings, timeout_s=10) if c.name == "kafka")
    assert not kafka_check.ok
    assert "refused the SASL login" in kafka_check.detail and wrong not in kafka_check.detail
