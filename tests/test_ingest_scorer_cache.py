"""Tokenize once, plan the runs, score each distinct text once: the scorer without Kafka.

The scorer's batch path runs with a recording producer and consumer in place of the
clients, on the released model, so what each record would carry to the broker is checked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from sentimon.config import ScorerSettings, Settings
from sentimon.ingest.scorer import PredictionCache, Scorer
from sentimon.kafka import GracefulStop
from sentimon.model.inference import Prediction, SentimentModel

TWEET = "RT @trader: $AAPL beats earnings estimates &amp; raises guidance https://t.co/abc"
SAME_TWEET = "RT @trader: $AAPL beats earnings estimates & raises guidance   https://t.co/xyz"
OTHERS = [
    "Oil prices slump as OPEC+ output rises",
    "Fed raises rates by 75 basis points, signals more hikes ahead and markets tumble hard",
    "$TSLA recalls 300,000 vehicles over a seat belt issue",
]


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return SentimentModel.load(device="cpu")


class Recording:
    """Counts what the scorer asks of the real model."""

    def __init__(self, model: SentimentModel) -> None:
        self._model = model
        self.name, self.version, self.variant = model.name, model.version, model.variant
        self.provider = model.provider
        self.encoded: list[str] = []
        self.scored_rows = 0
        self.runs: list[list[int]] = []

    @property
    def session_providers(self) -> tuple[str, ...]:
        return self._model.session_providers

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        raise AssertionError("the scorer tokenises through encode() only")

    def encode(self, texts: Sequence[str], *, normalized: bool = False) -> list[list[int]]:
        self.encoded += list(texts)
        return self._model.encode(texts, normalized=normalized)

    def predict_ids(self, ids: Sequence[Sequence[int]], runs: Sequence[Sequence[int]]) -> list[Prediction]:
        self.scored_rows += len(ids)
        self.runs += [list(r) for r in runs]
        return self._model.predict_ids(ids, runs)

    def predict(self, texts: Sequence[str], *, batch_size: int = 64, sort_by_length: bool = True) -> list[Prediction]:
        return self._model.predict(texts, batch_size=batch_size, sort_by_length=sort_by_length)


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes


class Future:
    is_done = True

    def get(self, timeout: float | None = None) -> None:
        return None


@dataclass
class FakeProducer:
    sent: list[Sent] = field(default_factory=list)

    def send(self, topic: str, *, key: bytes | None, value: bytes) -> Future:
        self.sent.append(Sent(topic, key, value))
        return Future()

    def flush(self, timeout: float | None = None) -> None:
        return None


@dataclass
class FakeConsumer:
    commits: list[Any] = field(default_factory=list)

    def commit(self, offsets: Any) -> None:
        self.commits.append(offsets)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


def make_scorer(tmp_path: Path, model: Any, **scorer: Any) -> tuple[Scorer, FakeProducer]:
    settings = Settings(home=tmp_path, scorer=ScorerSettings(metrics_port=0, **scorer))
    s = Scorer(settings, model, stop=GracefulStop(), serve_http=False)
    producer = FakeProducer()
    s._producer, s._consumer = producer, FakeConsumer()  # type: ignore[assignment]
    return s, producer


def feed(scorer: Scorer, texts: list[str], *, first_offset: int, topic: str = "sentimon.comments") -> None:
    """One poll's records, then the batch in hand is produced (as when it falls due)."""
    recs = [Rec(topic, 0, first_offset + k, 1_700_000_000_000,
                None, json.dumps({"id": f"m{first_offset + k}", "ts": "2024-01-02T03:04:05Z",
                                  "text": t}).encode()) for k, t in enumerate(texts)]
    scorer._ingest(recs)
    batch = scorer.batcher.flush()
    if batch is not None:
        scorer._process(batch)


def docs(producer: FakeProducer) -> list[dict[str, Any]]:
    return [json.loads(s.value) for s in producer.sent if s.topic == "sentimon.scored"]


