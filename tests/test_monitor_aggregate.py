"""Aggregation per topic, watchlist ticker and market, with duplicates and late records."""

from __future__ import annotations

import pytest

from sentimon.monitor.aggregate import Aggregator, DetectorConfig, Outcome
from sentimon.monitor.records import ScoredRecord, text_key
from sentimon.monitor.spike import SpikeRule

T0 = 1_700_000_000.0


def agg(**over: object) -> Aggregator:
    opts: dict[str, object] = dict(
        short_window_s=60, baseline_window_s=600, watchlist=["AAPL", "tsla"],
        rule=SpikeRule(spike_z=3.0, min_volume=30, min_lift=0.15), dedup_capacity=10_000,
        # History as long as the baseline window: "too old" means older than both.
        detector=DetectorConfig(horizon_s=60, slot_s=60, history_s=600),
    )
    opts.update(over)
    return Aggregator(**opts)


def rec(i: int, ts: float, *, topic: str = "Earnings", sentiment: str = "neutral",
        score: float = 0.0, kind: str = "news", tickers: tuple[str, ...] = ()) -> ScoredRecord:
    return ScoredRecord(id=f"r{i}", ts=ts, kind=kind, topic=topic, sentiment=sentiment,
                        score=score, tickers=tickers)


def test_topic_ticker_and_market_series() -> None:
    a = agg()
    a.add(rec(1, T0 + 100, sentiment="negative", score=-1.0, tickers=("AAPL", "GME")))
    a.add(rec(2, T0 + 100, topic="Macro", sentiment="positive", score=0.5, kind="comment",
              tickers=("TSLA",)))
    a.add(rec(3, T0 + 10, topic="Macro", sentiment="negative", score=-0.5))
    snap = a.snapshot()
    assert set(snap.topics) == {"Earnings", "Macro"}
    assert set(snap.tickers) == {"AAPL", "TSLA"}  # GME is not on the watchlist
    assert snap.market is not None
    assert (snap.market.short.n, snap.market.baseline.n) == (2, 1)
    assert snap.topics["Macro"].short.positive == 1
    assert snap.topics["Macro"].baseline.negative == 1
    assert snap.tickers["AAPL"].short.mean_score == -1.0
    assert snap.records == {"news": 2, "comment": 1}
    assert snap.last_event == {"news": T0 + 100, "comment": T0 + 100}
    assert snap.watermark == T0 + 100


def test_duplicates_are_counted_once() -> None:
    a = agg()
    r = rec(1, T0, sentiment="negative")
    assert a.add(r) is Outcome.COUNTED
    assert a.add(r) is Outcome.DUPLICATE
    assert a.add(r) is Outcome.DUPLICATE
    snap = a.snapshot()
    assert snap.market is not None and snap.market.short.n == 1
    assert snap.records == {"news": 1} and snap.duplicates == 2


def test_too_old_records_are_counted_apart_and_ignored() -> None:
    a = agg()
    a.add(rec(1, T0 + 1000))
    assert a.add(rec(2, T0 + 100, sentiment="negative")) is Outcome.TOO_OLD
    snap = a.snapshot()
    assert snap.too_old == 1 and snap.records == {"news": 1}
    assert snap.market is not None and snap.market.short.negative == 0


def test_replays_update_figures_but_not_counters() -> None:
    a = agg()
    a.add(rec(1, T0))
    a.reset()
    a.add(rec(1, T0), count=False)
    a.add(rec(1, T0), count=False)
    snap = a.snapshot()
    assert snap.market is not None and snap.market.short.n == 1
    assert snap.records == {"news": 1} and snap.duplicates == 0


def test_topic_cardinality_is_bounded() -> None:
    a = agg(max_topics=3)
    for i in range(5):
        a.add(rec(i, T0, topic=f"t{i}"))
    snap = a.snapshot()
    assert set(snap.topics) == {"t0", "t1", "t2"}
    assert snap.malformed == {"too_many_topics": 2}
    assert a.add(rec(9, T0, topic="t1")) is Outcome.COUNTED  # known topics still count


def test_spike_over_a_quiet_baseline() -> None:
    a = agg()
    # Baseline (before the short window): 400 records, 20 % negative.
    for i in range(400):
        a.add(rec(i, T0 + i % 300, sentiment="negative" if i % 5 == 0 else "neutral"))
    # Short window: 60 records, half negative.
    for i in range(60):
        a.add(rec(1000 + i, T0 + 500 + i % 50, sentiment="negative" if i % 2 else "neutral"))
    fig = a.snapshot().topics["Earnings"]
    assert (fig.short.n, fig.short.negative) == (60, 30)
    assert (fig.baseline.n, fig.baseline.negative) == (400, 80)
    # p_base is shrunk with 10 pseudo-records toward the market baseline share, itself
    # shrunk toward 1/3; the market baseline here is the topic's own 80 of 400.
    prior = (80 + 10 / 3) / 410
    p_base = (80 + 10 * prior) / 410
    assert fig.spike.p_base == pytest.approx(p_base, rel=1e-12)
    assert fig.spike.z == pytest.approx((0.5 - p_base) / (p_base * (1 - p_base) / 60) ** 0.5)
    assert fig.spike.z == pytest.approx(5.80, abs=0.01)
    assert fig.spike.spike is True


