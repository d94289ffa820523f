"""A real Apache Kafka broker in KRaft combined mode, from jars resolved by Maven.

The jars (``org.apache.kafka:kafka_2.13`` plus a log4j2 backend, pinned in
``deploy/kafka/pom.xml``) are copied once into a cache directory shared by every
``SENTIMON_HOME``, so the second start downloads nothing. Storage is formatted on first
start with a generated cluster id.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from sentimon.stack.process import ProcessRecord, ProcessTable

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.3.1"  # keep in step with deploy/kafka/pom.xml


class StackError(RuntimeError):
    """A server of the embedded stack could not be prepared or started."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sentimon"


def _deploy_file(*parts: str) -> Path:
    return Path(str(files("sentimon.deploy").joinpath(*parts)))


def resolve_jars(*, version: str = KAFKA_VERSION, quiet: bool = True) -> Path:
    """Return a directory holding the broker's jars, resolving them with Maven on first use."""
    libs = Path(os.environ.get("SENTIMON_KAFKA_LIBS", cache_dir() / f"kafka_2.13-{version}" / "libs"))
    if (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is needed to fetch the Kafka broker: run scripts/setup.sh")
    libs.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    cmd = [
        mvn, "-B", *(["-q"] if quiet else []), "-f", str(_deploy_file("kafka", "pom.xml")),
        "dependency:copy-dependencies", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
        f"-Dkafka.version={version}",
    ]
    log.info("resolving Kafka broker jars with Maven", extra={"version": version})
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
        shutil.rmtree(tmp, ignore_errors=True)
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise StackError(f"Maven could not resolve Kafka {version}:\n{tail}")
    (tmp / ".complete").write_text(version)
    if libs.exists():  # a half-written directory from an interrupted run
        shutil.rmtree(libs)
    tmp.rename(libs)
    return libs


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise StackError("Java 17+ is needed for the Kafka broker: run scripts/setup.sh")
    return java


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (as Uuid.toString)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):  # Kafka rejects ids that look like a command-line flag
            return text


@dataclass
class BrokerSpec:
    """One KRaft node acting as broker and controller."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 19092
    controller_port: int = 19093
    node_id: int = 1
    # "id@host:port,..." of every controller; a single node votes for itself.
    voters: str | None = None
    heap: str = "512m"
    default_replication: int = 1
    # Extra server.properties, e.g. SASL listeners for the security tests.
    extra: dict[str, str] = field(default_factory=dict)
    listeners: str | None = None
    advertised_listeners: str | None = None
    protocol_map: str | None = None
    # Extra `kafka-storage format` arguments, e.g. ["--add-scram", "SCRAM-SHA-256=[...]"]
    # to create SASL/SCRAM users before the first start (they are read only at format time).
    format_args: list[str] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def properties(self) -> dict[str, str]:
        rf = str(self.default_replication)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters
            or f"{self.node_id}@{self.host}:{self.controller_port}",
            "listeners": self.listeners
            or f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": self.advertised_listeners or f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": self.protocol_map
            or "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "log"),
            "num.partitions": "3",
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "-1",  # replays carry 2014 timestamps; keep them
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        props.update(self.extra)
        return props


class KafkaBroker:
    """Prepare, start and stop one broker node under ``spec.data_dir``."""

    def __init__(self, spec: BrokerSpec, table: ProcessTable, *, name: str = "kafka") -> None:
        self.spec = spec
        self.table = table
        self.name = name

    @property
    def config_path(self) -> Path:
        return self.spec.data_dir / "server.properties"

    def prepare(self, libs: Path) -> None:
        """Write the config and format storage if this node has never run."""
        self.spec.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "".join(f"{k}={v}\n" for k, v in self.spec.properties().items())
        )
        if (self.spec.data_dir / "log" / "meta.properties").exists():
            return
        cluster_file = self.spec.data_dir / "cluster.id"
        cluster_id = cluster_file.read_text().strip() if cluster_file.exists() else new_cluster_id()
        cluster_file.write_text(cluster_id)
        self._format(libs, cluster_id)

    def _format(self, libs: Path, cluster_id: str) -> None:
        cmd = [java_binary(), "-Xmx256m", "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
               "-t", cluster_id, "-c", str(self.config_path), "--ignore-formatted",
               *self.spec.format_args]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{(proc.stdout + proc.stderr)[-2000:]}")

    def start(self, libs: Path, log_path: Path) -> ProcessRecord:
        cmd = [
            java_binary(), f"-Xmx{self.spec.heap}", f"-Xms{min_heap(self.spec.heap)}",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={_deploy_file('kafka', 'log4j2.properties')}",
            "-cp", f"{libs}/*", "kafka.Kafka", str(self.config_path),
        ]
        return self.table.start(self.name, cmd, log=log_path,
                                url=f"kafka://{self.spec.bootstrap}")

    def cluster_id(self) -> str | None:
        path = self.spec.data_dir / "cluster.id"
        return path.read_text().strip() if path.exists() else None


def min_heap(heap: str) -> str:
    """Start the heap at a quarter of its maximum: quick start, bounded growth."""
    unit = heap[-1].lower() if heap[-1].isalpha() else ""
    number = int(heap[:-1] if unit else heap)
    return f"{max(1, number // 4)}{unit}"
