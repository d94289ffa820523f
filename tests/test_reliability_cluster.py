"""A three-node KRaft cluster loses its partition leader mid-stream (SIGKILL): no acked loss.

Replication factor 3, ``min.insync.replicas=2``, producer ``acks=all`` (sentimon's
``make_producer``): a record is acknowledged only once two replicas hold it, so killing any
one node, the leader included, must not lose an acknowledged record.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sentimon.kafka import ensure_topics, make_producer
from sentimon.stack.cluster import Cluster
from tests.reliability.helpers import read_topic, scaled, wait_for

TOPIC = "reliability.replicated"
MESSAGES = 6_000
CHUNK = 100


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_leader_killed_mid_stream_loses_no_acked_record(tmp_path: Path) -> None:
    n = scaled(MESSAGES)
    cluster = Cluster(tmp_path / "cluster", nodes=3, heap="256m")
    try:
        cluster.start(timeout_s=180)
        kafka = cluster.kafka_settings()
        ensure_topics(kafka, [TOPIC], partitions=1, replication_factor=3,
                      configs={"min.insync.replicas": "2"})
        leader = cluster.leader(TOPIC, 0)
        wait_for(lambda: len(cluster.isr(TOPIC, 0)) == 3, "all three replicas in sync",
                 timeout_s=60)

        acked: list[str] = []
        failed: list[tuple[str, str]] = []
        sent_after_kill: set[str] = set()
        sent = [0]
        killed = threading.Event()
        lock = threading.Lock()

        def on_ack(value: str) -> Any:
            def ok(_: Any) -> None:
                with lock:
                    acked.append(value)
            return ok

        def on_error(value: str) -> Any:
            def err(exc: BaseException) -> None:
                with lock:
                    failed.append((value, repr(exc)))
            return err

        producer = make_producer(kafka, client_suffix="reliability-cluster")

        def stream() -> None:
            # Paced in chunks so that the kill lands while records are in flight.
            for start in range(0, n, CHUNK):
                for i in range(start, min(n, start + CHUNK)):
                    value = f"m-{i:07d}"
                    if killed.is_set():
                        sent_after_kill.add(value)
                    fut = producer.send(TOPIC, value=value.encode())
                    fut.add_callback(on_ack(value))
                    fut.add_errback(on_error(value))
                    sent[0] += 1
                time.sleep(0.02)
            producer.flush(timeout=180)

        writer = threading.Thread(target=stream)
        writer.start()
        # The kill follows the sender, not the acks, so that two thirds are still to be sent.
        wait_for(lambda: sent[0] >= n // 3 and len(acked) > 0, "a third of the stream sent",
                 timeout_s=120, interval_s=0.02)
        cluster.kill_node(leader)
        killed.set()
        acked_at_kill = len(acked)
        writer.join(timeout=240)
        assert not writer.is_alive(), "the producer never finished after the leader died"
        producer.close(timeout=30)

        survivors = [nid for nid in cluster.node_ids if nid != leader]
        new_leader = cluster.leader(TOPIC, 0)
        records = read_topic(cluster.kafka_settings(survivors), TOPIC, timeout_s=120)
    finally:
        cluster.stop()

    values = Counter(r.value.decode() for r in records)
    lost = set(acked) - set(values)
    phantom = set(values) - {f"m-{i:07d}" for i in range(n)}
    after_kill_acked = sent_after_kill & set(acked)
    print(f"\ncluster test: {n} sent, leader {leader} killed at {acked_at_kill} acked; "
          f"new leader {new_leader}; {len(acked)} acked, {len(failed)} failed, "
          f"{len(lost)} acked but lost, {sum(values.values()) - len(values)} duplicates in the log")
    assert new_leader != leader
    assert acked_at_kill < n, "the kill came after the stream had ended"
    assert not lost, f"{len(lost)} acknowledged records are gone, e.g. {sorted(lost)[:5]}"
    assert not phantom
    # The producer carried on through the leader change instead of giving up.
    assert after_kill_acked, f"nothing sent after the kill was acknowledged; errors: {failed[:3]}"
    assert not failed, f"{len(failed)} sends failed, e.g. {failed[:3]}"


def test_cluster_node_configuration(tmp_path: Path) -> None:
    """Three voters everywhere, replicated internal topics, SCRAM only where asked (no server)."""
    cluster = Cluster(tmp_path, nodes=3, scram_users={"alice": "pw"})
    props = {nid: b.spec.properties() for nid, b in cluster.brokers.items()}
    voters = {p["controller.quorum.voters"] for p in props.values()}
    assert len(voters) == 1
    assert sorted(v.split("@")[0] for v in voters.pop().split(",")) == ["1", "2", "3"]
    ports = [p for n in cluster.ports.values() for p in (n.port, n.controller_port, n.sasl_port)]
    assert len(set(ports)) == 9
    for nid, p in props.items():
        assert p["node.id"] == str(nid)
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["transaction.state.log.min.isr"] == "2"
        assert f"SASL_PLAINTEXT://127.0.0.1:{cluster.ports[nid].sasl_port}" in p["listeners"]
        assert "SCRAM-SHA-256" in p["sasl.enabled.mechanisms"]
        assert p["inter.broker.listener.name"] == "PLAINTEXT"
    args = cluster.brokers[1].spec.format_args
    assert "SCRAM-SHA-256=[name=alice,password=pw]" in args
    plain = Cluster(tmp_path / "plain", nodes=1)
    assert "SASL" not in plain.brokers[1].spec.properties()["listeners"]
    assert plain.brokers[1].spec.properties()["offsets.topic.replication.factor"] == "1"
    assert plain.brokers[1].spec.format_args == []