def test_watchlist_is_case_insensitive_and_bounded() -> None:
    a = agg()
    for i in range(100):
        a.add(rec(i, T0, tickers=(f"RND{i}", "TSLA")))
    assert set(a.snapshot().tickers) == {"TSLA"}


def _stream(n: int, seed: int) -> list[ScoredRecord]:
    import random

    rnd = random.Random(seed)
    out = []
    for i in range(n):
        ts = T0 + rnd.uniform(0, 6 * 3600)
        p = rnd.random()
        out.append(ScoredRecord(
            id=f"s{i}", ts=ts, kind="news", topic=rnd.choice(["Earnings", "Macro", "Fed"]),
            sentiment="negative" if p > 0.7 else "neutral", score=-p, p_negative=p,
            tickers=("AAPL",) if rnd.random() < 0.3 else ()))
    return out


def _detector_agg(*, repeat_window_s: float = 0.0) -> Aggregator:
    return Aggregator(short_window_s=900, baseline_window_s=3600, watchlist=["AAPL"],
                      rule=SpikeRule(), dedup_capacity=10_000,
                      detector=DetectorConfig(horizon_s=1800, slot_s=900, history_s=86400,
                                              min_history_s=3600,
                                              repeat_window_s=repeat_window_s))


def test_detections_do_not_depend_on_record_order() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    records = _stream(600, seed=1)
    ref = _detector_agg()
    for r in sorted(records, key=lambda r: r.ts):
        ref.add(r)
    expected = ref.detect()
    assert any(d.has_baseline for d in expected.values())

    @settings(max_examples=15, deadline=None)
    @given(st.permutations(records), st.integers(0, 3))
    def check(order: list[ScoredRecord], dup: int) -> None:
        a = _detector_agg()
        for r in order:
            a.add(r)
        for r in order[:dup]:
            a.add(r)  # a redelivery changes nothing
        assert a.detect() == expected

    check()


def _with_copies(records: list[ScoredRecord], seed: int) -> list[ScoredRecord]:
    """Half the records carry one of 30 texts (copies, some in the same hour), a quarter none."""
    import random
    from dataclasses import replace

    rnd = random.Random(seed)
    out = []
    for r in records:
        u = rnd.random()
        text = f"$AAPL text number {rnd.randrange(30)}" if u < 0.5 else (
            "" if u < 0.75 else f"unique {r.id}")
        out.append(replace(r, text=text))
    # The newest record is a copy of an older one in its hour: it moves event time on all
    # the same.
    newest = max(range(len(out)), key=lambda i: out[i].ts)
    hour = out[newest].ts // 3600 * 3600
    out[newest] = replace(out[newest], ts=hour + 3500, text="the last word")
    out.append(replace(out[newest], id="before-last", ts=hour + 100))
    return out


def test_copies_of_a_text_count_once_in_the_evidence_and_each_in_the_figures() -> None:
    a = _detector_agg(repeat_window_s=3600)
    for i in range(3):  # one text, three records in the same hour, one in the next
        a.add(ScoredRecord(id=f"c{i}", ts=T0 + 10 * i, kind="comment", topic="Earnings",
                           sentiment="negative", score=-0.9, p_negative=0.9,
                           text=f"RT  @x: Shares fall https://t.co/{i}  "))
    next_hour = (T0 // 3600 + 1) * 3600  # windows are aligned to the hour
    a.add(ScoredRecord(id="c3", ts=next_hour, kind="comment", topic="Earnings",
                       sentiment="negative", score=-0.9, p_negative=0.9, text="rt @x: shares FALL"))
    snap = a.snapshot()
    assert snap.market is not None and snap.market.baseline.n + snap.market.short.n == 4
    assert snap.repeats == 2
    slots = a.history.coarse[("topic", "Earnings")].values()  # what the baselines read
    assert sum(s[0] for s in slots) == 2 and sum(s[1] for s in slots) == 2


def test_evidence_with_copies_is_that_of_the_first_copies_alone_in_any_order() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    records = _with_copies(_stream(600, seed=2), seed=3)
    window = 3600.0
    first: dict[tuple[str, int], ScoredRecord] = {}
    key = {r.id: text_key(r.text) if r.text else "" for r in records}
    for r in records:
        if key[r.id]:
            slot = (key[r.id], int(r.ts // window))
            if slot not in first or (r.ts, r.id) < (first[slot].ts, first[slot].id):
                first[slot] = r
    alone = [r for r in records if not key[r.id] or first[(key[r.id], int(r.ts // window))] is r]
    assert 300 < len(alone) < 550  # copies exist, and most records still count
    brute = _detector_agg()  # every record counts
    for r in sorted(alone, key=lambda r: r.ts):
        brute.add(r)
    brute.advance_to(max(r.ts for r in records))
    expected = brute.detect()
    assert any(d.has_baseline for d in expected.values())
    every = _detector_agg()
    for r in records:
        every.add(r)
    assert every.detect() != expected  # the copies do change the evidence when counted

    @settings(max_examples=15, deadline=None)
    @given(st.permutations(records))
    def check(order: list[ScoredRecord]) -> None:
        a = _detector_agg(repeat_window_s=window)
        for r in order:
            a.add(r)
        assert a.detect() == expected
        assert a.snapshot().repeats == len(records) - len(alone)

    check()
