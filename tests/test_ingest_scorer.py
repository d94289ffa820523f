"""The scorer daemon against the real broker and the real released model.

Real texts from ../shared/data go into the fixture's topics; the scorer runs in a thread
or as `python -m sentimon score` subprocesses; the outputs are read back from Kafka.
"""

from __future__ import annotations

import base64
import csv
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka.structs import TopicPartition
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sentimon.config import Settings, TopicSettings
from sentimon.ingest.message import REASONS, InputMessage, RawRecord, decode
from sentimon.ingest.scorer import Scorer, model_run_size
from sentimon.ingest.validation import errors
from sentimon.kafka import GracefulStop, ensure_topics, make_consumer, make_producer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]


def _model_dir() -> Path | None:
    from sentimon.model.inference import RELEASE_DIR

    env = os.environ.get("SENTIMON_MODEL__DIR")
    d = Path(env) if env else RELEASE_DIR
    if (d / "tokenizer.json").exists() and any(d.glob("model.*.onnx")):
        return d
    return None


@pytest.fixture(scope="module")
def model() -> Any:
    d = _model_dir()
    if d is None:
        pytest.skip("model release not built yet (no model.*.onnx + tokenizer.json in "
                    "model/release; SENTIMON_MODEL__DIR may point at an export)")
    from sentimon.model.inference import SentimentModel

    return SentimentModel.load(d, device="cpu")


# -- data and Kafka helpers ---------------------------------------------------------------


