"""The scorer's Prometheus metrics, named exactly as in docs/contracts.md.

Each :class:`ScorerMetrics` owns its registry, so several scorers can run in one process
(tests) without clashing; the daemon serves that registry on ``DaemonHTTPServer``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sentimon.ingest.message import REASONS

_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
_TOKEN_BUCKETS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Event time to scoring time: sub-second live, days or years when replaying history.
_E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400, 604800)


class ScorerMetrics:
    """Counters, histograms and gauges of one scorer process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "sentimon_scorer_records_consumed", "Records read from the input topics.",
            ["topic"], registry=r,
        )
        self.scored = Counter(
            "sentimon_scorer_records_scored", "Records scored and on the scored topic.",
            ["topic"], registry=r,
        )
        self.dead_lettered = Counter(
            "sentimon_scorer_records_dead_lettered",
            "Records refused and acknowledged on the dead-letter topic, by reason.",
            ["reason"], registry=r,
        )
        for reason in REASONS:
            self.dead_lettered.labels(reason=reason)  # every reason shows, at 0, from the start
        self.batch_size = Histogram(
            "sentimon_scorer_batch_size", "Records per model run.", buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "sentimon_scorer_batch_tokens", "Tokens per model run.", buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "sentimon_scorer_inference_seconds", "Wall time of one model run.",
            buckets=_SECONDS_BUCKETS, registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "sentimon_scorer_end_to_end_seconds", "scored_at minus the record's event time.",
            buckets=_E2E_BUCKETS, registry=r,
        )
        self.consumer_lag = Gauge(
            "sentimon_scorer_consumer_lag",
            "Log end offset minus the group's committed offset, per assigned partition.",
            ["topic", "partition"], registry=r,
        )
        self.loop_age_seconds = Gauge(
            "sentimon_scorer_loop_age_seconds",
            "Seconds since the main loop last completed an iteration (grows while a batch is stuck).",
            registry=r,
        )
        self.cache_requests = Counter(
            "sentimon_scorer_cache_requests",
            "Scored records by whether their normalised text was scored before (hit: no model "
            "run; an earlier record of the same batch counts) or went to the model (miss).",
            ["result"], registry=r,
        )
        for result in ("hit", "miss"):
            self.cache_requests.labels(result=result)
        self.cache_hit_ratio = Gauge(
            "sentimon_scorer_cache_hit_ratio", "Hits over lookups of the prediction cache since start.",
            registry=r,
        )
        self.cache_entries = Gauge(
            "sentimon_scorer_cache_entries", "Distinct normalised texts in the prediction cache.",
            registry=r,
        )
        self.cache_bytes = Gauge(
            "sentimon_scorer_cache_bytes",
            "Estimated memory of the prediction cache's keys and predictions, bytes.", registry=r,
        )
        self.model_info = Gauge(
            "sentimon_model_info", "The model this scorer runs (value is always 1).",
            ["name", "version", "provider", "variant"], registry=r,
        )

    def set_lag(self, lag: dict[tuple[str, int], int]) -> None:
        """Replace the lag series with ``lag``; partitions no longer assigned disappear."""
        self.consumer_lag.clear()
        for (topic, partition), value in lag.items():
            self.consumer_lag.labels(topic=topic, partition=str(partition)).set(value)
