"""Kafka plumbing shared by every sentimon daemon: clients, topics, lag, graceful stop."""

from sentimon.kafka.admin import ensure_topics, wait_for_broker
from sentimon.kafka.clients import make_admin, make_consumer, make_producer, security_config
from sentimon.kafka.lag import consumer_lag
from sentimon.kafka.shutdown import GracefulStop

__all__ = [
    "GracefulStop",
    "consumer_lag",
    "ensure_topics",
    "make_admin",
    "make_consumer",
    "make_producer",
    "security_config",
    "wait_for_broker",
]
