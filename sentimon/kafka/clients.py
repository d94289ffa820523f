"""Kafka client factories: one place that turns :class:`KafkaSettings` into clients.

Defaults are chosen for at-least-once processing: consumers never auto-commit (daemons
commit after their output is acknowledged) and producers wait for all in-sync replicas.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from sentimon.config import KafkaSettings


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
    return KafkaConsumer(**cfg)


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
    return KafkaProducer(**cfg)


def make_admin(kafka: KafkaSettings, **overrides: Any) -> KafkaAdminClient:
    """An admin client with the same connection and security settings."""
    cfg: dict[str, Any] = {**security_config(kafka), "client_id": f"{kafka.client_id}-admin"}
    cfg.update(overrides)
    return KafkaAdminClient(**cfg)
