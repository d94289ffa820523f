"""Topic creation and broker readiness, with real client calls."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable

from kafka.errors import KafkaError, NoError, TopicAlreadyExistsError, for_code

from sentimon.config import KafkaSettings, TopicSettings
from sentimon.kafka.clients import KafkaAuthError, make_admin

log = logging.getLogger(__name__)


def _port_open(bootstrap: str) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
                return True
        except (OSError, ValueError):
            continue
    return False


def wait_for_broker(kafka: KafkaSettings, *, timeout_s: float = 60.0) -> bool:
    """Return True once the cluster answers a metadata request, False after ``timeout_s``.

    A plain TCP probe comes first so that a broker still starting costs no client
    bootstrap back-off and no connection-refused noise in the log.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if not _port_open(kafka.bootstrap_servers):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.25)
            continue
        try:
            admin = make_admin(kafka, request_timeout_ms=5_000, bootstrap_timeout_ms=5_000)
            try:
                cluster = admin.describe_cluster()
                if cluster.get("controller_id") is not None or cluster.get("brokers"):
                    return True
            finally:
                admin.close()
        except KafkaAuthError:
            raise  # a refused login does not get better by waiting
        except (KafkaError, OSError, ValueError) as exc:
            log.debug("broker not ready", extra={"error": repr(exc)})
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def ensure_topics(
    kafka: KafkaSettings,
    names: Iterable[str],
    *,
    partitions: int,
    replication_factor: int = 1,
    configs: dict[str, str] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet and wait until all have leaders.

    Returns the names this call created. Creation is attempted for every name, and
    "already exists" is the normal answer, because a fresh topic list can be stale.
    """
    wanted = list(dict.fromkeys(names))
    admin = make_admin(kafka)
    try:
        request = {
            n: {"num_partitions": partitions, "replication_factor": replication_factor,
                "configs": dict(configs or {})}
            for n in wanted
        }
        result = admin.create_topics(request, raise_errors=False)
        created = []
        for topic in result["topics"]:
            error = for_code(topic["error_code"])
            if error is NoError:
                created.append(topic["name"])
            elif error is not TopicAlreadyExistsError:
                raise error(f"creating topic {topic['name']}: {topic.get('error_message')}")
        admin.wait_for_topics(wanted, timeout_ms=30_000)
        if created:
            log.info("created topics", extra={"topics": ",".join(created)})
        return created
    finally:
        admin.close()


def ensure_pipeline_topics(kafka: KafkaSettings, topics: TopicSettings) -> list[str]:
    """Create every topic of the pipeline (inputs, scored, dead letters)."""
    return ensure_topics(
        kafka,
        [*topics.inputs, topics.scored, topics.dlq],
        partitions=topics.partitions,
        replication_factor=topics.replication_factor,
    )
