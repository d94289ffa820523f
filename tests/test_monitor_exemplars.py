"""Exemplars per series: the most negative texts of the horizon, bounded, order-independent;
and the monitor's ``GET /exemplars`` that serves them."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.structs import TopicPartition

from sentimon.monitor.daemon import Monitor
from sentimon.monitor.exemplars import BUCKETS, MAX_SYMBOLS, TOP, Exemplars
from sentimon.monitor.records import ScoredRecord

T0 = 1_767_571_200.0
HORIZON = 600.0  # 12 buckets of 50 s
MARKET = ("market", "")


def rec(i: int, *, ts: float, p: float, topic: str = "Macro", tickers: tuple[str, ...] = (),
        rec_id: str | None = None) -> ScoredRecord:
    return ScoredRecord(
        id=rec_id or f"r{i}", ts=ts, kind="news", topic=topic,
        sentiment="negative" if p >= 0.5 else "neutral", score=-p, tickers=tickers,
        p_negative=p, text=f"text {i}", source="wire")


def store(*, top: int = TOP) -> Exemplars:
    return Exemplars(horizon_s=HORIZON, watchlist=["AAPL", "TSLA"], top=top)


def texts(ex: Exemplars, key: tuple[str, str]) -> list[str]:
    got = ex.get(key)
    return [] if got is None else [r.id for r in got.records]


def test_keeps_the_most_negative_per_series_and_counts_negative_tickers() -> None:
    ex = store()
    ps = [0.1, 0.95, 0.3, 0.8, 0.99, 0.6, 0.7, 0.2, 0.9]
    for i, p in enumerate(ps):
        ex.add(rec(i, ts=T0 + i, p=p, tickers=("AAPL", "XOM") if i % 2 else ("TSLA",)))
    ex.add(rec(100, ts=T0 + 5, p=0.97, topic="Earnings"))
    got = ex.get(("topic", "Macro"))
    assert got is not None
    assert [r.id for r in got.records] == ["r4", "r1", "r8", "r3", "r6"]  # top 5 by P(negative)
    assert [r.p_negative for r in got.records] == sorted(
        (r.p_negative for r in got.records), reverse=True)
    assert got.records[0].text == "text 4" and got.records[0].source == "wire"
    # Mentions in negative-labelled records only (p >= 0.5 here): r1, r3, r5 (odd) and r4,
    # r6, r8 (even); most first, then by symbol.
    assert got.tickers == (("AAPL", 3), ("TSLA", 3), ("XOM", 3))
    # The market holds every topic; watchlist tickers have their own series, others none.
    assert texts(ex, MARKET)[:2] == ["r4", "r100"]
    assert texts(ex, ("ticker", "AAPL")) == ["r1", "r3", "r5", "r7"]
    assert ex.get(("ticker", "XOM")) is None
    assert ex.get(("topic", "Nope")) is None


def test_ties_are_broken_by_time_then_id() -> None:
    ex = store(top=2)
    ex.add(rec(1, ts=T0 + 1, p=0.9))
    ex.add(rec(2, ts=T0 + 2, p=0.9))
    ex.add(rec(3, ts=T0 + 2, p=0.9, rec_id="r0"))
    assert texts(ex, ("topic", "Macro")) == ["r2", "r0"]


def test_bounded_whatever_the_rate() -> None:
    ex = store()
    rng = random.Random(1)
    for i in range(20_000):
        ex.add(rec(i, ts=T0 + i * 0.1, p=rng.random(), topic=f"t{i % 5}",
                   tickers=(f"S{rng.randrange(1000)}", "AAPL")))
    # Each series holds at most TOP records per bucket, over BUCKETS + 1 buckets.
    series = ex.series()
    assert len(series) == 5 + 2  # five topics, the market, AAPL
    assert len(ex) <= len(series) * (BUCKETS + 1) * TOP
    for buckets in ex._series.values():
        assert len(buckets) <= BUCKETS + 1
        assert all(len(b.symbols) <= MAX_SYMBOLS for b in buckets.values())


def test_expiry_follows_event_time_not_arrival() -> None:
    ex = store()
    ex.add(rec(1, ts=T0, p=0.99))
    ex.add(rec(2, ts=T0 + 300, p=0.5))
    assert texts(ex, ("topic", "Macro")) == ["r1", "r2"]
    # The watermark moves past the horizon (+ one bucket of rounding): r1 is gone.
    ex.add(rec(3, ts=T0 + HORIZON + 60, p=0.6, topic="Other"))
    assert texts(ex, ("topic", "Macro")) == ["r2"]
    # A record older than the horizon that arrives late is never shown.
    ex.add(rec(4, ts=T0 + 1, p=1.0))
    assert "r4" not in texts(ex, ("topic", "Macro"))
    # A live stream gone quiet: the wall clock moves the watermark, everything expires.
    ex.advance_to(T0 + 10 * HORIZON)
    assert ex.get(("topic", "Macro")) is None and len(ex) == 0
    got_none = ex.get(MARKET)
    assert got_none is None
    ex.advance_to(T0)  # never back
    ex.add(rec(5, ts=T0 + 10 * HORIZON, p=0.7))
    got = ex.get(("topic", "Macro"))
    assert got is not None and got.watermark == T0 + 10 * HORIZON
    assert got.since <= got.watermark - HORIZON


def test_duplicate_ids_are_held_once() -> None:
    ex = store()
    for _ in range(3):
        ex.add(rec(1, ts=T0, p=0.9))
    # The same id at another time (a producer reusing ids) is still reported once.
    ex.add(rec(1, ts=T0 + 200, p=0.9))
    assert texts(ex, ("topic", "Macro")) == ["r1"]


def test_reset_forgets() -> None:
    ex = store()
    ex.add(rec(1, ts=T0, p=0.9))
    ex.reset()
    assert ex.get(("topic", "Macro")) is None and ex.series() == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Exemplars(horizon_s=0, watchlist=[])


records_strategy = st.lists(
    st.tuples(st.floats(0, 3 * HORIZON), st.sampled_from([0.1, 0.5, 0.7, 0.9, 0.99]),
              st.sampled_from(["Macro", "Earnings"]),
              st.lists(st.sampled_from(["AAPL", "TSLA", "XOM"]), max_size=2, unique=True)),
    min_size=1, max_size=80)


@settings(max_examples=150, deadline=None)
@given(items=records_strategy, seed=st.integers(0, 2**32 - 1))
def test_order_of_arrival_changes_nothing(
        items: list[tuple[float, float, str, list[str]]], seed: int) -> None:
    records = [rec(i, ts=T0 + t, p=p, topic=topic, tickers=tuple(tk))
               for i, (t, p, topic, tk) in enumerate(items)]
    # Redeliveries of some records, as after a rebalance.
    records += records[: len(records) // 3]
    shuffled = records[:]
    random.Random(seed).shuffle(shuffled)
    a, b = store(), store()
    for r in sorted(records, key=lambda r: r.ts):
        a.add(r)
    for r in shuffled:
        b.add(r)
    assert sorted(a.series()) == sorted(b.series())
    for key in a.series():
        assert a.get(key) == b.get(key), key


@settings(max_examples=100, deadline=None)
@given(items=records_strategy)
def test_reports_exactly_the_top_of_the_rounded_horizon(
        items: list[tuple[float, float, str, list[str]]]) -> None:
    """Against a brute force over every record: nothing is lost by keeping per-bucket tops."""
    records = [rec(i, ts=T0 + t, p=p, topic=topic, tickers=tuple(tk))
               for i, (t, p, topic, tk) in enumerate(items)]
    ex = store()
    for r in records:
        ex.add(r)
    got = ex.get(MARKET)
    assert got is not None
    inside = [r for r in records if r.ts >= got.since]
    want = sorted(inside, key=lambda r: (r.p_negative, r.ts, r.id), reverse=True)[:TOP]
    assert list(got.records) == want
    assert got.since <= got.watermark - HORIZON < got.since + ex.bucket_s


# -- the monitor's GET /exemplars, over real HTTP, fed through the daemon's record path -----


class _Msg:
    """The two fields of a Kafka ConsumerRecord that Monitor._handle reads."""

    def __init__(self, offset: int, value: bytes) -> None:
        self.offset, self.value = offset, value


def _scored(i: int, ts: float, *, topic: str = "M&A | Investments", p: float = 0.05,
            tickers: tuple[str, ...] = (), text: str | None = None) -> bytes:
    from datetime import UTC, datetime

    iso = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
    doc = {"id": f"s{i}", "ts": iso, "kind": "news", "source": f"wire{i % 2}",
           "tickers": list(tickers), "topic": topic, "topic_prob": 0.9,
           "sentiment": "negative" if p >= 0.5 else "neutral",
           "sentiment_probs": {"negative": p, "neutral": 1 - p, "positive": 0.0},
           "score": -p, "model": "m@1", "scored_at": iso}
    if text is not None:
        doc["text"] = text
    return json.dumps(doc).encode()


@pytest.fixture
def served() -> Iterator[tuple[Monitor, str]]:
    from sentimon.config import MonitorSettings, Settings
    from sentimon.http import DaemonHTTPServer

    settings = Settings(monitor=MonitorSettings(
        watchlist=["AAPL", "TSLA"], short_window_s=60, baseline_window_s=600,
        history_s=600, baseline_slot_s=60, detection_horizon_s=120, min_history_s=120))
    mon = Monitor(settings, clock=lambda: T0 + 10_000)
    server = DaemonHTTPServer(host="127.0.0.1", port=0, registry=mon.registry,
                              routes={"/exemplars": mon.exemplars_route}).start()
    try:
        yield mon, f"http://127.0.0.1:{server.port}/exemplars"
    finally:
        server.stop()


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("application/json")
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_endpoint_serves_the_most_negative_texts_tickers_and_figures(
        served: tuple[Monitor, str]) -> None:
    mon, url = served
    tp = TopicPartition("sentimon.scored", 0)
    offset = 0

    def feed(*values: bytes) -> None:
        nonlocal offset
        for v in values:
            mon._handle(tp, _Msg(offset, v))
            offset += 1

    # Ten minutes of a quiet topic (one record in 10 negative), then a burst of negatives.
    feed(*(_scored(i, T0 + 2 * i, p=0.55 if i % 10 == 0 else 0.05, text=f"calm {i}")
           for i in range(300)))
    burst = [_scored(1000 + i, T0 + 600 + i, p=0.6 + i / 100, text=f"Acme plunges {i}",
                     tickers=("ACME", "AAPL") if i % 3 else ("TSLA",)) for i in range(30)]
    feed(*burst, burst[-1])  # the most negative one redelivered: quoted once
    # A record without text (written before records carried it) is counted, never quoted.
    feed(_scored(2000, T0 + 629.5, p=0.995))

    code, body = _get(url + "?topic=" + urllib.parse.quote("M&A | Investments"))
    assert code == 200, body
    assert body["series"] == {"family": "topic", "name": "M&A | Investments"}
    assert [t["text"] for t in body["texts"]] == [f"Acme plunges {i}" for i in (29, 28, 27, 26, 25)]
    first = body["texts"][0]
    assert first["source"] == "wire1" and first["tickers"] == ["ACME", "AAPL"]
    assert first["ts"] == "2026-01-05T00:10:29.000Z" and first["p_negative"] == 0.89
    # Mentions in the negative records of the horizon: ACME and AAPL on 20 of the 30.
    assert body["tickers"][:3] == [["AAPL", 20], ["ACME", 20], ["TSLA", 10]]
    assert body["volume"] == 31 + 30 // 2 and body["negative_share"] > 0.5
    assert 0.0 < body["baseline_share"] < 0.2
    assert body["observed"] > body["expected"] > 0
    assert body["evidence"] >= body["threshold"] > 0 and body["spike"] is True
    assert body["watermark"] == "2026-01-05T00:10:29.500Z"

    code, ticker = _get(url + "?ticker=tsla")
    assert code == 200 and ticker["series"] == {"family": "ticker", "name": "TSLA"}
    assert [t["text"] for t in ticker["texts"]][:2] == ["Acme plunges 27", "Acme plunges 24"]
    code, market = _get(url + "?market")
    assert code == 200 and market["series"] == {"family": "market", "name": ""}
    assert market["texts"][0]["text"] == "Acme plunges 29"


@pytest.mark.parametrize(("query", "code"), [
    ("", 400), ("?topic=A&ticker=AAPL", 400), ("?topic=Nope", 404), ("?ticker=GME", 404),
    ("?market", 404),  # nothing seen yet
])
def test_endpoint_refuses_what_it_cannot_answer(
        served: tuple[Monitor, str], query: str, code: int) -> None:
    _, url = served
    got, body = _get(url + query)
    assert got == code and "error" in body
