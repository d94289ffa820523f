"""What /metrics shows: contract names, labels, exact values, no stale label sets."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sentimon.monitor.aggregate import Aggregator, DetectorConfig, Snapshot
from sentimon.monitor.collector import MonitorCollector
from sentimon.monitor.records import ScoredRecord
from sentimon.monitor.spike import SpikeRule

T0 = 1_700_000_000.0


def scrape(snapshot: Snapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reg = CollectorRegistry()
    reg.register(MonitorCollector(lambda: snapshot))
    text = generate_latest(reg).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def agg() -> Aggregator:
    return Aggregator(short_window_s=60, baseline_window_s=600, watchlist=["AAPL"],
                      rule=SpikeRule(spike_z=2.0, min_volume=2, min_lift=0.15, min_baseline_volume=1),
                      dedup_capacity=100)


def rec(i: int, ts: float, sentiment: str, score: float, topic: str = "Earnings",
        tickers: tuple[str, ...] = ()) -> ScoredRecord:
    return ScoredRecord(id=str(i), ts=ts, kind="news", topic=topic, sentiment=sentiment,
                        score=score, tickers=tickers)


def test_exact_series_and_values() -> None:
    a = agg()
    a.add(rec(1, T0, "neutral", 0.0, tickers=("AAPL",)))
    a.add(rec(2, T0 + 100, "negative", -0.5, tickers=("AAPL",)))
    a.add(rec(3, T0 + 100, "negative", -1.0))
    a.add(rec(3, T0 + 100, "negative", -1.0))  # duplicate
    a.add(rec(4, T0 + 101, "positive", 0.5, topic="Macro"))
    m = scrape(a.snapshot())
    e = (("topic", "Earnings"),)
    assert m[("sentimon_topic_volume", (*e, ("window", "short")))] == 2
    assert m[("sentimon_topic_volume", (*e, ("window", "baseline")))] == 1
    assert m[("sentimon_topic_negative_share", (*e, ("window", "short")))] == 1.0
    assert m[("sentimon_topic_negative_share", (*e, ("window", "baseline")))] == 0.0
    assert m[("sentimon_topic_positive_share", (*e, ("window", "short")))] == 0.0
    assert m[("sentimon_topic_mean_score", (*e, ("window", "short")))] == -0.75
    # Baseline: one neutral record. The market prior is (0 + 10/3) / 11, the topic's
    # p_base (0 + 10 * prior) / 11; the short share is 2 of 2.
    p_base = 10 * (10 / 3 / 11) / 11
    z = (1 - p_base) / (p_base * (1 - p_base) / 2) ** 0.5
    assert m[("sentimon_topic_spike_zscore", e)] == pytest.approx(z, rel=1e-12)
    assert z == pytest.approx(2.29, abs=0.01)
    # The z statistic is shown; alerts come from the detector, silent without history.
    assert m[("sentimon_topic_spike", e)] == 0.0
    assert ("sentimon_topic_evidence", e) not in m
    assert m[("sentimon_topic_spike", (("topic", "Macro"),))] == 0.0
    # Macro has no baseline records: share and mean series are absent, volume is 0.
    macro_base = (("topic", "Macro"), ("window", "baseline"))
    assert m[("sentimon_topic_volume", macro_base)] == 0
    assert ("sentimon_topic_negative_share", macro_base) not in m
    assert m[("sentimon_ticker_volume", (("ticker", "AAPL"), ("window", "short")))] == 1
    assert m[("sentimon_ticker_mean_score", (("ticker", "AAPL"), ("window", "baseline")))] == 0.0
    assert ("sentimon_ticker_spike", (("ticker", "AAPL"),)) in m
    assert m[("sentimon_market_volume", (("window", "short"),))] == 3
    assert m[("sentimon_market_positive_share", (("window", "short"),))] == 1 / 3
    assert m[("sentimon_monitor_records_total", (("kind", "news"),))] == 4
    assert m[("sentimon_monitor_records_total", (("kind", "comment"),))] == 0
    assert m[("sentimon_monitor_duplicates_total", ())] == 1
    assert m[("sentimon_monitor_repeated_texts_total", ())] == 0  # these records have no text
    assert m[("sentimon_monitor_last_event_timestamp_seconds", (("kind", "news"),))] == T0 + 101


def test_copies_of_a_text_are_counted_in_the_figures_and_as_repeats() -> None:
    from dataclasses import replace

    a = Aggregator(short_window_s=60, baseline_window_s=600, watchlist=["AAPL"],
                   rule=SpikeRule(), dedup_capacity=100,
                   detector=DetectorConfig(repeat_window_s=3600))
    a.add(replace(rec(1, T0, "negative", -1.0), text="RT @x: shares fall"))
    a.add(replace(rec(2, T0 + 5, "negative", -1.0), text="rt @x:  Shares fall"))
    m = scrape(a.snapshot())
    assert m[("sentimon_market_volume", (("window", "short"),))] == 2
    assert m[("sentimon_monitor_repeated_texts_total", ())] == 1


def test_stale_label_sets_disappear() -> None:
    a = agg()
    a.add(rec(1, T0, "negative", -1.0, topic="Macro", tickers=("AAPL",)))
    assert ("sentimon_topic_volume", (("topic", "Macro"), ("window", "short"))) in scrape(
        a.snapshot())
    a.add(rec(2, T0 + 700, "neutral", 0.0, topic="Earnings"))  # Macro leaves the baseline
    m = scrape(a.snapshot())
    assert not any(labels and ("topic", "Macro") in labels for _, labels in m)
    assert not any(name.startswith("sentimon_ticker_") for name, _ in m)
    assert ("sentimon_topic_volume", (("topic", "Earnings"), ("window", "short"))) in m


def test_lag_readiness_and_malformed_reasons() -> None:
    from dataclasses import replace

    a = agg()
    a.note_malformed("not_json")
    a.note_malformed("not_json")
    snap = replace(a.snapshot(), lag={("sentimon.scored", 2): 7}, ready=False)
    m = scrape(snap)
    assert m[("sentimon_monitor_consumer_lag",
              (("partition", "2"), ("topic", "sentimon.scored")))] == 7
    assert m[("sentimon_monitor_malformed_records_total", (("reason", "not_json"),))] == 2
    assert m[("sentimon_monitor_ready", ())] == 0
    assert not any(name.startswith("sentimon_market_") for name, _ in m)  # no records yet


def test_detector_series_match_the_aggregator() -> None:
    """Evidence, threshold, expected and observed negatives, and spike, per series."""
    from sentimon.monitor.aggregate import DetectorConfig

    a = Aggregator(short_window_s=900, baseline_window_s=86_400, watchlist=["AAPL"],
                   rule=SpikeRule(), dedup_capacity=100_000,
                   detector=DetectorConfig(horizon_s=3600, slot_s=900, history_s=86_400,
                                           min_history_s=3600))
    i = 0
    for minute in range(6 * 60):  # six hours, 4 records a minute, a quarter negative
        for j in range(4):
            neg = j == 0
            a.add(ScoredRecord(id=str(i), ts=T0 + minute * 60 + j * 15, kind="news",
                               topic="Earnings", sentiment="negative" if neg else "neutral",
                               score=-0.8 if neg else 0.0, p_negative=0.8 if neg else 0.1))
            i += 1
    for k in range(60):  # then 60 strongly negative records in five minutes
        a.add(ScoredRecord(id=f"b{k}", ts=T0 + 6 * 3600 + k * 5, kind="news", topic="Earnings",
                           sentiment="negative", score=-0.9, p_negative=0.95))
    d = a.detect()[("topic", "Earnings")]
    assert d.alarm and d.observed > 3 * d.expected
    m = scrape(a.snapshot())
    e = (("topic", "Earnings"),)
    assert m[("sentimon_topic_evidence", e)] == pytest.approx(d.evidence)
    assert m[("sentimon_topic_evidence_threshold", e)] == pytest.approx(d.threshold)
    assert m[("sentimon_topic_expected_negatives", e)] == pytest.approx(d.expected)
    assert m[("sentimon_topic_observed_negatives", e)] == pytest.approx(d.observed)
    assert m[("sentimon_topic_spike", e)] == 1.0
    assert m[("sentimon_market_spike", ())] == 1.0
    assert ("sentimon_market_evidence_threshold", ()) in m