def tweets(data_dir: Path, n: int, *, skip: int = 0) -> list[dict[str, Any]]:
    """``n`` English StockNet tweets as input messages (ids, times, tickers from the file)."""
    out: list[dict[str, Any]] = []
    with open(data_dir / "stocknet_tweets" / "stocknet_tweets.csv", newline="",
              encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["lang"] != "en":
                continue
            if skip:
                skip -= 1
                continue
            out.append({"id": f"tw-{row['tweet_id']}", "ts": row["ts"], "source": "stocknet",
                        "tickers": row["tickers"].split(";"), "text": row["text"]})
            if len(out) == n:
                break
    return out


def headlines(data_dir: Path, n: int) -> list[dict[str, Any]]:
    """``n`` CNBC headlines as news messages: title + description as body."""
    out: list[dict[str, Any]] = []
    path = data_dir / "news_headlines_2017_2020" / "headlines_normalized.csv"
    with open(path, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if row["source"] != "cnbc":
                continue
            out.append({"id": f"news-{i}", "ts": row["ts"], "source": "cnbc",
                        "title": row["text"], "body": row["description"]})
            if len(out) == n:
                break
    return out


def produce(settings: Settings, topic: str, values: list[bytes]) -> None:
    producer = make_producer(settings.kafka, client_suffix="test")
    futures = [producer.send(topic, key=str(i).encode(), value=v) for i, v in enumerate(values)]
    producer.flush()
    for fut in futures:
        fut.get(timeout=30)
    producer.close()


def read_all(settings: Settings, topic: str) -> list[Any]:
    """Every record now in ``topic`` (all partitions, from the start)."""
    consumer = make_consumer(settings.kafka, group_id=None, client_suffix="test-reader")
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for recs in consumer.poll(timeout_ms=500).values():
                out.extend(recs)
        return out
    finally:
        consumer.close()


def committed(settings: Settings, topic: str) -> int:
    """Sum of the scorer group's committed offsets on ``topic``."""
    consumer = make_consumer(settings.kafka, group_id=settings.scorer.group_id,
                             client_suffix="test-offsets")
    try:
        parts = consumer.partitions_for_topic(topic)
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in parts)
    finally:
        consumer.close()


def json_values(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


def scorer_settings(kafka_settings: Settings, topics: TopicSettings, **scorer: Any) -> Settings:
    sc = kafka_settings.scorer.model_copy(
        update={"group_id": f"scorer-{uuid.uuid4().hex[:8]}", **scorer})
    return kafka_settings.model_copy(update={"topics": topics, "scorer": sc})




def samples(scorer: Scorer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(scorer.metrics.registry).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(v for (n, _), v in values.items() if n == name)


def wait_until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Running:
    """A scorer on a thread; :meth:`finish` joins it and explains a hang."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.result: list[int] = []
        self.error = ""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result.append(self.scorer.run())
        except BaseException:
            self.error = traceback.format_exc()

    def finish(self, timeout: float) -> int:
        self.thread.join(timeout=timeout)
        if self.thread.is_alive():
            frame = sys._current_frames().get(self.thread.ident or -1)
            stack = "".join(traceback.format_stack(frame)) if frame else "?"
            s = self.scorer
            self.scorer.stop.set()
            pytest.fail(f"scorer still running after {timeout}s: consumed={s.consumed} "
                        f"done={s.done} in_hand={len(s.batcher)} assigned={s.assignment}\n"
                        f"{stack}")
        assert len(self.result) == 1, f"scorer raised:\n{self.error}"
        return self.result[0]


# -- in-process -------------------------------------------------------------------------


def test_scores_real_texts_once_each(kafka_settings: Settings, topics: TopicSettings,
                                     data_dir: Path, model: Any) -> None:
    # One batch for everything (see the comparison with direct predictions below).
    # Fixed runs and no cache: the model must see exactly the run the direct call makes.
    settings = scorer_settings(kafka_settings, topics, max_batch=1000, max_wait_ms=3000,
                               model_batch=1000, length_buckets=False, cache_entries=0)
    comments = tweets(data_dir, 150)
    news = headlines(data_dir, 50)
    produce(settings, topics.comments, [json.dumps(m).encode() for m in comments])
    produce(settings, topics.news, [json.dumps(m).encode() for m in news])

    scorer = Scorer(settings, model, once=True, stop=GracefulStop())
    scorer.lag_every_s = 0.2
    running = Running(scorer)
    url = f"http://127.0.0.1:{settings.scorer.metrics_port}"
    ready_seen = lag_seen = False
    metrics_text = ""
    while running.thread.is_alive() and not (ready_seen and lag_seen):
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:
                ready_seen = ready_seen or resp.status == 200
            with urllib.request.urlopen(url + "/metrics", timeout=2) as resp:
                metrics_text = resp.read().decode()
            lag_seen = f'sentimon_scorer_consumer_lag{{partition="0",topic="{topics.comments}"}}' \
                in metrics_text
        except OSError:  # 503 before the assignment, or not listening yet
            time.sleep(0.05)
    assert running.finish(120) == 0
    assert ready_seen, "/readyz never answered 200 while partitions were assigned"
    assert lag_seen, metrics_text
    assert "sentimon_model_info{" in metrics_text

    records = read_all(settings, topics.scored)
    docs = json_values(records)
    ids = Counter(d["id"] for d in docs)
    expected = {m["id"]: m for m in comments + news}
    assert set(ids) == set(expected) and max(ids.values()) == 1
    for rec, doc in zip(records, docs, strict=True):
        assert errors("scored", doc) == [], doc
        assert rec.key == doc["topic"].encode()
        assert doc["model"] == f"{model.name}@{model.version}"
        src = expected[doc["id"]]
        assert doc["kind"] == ("news" if "title" in src else "comment")
        assert doc["ts"] == src["ts"].replace("Z", ".000Z")
        assert set(src.get("tickers", [])) <= set(doc["tickers"])

    # The same texts through the model directly give the same predictions. The int8 model
    # quantises activations per run, so a text's probabilities shift (~0.02) with the
    # texts it shares a batch with; the scorer was therefore set up to score all of them
    # in one run, and the direct call does the same: then they must agree exactly.
    by_id = {d["id"]: d for d in docs}
    texts = [_text(m, "comment") for m in comments] + [_text(m, "news") for m in news]
    direct = model.predict(texts, batch_size=len(texts))
    for m, pred in zip(comments + news, direct, strict=True):
        doc = by_id[m["id"]]
        assert (doc["topic"], doc["sentiment"]) == (pred.topic, pred.sentiment)
        assert doc["score"] == pytest.approx(pred.score, abs=1e-6)
        assert doc["topic_prob"] == pytest.approx(pred.topic_prob, abs=1e-6)
        assert doc["sentiment_probs"] == pytest.approx(pred.sentiment_probs, abs=1e-6)

    values = samples(scorer)
    n = len(comments) + len(news)
    assert total(values, "sentimon_scorer_records_consumed_total") == n
    assert values[("sentimon_scorer_records_scored_total", (("topic", topics.comments),))] == len(comments)
    assert values[("sentimon_scorer_records_scored_total", (("topic", topics.news),))] == len(news)
    assert total(values, "sentimon_scorer_records_dead_lettered_total") == 0
    assert values[("sentimon_scorer_batch_size_count", ())] == 1
    assert values[("sentimon_scorer_batch_size_sum", ())] == n
    assert values[("sentimon_scorer_end_to_end_seconds_count", ())] == n
    assert read_all(settings, topics.dlq) == []


def _text(msg: dict[str, Any], kind: str) -> str:
    """The text the scorer builds for ``msg`` (title + lead of body for news)."""
    raw = RawRecord("t", 0, 0, 0, None, json.dumps(msg).encode())
    decoded = decode(raw, default_kind=kind, max_bytes=10**6)  # type: ignore[arg-type]
    assert isinstance(decoded, InputMessage)
    return decoded.text


def test_rebalance_gives_up_the_batch_in_hand(
    kafka_settings: Settings, topics: TopicSettings, data_dir: Path, model: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A long max wait keeps the consumed records in an open batch when the second member
    # arrives. The revocation drops that batch (nothing of it was produced) and rewinds, so
    # whichever member owns each partition afterwards scores its records: no loss, no repeat.
    settings = scorer_settings(kafka_settings, topics, max_batch=1000, max_wait_ms=20_000)
    msgs = tweets(data_dir, 50, skip=3000)
    produce(settings, topics.comments, [json.dumps(m).encode() for m in msgs])
    caplog.set_level(logging.INFO, logger="sentimon.ingest.scorer")
    first = Scorer(settings, model, stop=GracefulStop(), serve_http=False)
    second = Scorer(settings, model, stop=GracefulStop(), serve_http=False)
    r1 = Running(first)
    wait_until(lambda: first.consumed == len(msgs), 60, "the first member to read everything")
    assert first.done == 0  # all in hand, none scored yet
    r2 = Running(second)
    wait_until(lambda: committed(settings, topics.comments) == len(msgs), 90,
               "both members to score what the first gave up")
    for scorer in (first, second):
        scorer.stop.set()
    assert r1.finish(60) == 0 and r2.finish(60) == 0

    ids = Counter(d["id"] for d in json_values(read_all(settings, topics.scored)))
    assert set(ids) == {m["id"] for m in msgs}
    assert max(ids.values()) == 1
    assert first.done + second.done == len(msgs)
    gave_up = [getattr(r, "gave_up", 0) for r in caplog.records
               if r.getMessage() == "partitions revoked"]
    assert len(msgs) in gave_up


def test_max_records_stops_exactly_there(kafka_settings: Settings, topics: TopicSettings,
                                         data_dir: Path, model: Any) -> None:
    settings = scorer_settings(kafka_settings, topics, max_batch=8)
    msgs = tweets(data_dir, 30, skip=4000)
    produce(settings, topics.comments, [json.dumps(m).encode() for m in msgs])
    first = Scorer(settings, model, max_records=13, stop=GracefulStop(), serve_http=False)
    assert Running(first).finish(60) == 0
    assert first.consumed == first.done == 13
    assert committed(settings, topics.comments) == 13
    rest = Scorer(settings, model, once=True, stop=GracefulStop(), serve_http=False)
    assert Running(rest).finish(60) == 0
    assert rest.done == 17
    ids = Counter(d["id"] for d in json_values(read_all(settings, topics.scored)))
    assert set(ids) == {m["id"] for m in msgs} and max(ids.values()) == 1


def test_output_refused_by_the_broker_commits_nothing(
    kafka_settings: Settings, topics: TopicSettings, data_dir: Path, model: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A scored topic whose records may not exceed 100 bytes: the broker refuses every
    # scored record (MESSAGE_TOO_LARGE), so the scorer must stop without committing.
    tiny = f"{topics.scored}.tiny"
    ensure_topics(kafka_settings.kafka, [tiny], partitions=1,
                  configs={"max.message.bytes": "100"})
    msgs = tweets(data_dir, 20, skip=5000)
    good = scorer_settings(kafka_settings, topics, max_batch=8)
    produce(good, topics.comments, [json.dumps(m).encode() for m in msgs])
    refused = good.model_copy(update={"topics": topics.model_copy(update={"scored": tiny})})
    failing = Scorer(refused, model, once=True, stop=GracefulStop(), serve_http=False)
    assert Running(failing).finish(120) == 1
    [giving_up] = [r for r in caplog.records if r.getMessage().startswith("scorer giving up")]
    assert "not acknowledged" in giving_up.error, giving_up.error  # type: ignore[attr-defined]
    assert failing.done == 0
    assert committed(good, topics.comments) == 0

    # Once the output is accepted again, every record is scored: nothing was lost.
    again = Scorer(good, model, once=True, stop=GracefulStop(), serve_http=False)
    assert Running(again).finish(120) == 0
    ids = Counter(d["id"] for d in json_values(read_all(good, topics.scored)))
    assert set(ids) == {m["id"] for m in msgs} and max(ids.values()) == 1


def broken_records(big: int) -> dict[str, bytes]:
    """One record per dead-letter reason the decoder gives (reason -> bytes)."""
    return {
        "too_large": json.dumps({"text": "x" * big}).encode(),
        "invalid_utf8": b'{"text": "caf\xe9 au lait"}',
        "invalid_json": b'{"text": "unterminated',
        "not_an_object": b'["text", "in", "a", "list"]',
        "missing_text": b'{"id": "no-text-here", "source": "x"}',
        "empty_text": b'{"text": "   "}',
        "wrong_type": b'{"text": "fine", "tickers": "AAPL"}',
        "invalid_value": b'{"text": "fine", "ts": "last tuesday"}',
    }


def test_mixed_stream_counts_add_up(kafka_settings: Settings, topics: TopicSettings,
                                    data_dir: Path, model: Any) -> None:
    settings = scorer_settings(kafka_settings, topics, max_message_bytes=4096, max_batch=32)
    good = [json.dumps(m).encode() for m in tweets(data_dir, 60, skip=500)]
    bad = broken_records(big=5000)
    values = good[:30] + list(bad.values()) + good[30:] + [None]  # type: ignore[list-item]
    # Broken ones interleaved in one partition's order, plus a null value (tombstone).
    produce(settings, topics.comments, values)  # type: ignore[arg-type]

    scorer = Scorer(settings, model, once=True, stop=GracefulStop(), serve_http=False)
    assert Running(scorer).finish(120) == 0

    scored = json_values(read_all(settings, topics.scored))
    dead = json_values(read_all(settings, topics.dlq))
    assert len(scored) == len(good)
    assert len(scored) + len(dead) == len(values)
    by_reason = {d["reason"]: d for d in dead}
    assert set(by_reason) == {*bad, "no_value"}
    for reason, original in bad.items():
        d = by_reason[reason]
        assert base64.b64decode(d["value_b64"]) == original
        assert d["topic"] == topics.comments and d["detail"]
        assert isinstance(d["partition"], int) and isinstance(d["offset"], int)
    assert by_reason["no_value"]["value_b64"] is None

    m = samples(scorer)
    consumed = total(m, "sentimon_scorer_records_consumed_total")
    assert consumed == len(values)
    assert consumed == (total(m, "sentimon_scorer_records_scored_total")
                        + total(m, "sentimon_scorer_records_dead_lettered_total"))
    for reason in REASONS:
        key = ("sentimon_scorer_records_dead_lettered_total", (("reason", reason),))
        assert m[key] == (1 if reason in by_reason else 0), reason


# -- subprocesses -----------------------------------------------------------------------


class Proc:
    """`python -m sentimon score` with SENTIMON_* settings; stderr kept for its JSON logs."""

    def __init__(self, settings: Settings, model_dir: Path, tmp: Path, name: str,
                 *args: str, metrics_port: int = 0, log_level: str = "INFO") -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMON_")}
        t = settings.topics
        env.update({
            "SENTIMON_HOME": str(tmp / name), "SENTIMON_LOG_JSON": "true",
            "SENTIMON_LOG_LEVEL": log_level,
            "SENTIMON_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "SENTIMON_TOPICS__NEWS": t.news, "SENTIMON_TOPICS__COMMENTS": t.comments,
            "SENTIMON_TOPICS__SCORED": t.scored, "SENTIMON_TOPICS__DLQ": t.dlq,
            "SENTIMON_SCORER__GROUP_ID": settings.scorer.group_id,
            "SENTIMON_SCORER__METRICS_PORT": str(metrics_port),
            "SENTIMON_MODEL__DIR": str(model_dir), "SENTIMON_MODEL__THREADS": "1",
        })
        self.log = tmp / f"{name}.log"
        self._f = open(self.log, "wb")  # noqa: SIM115  # closed in wait()
        self.p = subprocess.Popen([sys.executable, "-m", "sentimon", "score", *args],
                                  cwd=REPO, env=env, stdout=self._f, stderr=subprocess.STDOUT)
        self.metrics_port = metrics_port

    def ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/readyz"
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def wait(self, timeout: float) -> int:
        try:
            return self.p.wait(timeout=timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
            self._f.close()

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{") and line.endswith("}"):  # the last line may be half written
                out.append(json.loads(line))
        return out

    def stopped(self) -> dict[str, Any]:
        [ev] = [e for e in self.events() if e.get("event") == "scorer stopped"]
        return ev


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        if p.p.poll() is None:
            p.p.kill()
            p.p.wait()


def test_two_processes_split_the_work(kafka_settings: Settings, topics: TopicSettings,
                                      data_dir: Path, model: Any, tmp_path: Path,
                                      procs: list[Proc]) -> None:
    from tests.conftest import free_ports

    settings = scorer_settings(kafka_settings, topics)
    model_dir = _model_dir()
    assert model_dir is not None
    ports = free_ports(2)
    for i, port in enumerate(ports):
        procs.append(Proc(settings, model_dir, tmp_path, f"s{i}", "--device", "cpu",
                          "--max-batch", "16", "--idle-exit-s", "6", metrics_port=port))
    # Both members hold partitions before any record exists, so each must get some.
    wait_until(lambda: all(p.ready() for p in procs), 90, "both scorers to be assigned")
    msgs = tweets(data_dir, 150, skip=1000)
    produce(settings, topics.comments, [json.dumps(m).encode() for m in msgs])
    codes = [p.wait(timeout=150) for p in procs]
    assert codes == [0, 0], [p.log.read_text()[-2000:] for p in procs]

    ids = Counter(d["id"] for d in json_values(read_all(settings, topics.scored)))
    assert set(ids) == {m["id"] for m in msgs}
    assert max(ids.values()) == 1
    done = [p.stopped()["done"] for p in procs]
    assert sum(done) == len(msgs) and min(done) > 0, done
    starts = [e for p in procs for e in p.events() if e.get("event") == "model loaded"]
    assert len(starts) == 2 and all(e["provider"] == "CPUExecutionProvider" for e in starts)


def test_sigterm_mid_stream_loses_nothing(kafka_settings: Settings, topics: TopicSettings,
                                          data_dir: Path, model: Any, tmp_path: Path,
                                          procs: list[Proc]) -> None:
    settings = scorer_settings(kafka_settings, topics)
    model_dir = _model_dir()
    assert model_dir is not None
    msgs = tweets(data_dir, 200, skip=2000)
    produce(settings, topics.comments, [json.dumps(m).encode() for m in msgs])

    first = Proc(settings, model_dir, tmp_path, "first", "--max-batch", "8", "--once",
                 log_level="DEBUG")
    procs.append(first)
    wait_until(lambda: sum(e.get("event") == "batch done" for e in first.events()) >= 2,
               90, "the first batches")
    first.p.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0, first.log.read_text()[-2000:]
    done_first = first.stopped()["done"]
    assert 0 < done_first < len(msgs), first.log.read_text()[-3000:]
    # What it produced is exactly what it committed: the next member starts right after.
    assert len(read_all(settings, topics.scored)) == done_first
    assert committed(settings, topics.comments) == done_first

    second = Scorer(settings, model, once=True, stop=GracefulStop(), serve_http=False)
    assert Running(second).finish(120) == 0
    ids = Counter(d["id"] for d in json_values(read_all(settings, topics.scored)))
    assert set(ids) == {m["id"] for m in msgs}
    assert max(ids.values()) == 1  # graceful stop: no batch repeated


def test_model_batch_splits_micro_batches_on_cpu(kafka_settings: Settings, topics: TopicSettings,
                                                 model: Any) -> None:
    auto = Scorer(scorer_settings(kafka_settings, topics), model, stop=GracefulStop())
    assert auto._model_batch(256) == (256 if model.provider == "CUDAExecutionProvider" else 64)
    assert auto._model_batch(10) == 10
    fixed = Scorer(scorer_settings(kafka_settings, topics, model_batch=32), model, stop=GracefulStop())
    assert fixed._model_batch(256) == 32


def test_model_run_size_rule() -> None:
    cpu, cuda = "CPUExecutionProvider", "CUDAExecutionProvider"
    assert model_run_size(256, configured=0, provider=cpu) == 64
    assert model_run_size(10, configured=0, provider=cpu) == 10
    assert model_run_size(256, configured=0, provider=cuda) == 256
    assert model_run_size(256, configured=32, provider=cuda) == 32
    assert model_run_size(8, configured=32, provider=cpu) == 8
