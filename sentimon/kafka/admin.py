"""Topic creation and broker readiness, with real client calls."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from sentimon.config import KafkaSettings, TopicSettings
from sentimon.kafka.clients import make_admin

log = logging.getLogger(__name__)


def wait_for_broker(kafka: KafkaSettings, *, timeout_s: float = 60.0) -> bool:
    """Return True once the cluster answers a metadata request, False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = make_admin(kafka, request_timeout_ms=5_000, bootstrap_timeout_ms=5_000)
            try:
                cluster = admin.describe_cluster()
                if cluster.get("controller_id") is not None or cluster.get("brokers"):
                    return True
            finally:
                admin.close()
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
    """Create the topics that do not exist yet; return the names that were created."""
    wanted = list(dict.fromkeys(names))
    admin = make_admin(kafka)
    try:
        existing = set(admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if not missing:
            return []
        new = [
            NewTopic(n, num_partitions=partitions, replication_factor=replication_factor,
                     topic_configs=dict(configs or {}))
            for n in missing
        ]
        try:
            admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass  # another process created it between list and create
        log.info("created topics", extra={"topics": ",".join(missing)})
        return missing
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
