"""A Prometheus collector that yields the monitor's figures at scrape time.

Gauges are built fresh from a :class:`Snapshot` on every scrape, so a topic or ticker whose
records have all left the baseline window simply stops being exported: no stale label set
lingers. Shares and mean scores of an empty window are left out rather than shown as 0.
Names follow docs/contracts.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sentimon.monitor.aggregate import SeriesFigures, Snapshot
from sentimon.monitor.records import KINDS

WINDOWS = ("short", "baseline")


def _series_metrics(prefix: str, label: str, series: dict[str, SeriesFigures]) -> list[Metric]:
    """The metrics of one series family (``topic``, ``ticker`` or the market)."""
    what = f"per {label}" if label else "of the whole market"
    labels = [label, "window"] if label else ["window"]
    volume = GaugeMetricFamily(f"{prefix}_volume", f"Records in the window, {what}", labels=labels)
    neg = GaugeMetricFamily(f"{prefix}_negative_share",
                            f"Share of negative records in the window, {what}", labels=labels)
    pos = GaugeMetricFamily(f"{prefix}_positive_share",
                            f"Share of positive records in the window, {what}", labels=labels)
    mean = GaugeMetricFamily(f"{prefix}_mean_score",
                             f"Mean score P(positive)-P(negative) in the window, {what}",
                             labels=labels)
    out: list[Metric] = [volume, neg, pos, mean]
    head_labels = [label] if label else []
    evidence = GaugeMetricFamily(
        f"{prefix}_evidence",
        f"Detector evidence of a surge of negatives, log R in nats (alerts at the threshold), {what}",
        labels=head_labels)
    threshold = GaugeMetricFamily(
        f"{prefix}_evidence_threshold",
        f"Evidence at which the detector alarms, from the false-alerts-a-day budget, {what}",
        labels=head_labels)
    expected = GaugeMetricFamily(
        f"{prefix}_expected_negatives",
        f"Negatives the baseline expects over the short window at this time of day, {what}",
        labels=head_labels)
    observed = GaugeMetricFamily(
        f"{prefix}_observed_negatives",
        f"Negatives observed over the short window (sum of P(negative) or labels), {what}",
        labels=head_labels)
    spike = GaugeMetricFamily(
        f"{prefix}_spike",
        f"1 while the detector's evidence is at or above its threshold, {what}",
        labels=head_labels)
    out += [evidence, threshold, expected, observed, spike]
    zscore = None
    if label:
        zscore = GaugeMetricFamily(
            f"{prefix}_spike_zscore",
            f"z of the short-window negative share against the baseline share (shown for "
            f"comparison; alerts use the detector), {what}",
            labels=[label])
        out.append(zscore)
    for name in sorted(series):
        fig = series[name]
        head = [name] if label else []
        for window, counts in zip(WINDOWS, (fig.short, fig.baseline), strict=True):
            volume.add_metric([*head, window], counts.n)
            if counts.n:
                neg.add_metric([*head, window], counts.negative_share or 0.0)
                pos.add_metric([*head, window], counts.positive_share or 0.0)
                mean.add_metric([*head, window], counts.mean_score or 0.0)
        d = fig.detection
        if d.has_baseline:
            evidence.add_metric(head, max(d.evidence, -1e3))
            threshold.add_metric(head, d.threshold)
            expected.add_metric(head, d.expected)
            observed.add_metric(head, d.observed)
        spike.add_metric(head, 1.0 if d.alarm else 0.0)
        if zscore is not None:
            zscore.add_metric(head, fig.spike.z)
    return out


class MonitorCollector(Collector):
    """Yields every monitor metric from ``snapshot()``, called once per scrape."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        # Registering must not take a snapshot of a half-built daemon; names are checked lazily.
        return []

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield from _series_metrics("sentimon_topic", "topic", snap.topics)
        yield from _series_metrics("sentimon_ticker", "ticker", snap.tickers)
        yield from _series_metrics("sentimon_market", "", {"": snap.market} if snap.market else {})

        records = CounterMetricFamily("sentimon_monitor_records",
                                      "Unique scored records aggregated, by kind", labels=["kind"])
        for kind in sorted(set(KINDS) | set(snap.records)):
            records.add_metric([kind], snap.records.get(kind, 0))
        yield records
        yield CounterMetricFamily("sentimon_monitor_duplicates",
                                  "Scored records whose id was already counted (redeliveries)",
                                  value=snap.duplicates)
        yield CounterMetricFamily(
            "sentimon_monitor_repeated_texts",
            "Scored records left out of the detector's evidence as copies of a text already "
            "counted in the same window (monitor.repeat_window_s); the rolling figures count them",
            value=snap.repeats)
        yield CounterMetricFamily(
            "sentimon_monitor_records_too_old",
            "Scored records older than the baseline window at arrival, not counted in figures",
            value=snap.too_old)
        malformed = CounterMetricFamily("sentimon_monitor_malformed_records",
                                        "Scored records that could not be used, by reason",
                                        labels=["reason"])
        for reason in sorted(snap.malformed):
            malformed.add_metric([reason], snap.malformed[reason])
        yield malformed
        last = GaugeMetricFamily("sentimon_monitor_last_event_timestamp_seconds",
                                 "Event time of the newest record, by kind", labels=["kind"])
        for kind in sorted(snap.last_event):
            last.add_metric([kind], snap.last_event[kind])
        yield last
        watermark = GaugeMetricFamily(
            "sentimon_monitor_watermark_timestamp_seconds",
            "Newest event time seen: the end of every window")
        if snap.watermark is not None:
            watermark.add_metric([], snap.watermark)
        yield watermark
        lag = GaugeMetricFamily("sentimon_monitor_consumer_lag",
                                "Records not yet read, per assigned partition",
                                labels=["topic", "partition"])
        for (topic, partition), value in sorted(snap.lag.items()):
            lag.add_metric([topic, str(partition)], value)
        yield lag
        yield GaugeMetricFamily("sentimon_monitor_ready",
                                "1 once the windows are rebuilt and the consumer caught up",
                                value=1.0 if snap.ready else 0.0)
