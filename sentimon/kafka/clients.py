"""Kafka client factories: one place that turns :class:`KafkaSettings` into clients.

Defaults are chosen for at-least-once processing: consumers never auto-commit (daemons
commit after their output is acknowledged) and producers wait for all in-sync replicas.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaConnectionError, KafkaTimeoutError

from sentimon.config import ConfigError, KafkaSettings

T = TypeVar("T")


class KafkaAuthError(ConfigError):
    """The broker refused the configured SASL credentials (the password is never shown).

    A :class:`~sentimon.config.ConfigError`, so ``sentimon`` prints it as one line and
    exits 2 instead of retrying a login that cannot succeed.
    """


class _AuthFailures(logging.Handler):
    """Watches kafka-python's log while a client bootstraps: it only raises "timed out".

    A refused login shows up either as an explicit ``SaslAuthenticationFailedError`` or,
    when the broker closes the socket before its answer is read, as connections that were
    accepted and then dropped during the handshake (a stopped broker refuses them instead).
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.detail: str | None = None
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "SaslAuthenticationFailedError" in msg:
            detail = msg.rsplit("SaslAuthenticationFailedError:", 1)[-1].split(" (backoff")[0]
            self.detail = detail.strip(" )") or "authentication failed"
        elif "Connection lost" in msg and ("socket disconnected" in msg
                                          or "IllegalSaslStateError" in msg):
            self.dropped += 1

    def reason(self) -> str | None:
        if self.detail:
            return self.detail
        if self.dropped:
            return (f"the broker closed the connection during the login, {self.dropped} time(s) "
                    "(wrong user name or password, another mechanism, or not a SASL listener)")
        return None


def security_config(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection and security keyword arguments common to every kafka-python client."""
    cfg: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in kafka.bootstrap_servers.split(",") if s.strip()],
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": kafka.request_timeout_ms,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        cfg["ssl_check_hostname"] = kafka.ssl_check_hostname
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(kafka, key)
            if value is not None:
                cfg[key] = str(value)
    if kafka.security_protocol.startswith("SASL"):
        cfg["sasl_mechanism"] = kafka.sasl_mechanism
        cfg["sasl_plain_username"] = kafka.sasl_username
        cfg["sasl_plain_password"] = (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        )
    return cfg


def _connect(kafka: KafkaSettings, build: Callable[[], T]) -> T:
    """Run a client constructor, turning a refused SASL login into :class:`KafkaAuthError`."""
    if not kafka.security_protocol.startswith("SASL"):
        return build()
    watcher = _AuthFailures()
    logger = logging.getLogger("kafka")
    logger.addHandler(watcher)
    try:
        return build()
    except (KafkaTimeoutError, KafkaConnectionError):
        reason = watcher.reason()
        if reason is None:  # nothing answered at all: not a login problem
            raise
        raise KafkaAuthError(
            f"Kafka refused the SASL login of user {kafka.sasl_username!r} "
            f"({kafka.sasl_mechanism}) at {kafka.bootstrap_servers}: {reason}. Check "
            "SENTIMON_KAFKA__SASL_USERNAME, SENTIMON_KAFKA__SASL_PASSWORD and "
            "SENTIMON_KAFKA__SASL_MECHANISM"
        ) from None
    finally:
        logger.removeHandler(watcher)


def make_consumer(
    kafka: KafkaSettings,
    *,
    group_id: str | None,
    client_suffix: str = "consumer",
    **overrides: Any,
) -> KafkaConsumer:
    """A consumer that commits only when told to and starts at the earliest offset."""
    cfg: dict[str, Any] = {
        **security_config(kafka),
        "client_id": f"{kafka.client_id}-{client_suffix}",
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        # Topics are created by sentimon with explicit partition counts, never by accident.
        "allow_auto_create_topics": False,
        "max_poll_records": 500,
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 3_000,
    }
    cfg.update(overrides)
    return _connect(kafka, lambda: KafkaConsumer(**cfg))


def subscribe(consumer: KafkaConsumer, topics: list[str], *, listener: Any = None) -> None:
    """Subscribe ``consumer`` to ``topics`` with the partition metadata already known.

    Without it the group's first assignment is made before the subscribed topics' metadata
    arrives; the leader then sees "the metadata changed since I assigned" and starts a
    second rebalance right after the first. kafka-python 3.0.12 can lose the end of that
    second rebalance when its JoinGroup finishes between two polls (the member is left with
    no partitions and heartbeats off, for good). Fetching the metadata first (``topics()``
    updates the coordinator's snapshot) makes the first assignment the final one.
    """
    consumer.subscribe(topics=topics, listener=listener)
    consumer.topics()


def make_producer(kafka: KafkaSettings, *, client_suffix: str = "producer", **overrides: Any) -> KafkaProducer:
    """A producer that waits for all in-sync replicas and retries without reordering."""
    cfg: dict[str, Any] = {
        **security_config(kafka),
        "client_id": f"{kafka.client_id}-{client_suffix}",
        "acks": "all",
        "retries": 2**31 - 1,
        "enable_idempotence": True,
        "max_in_flight_requests_per_connection": 5,
        "linger_ms": 5,
        "compression_type": None,
    }
    cfg.update(overrides)
    return _connect(kafka, lambda: KafkaProducer(**cfg))


def make_admin(kafka: KafkaSettings, **overrides: Any) -> KafkaAdminClient:
    """An admin client with the same connection and security settings."""
    cfg: dict[str, Any] = {**security_config(kafka), "client_id": f"{kafka.client_id}-admin"}
    cfg.update(overrides)
    return _connect(kafka, lambda: KafkaAdminClient(**cfg))
