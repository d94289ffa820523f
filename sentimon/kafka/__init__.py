"""Kafka plumbing shared by every sentimon daemon: clients, topics, lag, graceful stop."""

from sentimon.kafka.admin import ensure_topics, wait_for_broker
from sentimon.kafka.clients import make_admin, make_consumer, make_producer, security_config, subscribe
from sentimon.kafka.lag import consumer_lag
from sentimon.kafka.rebalance import JoinWatch
from sentimon.kafka.shutdown import GracefulStop

__all__ = [
    "GracefulStop",
    "JoinWatch",
    "consumer_lag",
    "ensure_topics",
    "make_admin",
    "make_consumer",
    "make_producer",
    "security_config",
    "subscribe",
    "wait_for_broker",
]