VARYING = {"id", "ts", "scored_at", "text"}  # per record; "text" once scored records carry it


def test_a_cached_record_is_a_fresh_score_but_for_ids_and_times(tmp_path: Path, model: SentimentModel) -> None:
    rec = Recording(model)
    scorer, producer = make_scorer(tmp_path / "a", rec)
    feed(scorer, [TWEET, *OTHERS], first_offset=0)
    # Later: the same tweet twice more (another URL, "&" spelt plainly: the same model input).
    feed(scorer, [OTHERS[0] + " today", SAME_TWEET, TWEET], first_offset=10)
    out = docs(producer)
    assert [d["id"] for d in out] == ["m0", "m1", "m2", "m3", "m10", "m11", "m12"]
    first, again, third = out[0], out[5], out[6]
    strip = lambda d: {k: v for k, v in d.items() if k not in VARYING}  # noqa: E731
    assert strip(again) == strip(first) and strip(third) == strip(first)
    assert (again["id"], again["ts"]) == ("m11", "2024-01-02T03:04:05.000Z")
    # Each distinct model input was tokenised once and scored once.
    assert len(rec.encoded) == len(set(rec.encoded)) == 5
    assert rec.scored_rows == 5
    assert scorer.cache is not None and len(scorer.cache) == 5
    assert (scorer.cache.hits, scorer.cache.misses) == (2, 5)

    # A scorer without the cache scores the first batch to the same records.
    fresh_scorer, fresh = make_scorer(tmp_path / "b", model, cache_entries=0)
    feed(fresh_scorer, [TWEET, *OTHERS], first_offset=0)
    assert [strip(d) for d in docs(fresh)] == [strip(d) for d in out[:4]]

    text = generate_latest(scorer.metrics.registry).decode()
    assert 'sentimon_scorer_cache_requests_total{result="hit"} 2.0' in text
    assert 'sentimon_scorer_cache_requests_total{result="miss"} 5.0' in text
    assert "sentimon_scorer_cache_entries 5.0" in text
    assert "sentimon_scorer_cache_hit_ratio 0.2857" in text
    size = float(next(line.split()[1] for line in text.splitlines()
                      if line.startswith("sentimon_scorer_cache_bytes ")))
    assert 5 * 300 < size < 5 * 2000


def test_micro_batch_is_cut_into_runs_of_similar_length(tmp_path: Path, model: SentimentModel) -> None:
    rec = Recording(model)
    scorer, producer = make_scorer(tmp_path, rec, cache_entries=0)
    texts = [f"$AAPL up {k}% today" for k in range(30)] + ["Fed minutes " * 40]
    feed(scorer, texts, first_offset=0)
    assert len(docs(producer)) == 31
    # The one long text does not pad the thirty short ones.
    assert sorted(len(r) for r in rec.runs) == [1, 30]

    legacy = Recording(model)
    scorer, _ = make_scorer(tmp_path, legacy, cache_entries=0, length_buckets=False)
    feed(scorer, texts, first_offset=0)
    assert [len(r) for r in legacy.runs] == [31]


def test_cache_is_bounded_and_accounts_its_memory() -> None:
    cache = PredictionCache(2)
    pred = Prediction("Earnings", 0.9, "positive", {"negative": 0.1, "neutral": 0.2, "positive": 0.7}, 0.6)
    for key in ("a", "b"):
        cache.put(key, pred)
    two = cache.nbytes
    assert cache.get("a") is pred  # "a" is now the most recently used
    cache.put("c" * 1000, pred)
    assert len(cache) == 2 and "b" not in cache and "a" in cache
    assert cache.nbytes > two + 900  # the long key's characters are counted
    cache.put("d", pred)
    cache.put("e", pred)
    assert cache.nbytes == two  # two one-letter keys again
    assert cache.get("zz") is None
    assert cache.hit_ratio() == 0.5
    off = PredictionCache(0)
    off.put("a", pred)
    assert len(off) == 0 and off.nbytes == 0
