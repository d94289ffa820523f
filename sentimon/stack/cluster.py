"""Throw-away Kafka clusters on loopback for the reliability tests: N KRaft nodes, SASL/SCRAM.

Built from the same pieces as ``sentimon stack up`` (:class:`BrokerSpec`, :class:`KafkaBroker`,
:func:`resolve_jars`), so what is tested is the broker the stack runs. Each node is broker and
controller at once; with three nodes ``controller.quorum.voters`` names all three, so the
cluster survives the loss of any one. A node can be stopped (SIGTERM, controlled shutdown),
killed (SIGKILL, a crash) and started again on its own data directory.

With ``scram_users`` every node also listens on a ``SASL_PLAINTEXT`` port that accepts
SCRAM-SHA-256 (and -512) logins; the users are written into storage at format time, so they
exist before the first start. The PLAINTEXT listener stays for inter-broker traffic.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from kafka.errors import KafkaError

from sentimon.config import KafkaSettings
from sentimon.kafka.clients import make_admin
from sentimon.stack.kafka_broker import BrokerSpec, KafkaBroker, StackError, new_cluster_id, resolve_jars
from sentimon.stack.process import ProcessTable, wait_until

log = logging.getLogger(__name__)

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def free_ports(n: int, *, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports that were free a moment ago on ``host``."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(frozen=True)
class NodePorts:
    """The ports of one node: clients (PLAINTEXT), controller, and SASL when enabled."""

    port: int
    controller_port: int
    sasl_port: int | None = None


class Cluster:
    """``nodes`` KRaft nodes under ``home``, all on ``host`` with free ports.

    ``home/node-<id>`` holds each node's data and ``home/logs/kafka-<id>.log`` its log;
    pid records go to ``home/run`` like the stack's. Use as a context manager, or call
    :meth:`start` and :meth:`stop` yourself.
    """

    def __init__(
        self,
        home: Path,
        *,
        nodes: int = 3,
        host: str = "127.0.0.1",
        heap: str = "256m",
        scram_users: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.home = home
        self.host = host
        self.table = ProcessTable(home)
        self.scram_users = dict(scram_users or {})
        per_node = 3 if self.scram_users else 2
        ports = free_ports(nodes * per_node, host=host)
        self.ports: dict[int, NodePorts] = {}
        for i in range(nodes):
            p = ports[i * per_node:(i + 1) * per_node]
            self.ports[i + 1] = NodePorts(p[0], p[1], p[2] if self.scram_users else None)
        voters = ",".join(f"{nid}@{host}:{p.controller_port}" for nid, p in self.ports.items())
        rf = min(3, nodes)
        self.brokers: dict[int, KafkaBroker] = {
            nid: KafkaBroker(self._spec(nid, voters=voters, heap=heap, replication=rf,
                                        extra=extra or {}),
                             self.table, name=f"kafka-{nid}")
            for nid in self.ports
        }

    def _spec(self, nid: int, *, voters: str, heap: str, replication: int,
              extra: dict[str, str]) -> BrokerSpec:
        p, h = self.ports[nid], self.host
        props = {
            # Internal topics follow the cluster's size so that losing one node loses nothing.
            "transaction.state.log.min.isr": str(min(2, replication)),
            "share.coordinator.state.topic.min.isr": str(min(2, replication)),
            **extra,
        }
        listeners = f"PLAINTEXT://{h}:{p.port},CONTROLLER://{h}:{p.controller_port}"
        advertised = f"PLAINTEXT://{h}:{p.port}"
        protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        format_args: list[str] = []
        if self.scram_users:
            listeners += f",SASL_PLAINTEXT://{h}:{p.sasl_port}"
            advertised += f",SASL_PLAINTEXT://{h}:{p.sasl_port}"
            protocols += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
            props["sasl.enabled.mechanisms"] = ",".join(SCRAM_MECHANISMS)
            for mech in SCRAM_MECHANISMS:
                props[f"listener.name.sasl_plaintext.{mech.lower()}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;")
            for name, password in self.scram_users.items():
                for mech in SCRAM_MECHANISMS:
                    format_args += ["--add-scram", f"{mech}=[name={name},password={password}]"]
        return BrokerSpec(
            data_dir=self.home / f"node-{nid}", host=h, port=p.port,
            controller_port=p.controller_port, node_id=nid, voters=voters, heap=heap,
            default_replication=replication, extra=props, listeners=listeners,
            advertised_listeners=advertised, protocol_map=protocols, format_args=format_args,
        )

    # -- addresses ---------------------------------------------------------------------------

    @property
    def node_ids(self) -> list[int]:
        return sorted(self.brokers)

    def bootstrap(self, nodes: list[int] | None = None) -> str:
        """PLAINTEXT ``host:port`` list of ``nodes`` (default all)."""
        return ",".join(f"{self.host}:{self.ports[n].port}" for n in nodes or self.node_ids)

    def sasl_bootstrap(self, nodes: list[int] | None = None) -> str:
        """SASL_PLAINTEXT ``host:port`` list; only with ``scram_users``."""
        if not self.scram_users:
            raise StackError("this cluster was made without scram_users: no SASL listener")
        return ",".join(f"{self.host}:{self.ports[n].sasl_port}" for n in nodes or self.node_ids)

    def kafka_settings(self, nodes: list[int] | None = None) -> KafkaSettings:
        """Client settings for the PLAINTEXT listeners of ``nodes``."""
        return KafkaSettings(bootstrap_servers=self.bootstrap(nodes))

    def log_path(self, nid: int) -> Path:
        return self.home / "logs" / f"kafka-{nid}.log"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, timeout_s: float = 120.0) -> Cluster:
        """Format (first time only) and start every node; wait until all are registered."""
        libs = resolve_jars()
        cluster_id = self._cluster_id()
        for broker in self.brokers.values():
            # Every node of one cluster must be formatted with the same cluster id.
            broker.spec.data_dir.mkdir(parents=True, exist_ok=True)
            (broker.spec.data_dir / "cluster.id").write_text(cluster_id)
            broker.prepare(libs)
        for nid in self.node_ids:
            if not self.alive(nid):
                self.brokers[nid].start(libs, self.log_path(nid))
        self.wait_ready(timeout_s=timeout_s)
        return self

    def _cluster_id(self) -> str:
        for broker in self.brokers.values():
            found = broker.cluster_id()
            if found:
                return found
        return new_cluster_id()

    def start_node(self, nid: int, *, timeout_s: float = 120.0) -> None:
        """Start one node again on its existing data and wait until the cluster lists it."""
        if not self.alive(nid):
            self.brokers[nid].start(resolve_jars(), self.log_path(nid))
        self.wait_ready(timeout_s=timeout_s)

    def stop_node(self, nid: int, *, timeout_s: float = 30.0) -> None:
        """SIGTERM one node (controlled shutdown), SIGKILL after ``timeout_s``."""
        self.table.stop(f"kafka-{nid}", timeout_s=timeout_s)

    def kill_node(self, nid: int) -> None:
        """SIGKILL one node, as a crash or a pulled plug would; returns once it is gone."""
        rec = self.table.get(f"kafka-{nid}")
        if rec is not None and rec.alive():
            os.kill(rec.pid, signal.SIGKILL)
            if not wait_until(lambda: not rec.alive(), timeout_s=10, interval_s=0.05):
                raise StackError(f"kafka-{nid} (pid {rec.pid}) survived SIGKILL")
        self.table.path(f"kafka-{nid}").unlink(missing_ok=True)

    def alive(self, nid: int) -> bool:
        return self.table.running(f"kafka-{nid}") is not None

    def pid(self, nid: int) -> int | None:
        rec = self.table.running(f"kafka-{nid}")
        return rec.pid if rec is not None else None

    def stop(self) -> None:
        """Stop every node (idempotent)."""
        for nid in self.node_ids:
            self.stop_node(nid)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ready(self, *, timeout_s: float = 120.0) -> None:
        """Wait until every running node is registered and a controller is elected."""
        running = [n for n in self.node_ids if self.alive(n)]

        def ready() -> bool:
            for nid in self.node_ids:
                if nid in running and not self.alive(nid):
                    raise StackError(f"kafka-{nid} exited during start-up; see "
                                     f"{self.log_path(nid)}:\n{_tail(self.log_path(nid))}")
            return set(running) <= self.registered(running)

        if not wait_until(ready, timeout_s=timeout_s, interval_s=0.5):
            raise StackError(f"cluster not ready within {timeout_s:.0f}s; logs in {self.home}/logs")

    def registered(self, via: list[int] | None = None) -> set[int]:
        """Node ids the cluster reports as live brokers (empty while none answers)."""
        nodes = via or [n for n in self.node_ids if self.alive(n)]
        if not nodes:
            return set()
        try:
            admin = make_admin(self.kafka_settings(nodes), request_timeout_ms=5_000,
                               bootstrap_timeout_ms=5_000)
        except (KafkaError, OSError, ValueError):
            return set()
        try:
            cluster = admin.describe_cluster()
            if cluster.get("controller_id") in (None, -1):
                return set()
            # A fenced broker is registered but not yet caught up with the metadata log.
            return {int(b["broker_id"]) for b in cluster.get("brokers", [])
                    if not b.get("is_fenced")}
        except (KafkaError, OSError, ValueError):
            return set()
        finally:
            admin.close()

    def leader(self, topic: str, partition: int, *, timeout_s: float = 30.0) -> int:
        """The node id leading ``topic``/``partition`` (waits while there is none)."""
        deadline = time.monotonic() + timeout_s
        while True:
            nodes = [n for n in self.node_ids if self.alive(n)]
            admin = make_admin(self.kafka_settings(nodes))
            try:
                for t in admin.describe_topics([topic]):
                    for p in t.get("partitions", []):
                        if p["partition_index"] == partition and p["leader_id"] >= 0:
                            return int(p["leader_id"])
            except KafkaError as exc:
                log.debug("no leader yet", extra={"error": repr(exc)})
            finally:
                admin.close()
            if time.monotonic() >= deadline:
                raise StackError(f"{topic}/{partition} has no leader after {timeout_s:.0f}s")
            time.sleep(0.5)

    def isr(self, topic: str, partition: int) -> list[int]:
        """The in-sync replicas of ``topic``/``partition`` as the cluster reports them now."""
        nodes = [n for n in self.node_ids if self.alive(n)]
        admin = make_admin(self.kafka_settings(nodes))
        try:
            for t in admin.describe_topics([topic]):
                for p in t.get("partitions", []):
                    if p["partition_index"] == partition:
                        return [int(n) for n in p["isr_nodes"]]
        finally:
            admin.close()
        return []


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
