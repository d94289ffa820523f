"""Hostile input: properties of the decoder (hypothesis) and a fuzz run through the live scorer.

``tests/test_ingest_message.py`` already checks one example per dead-letter reason and that
arbitrary bytes or objects never raise. Here: every accepted message yields a scored record
that matches the schema and survives the wire; every refusal yields a dead letter that keeps
the original bytes and fits in a Kafka record; a single wrong-typed field refuses the whole
message; the size limit costs nothing however large the record. Then a seeded mix of all of
it (random bytes, invalid UTF-8, 100,000-deep JSON, wrong types, blank text, control
characters, 200,000-character tokens, Chinese, emoji, a 10 MB record) goes through
`sentimon score` on the real broker: the daemon stays up and each input ends exactly once,
scored or dead-lettered with a reason.
"""

from __future__ import annotations

import base64
import csv
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentimon.config import ModelSettings, ScorerSettings, Settings, TopicSettings
from sentimon.ingest.deadletter import MAX_DLQ_VALUE_BYTES, dead_letter_value
from sentimon.ingest.message import REASONS, InputMessage, RawRecord, Rejection, decode
from sentimon.ingest.output import encode, scored_value
from sentimon.ingest.validation import errors
from sentimon.kafka import ensure_topics
from tests.conftest import free_ports
from tests.reliability.helpers import (
    SEED,
    Daemon,
    needs_model,
    produce,
    read_topic,
    stop_all,
    tweet_texts,
    wait_for,
)

TEN_MB = 10 * 1024 * 1024
LIMIT = 1_000_000  # scorer.max_message_bytes default
KAFKA_RECORD_LIMIT = 1_048_576  # producer max_request_size and broker message.max.bytes defaults


def raw(value: bytes | None, *, key: bytes | None = None) -> RawRecord:
    return RawRecord("t.news", 1, 42, 1_700_000_000_000, key, value)


@dataclass
class FakePrediction:
    """The five fields the scorer copies from a model prediction (no model needed here)."""

    topic: str = "Earnings"
    topic_prob: float = 0.9
    sentiment: str = "negative"
    sentiment_probs: dict[str, float] | None = None
    score: float = -0.5

    def __post_init__(self) -> None:
        self.sentiment_probs = {"negative": 0.6, "neutral": 0.3, "positive": 0.1}


# -- strategies ------------------------------------------------------------------------

# Any Unicode scalar value but surrogates (which UTF-8 cannot carry): every script, emoji,
# control characters, zero-width and bidi marks, private use.
_chars = st.characters(codec="utf-8")
_texts = st.text(_chars, min_size=1, max_size=400).filter(lambda s: bool(s.strip()))
_hostile_texts = st.one_of(
    _texts,
    st.text(st.sampled_from("\x00\x01\x07\x1b\x7f\u200b\u200e\u202e\ufeff\ufffd"), min_size=1,
            max_size=50).map(lambda s: "x" + s),
    st.integers(1, 5_000).map(lambda n: "A" * n),  # one long token
    st.sampled_from(["茅台今天涨停了", "Ölpreis fällt 📉📉", "🚀🚀🚀 $TSLA to the moon 🌕",
                     "Прибыль Сбербанка выросла", "أرباح أرامكو", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math"]),
)
_ids = st.one_of(st.text(_chars, min_size=1, max_size=64).filter(lambda s: bool(s.strip())),
                 st.integers(0, 2**63))
_wrong = {  # field -> JSON values of a type that field never accepts
    "text": st.one_of(st.integers(), st.booleans(), st.lists(st.text(), max_size=2),
                      st.dictionaries(st.text(max_size=3), st.text(), max_size=2)),
    "source": st.one_of(st.integers(), st.booleans(), st.lists(st.text(), max_size=2)),
    "lang": st.one_of(st.integers(), st.booleans(), st.lists(st.text(), max_size=2)),
    "kind": st.one_of(st.integers(), st.booleans(), st.lists(st.text(), max_size=2)),
    "tickers": st.one_of(st.text(), st.integers(), st.dictionaries(st.text(), st.text())),
    "ts": st.one_of(st.booleans(), st.lists(st.integers(), max_size=2)),
}


def _valid_doc(text: str, msg_id: str | int) -> dict[str, Any]:
    return {"id": msg_id, "text": text, "source": "fuzz", "ts": "2024-05-01T12:00:00Z"}


# -- properties of the decoder ---------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_hostile_texts, msg_id=_ids)
def test_any_nonblank_text_is_scored_and_its_output_matches_the_schema(
        text: str, msg_id: str | int) -> None:
    value = json.dumps(_valid_doc(text, msg_id), ensure_ascii=bool(len(text) % 2)).encode()
    out = decode(raw(value), default_kind="comment", max_bytes=LIMIT)
    assert isinstance(out, InputMessage), out
    assert out.text == text.strip()
    assert out.id == str(msg_id).strip()
    doc = scored_value(out, FakePrediction(), model="m@1", scored_at_ms=1_700_000_000_000)
    wire = encode(doc)
    assert json.loads(wire.decode("utf-8")) == doc  # survives the wire unchanged
    assert errors("scored", doc) == []


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.binary(max_size=2_000),
                       st.binary(max_size=200).map(lambda b: b'{"text": "' + b + b'"}'),
                       st.text(_chars, max_size=300).map(lambda s: s.encode("utf-8"))),
       key=st.one_of(st.none(), st.binary(max_size=20)))
def test_every_refusal_is_a_complete_dead_letter(value: bytes, key: bytes | None) -> None:
    out = decode(raw(value, key=key), default_kind="news", max_bytes=LIMIT)
    if isinstance(out, InputMessage):
        return
    assert out.reason in REASONS and out.reason != "inference_error"
    assert out.detail.strip() and len(out.detail) <= 400
    dl = dead_letter_value(raw(value, key=key), out, now_ms=0)
    wire = encode(dl)
    back = json.loads(wire)
    assert base64.b64decode(back["value_b64"]) == value
    assert back["value_size"] == len(value) and back["value_truncated"] is False
    assert back["reason"] == out.reason and back["offset"] == 42


@settings(max_examples=200, deadline=None)
@given(data=st.data(), field=st.sampled_from(sorted(_wrong)))
def test_one_wrong_typed_field_refuses_the_message(data: st.DataObject, field: str) -> None:
    doc = _valid_doc("Apple beats estimates", "w1")
    doc[field] = data.draw(_wrong[field])
    out = decode(raw(json.dumps(doc).encode()), default_kind="comment", max_bytes=LIMIT)
    assert isinstance(out, Rejection), (field, doc[field])
    assert out.reason == "wrong_type", out
    assert field in out.detail


@settings(max_examples=50, deadline=None)
@given(ws=st.text(st.sampled_from(" \t\n\r\x0b\x0c\u00a0\u2003\u3000\u2028"), max_size=30))
def test_blank_text_in_any_white_space_is_refused(ws: str) -> None:
    out = decode(raw(json.dumps({"text": ws}).encode()), default_kind="comment", max_bytes=LIMIT)
    assert isinstance(out, Rejection) and out.reason == "empty_text"


@pytest.mark.parametrize("payload", [
    pytest.param(lambda: b'{"text": "' + b"a" * TEN_MB + b'"}', id="valid-json"),
    pytest.param(lambda: b"[" * TEN_MB, id="deeply-nested"),
    pytest.param(lambda: random.Random(SEED).randbytes(TEN_MB), id="random-bytes"),
])
def test_ten_megabytes_are_refused_by_size_alone(payload: Any) -> None:
    value = payload()
    started = time.perf_counter()
    out = decode(raw(value), default_kind="news", max_bytes=LIMIT)
    took = time.perf_counter() - started
    assert isinstance(out, Rejection) and out.reason == "too_large", out
    # Reading 10 MB of JSON takes tens of milliseconds at least; the length check takes none.
    assert took < 0.005, f"{took * 1000:.1f} ms: the record was looked into"
    dl = encode(dead_letter_value(raw(value), out, now_ms=0))
    assert len(dl) < KAFKA_RECORD_LIMIT  # the dead letter itself can be produced
    back = json.loads(dl)
    assert back["value_truncated"] is True and back["value_size"] == len(value)
    assert base64.b64decode(back["value_b64"]) == value[:MAX_DLQ_VALUE_BYTES]


@pytest.mark.parametrize(("value", "reason"), [
    (b"[" * 500_000 + b"]" * 499_999, "invalid_json"),
    (b'{"text": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "invalid_json"),
    (b'{"text": "ok", "extra": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}",
     "invalid_json"),
    (b'{"text": [[[[[["deep"]]]]]]}', "wrong_type"),
])
def test_deep_nesting_within_the_size_limit_is_refused_not_crashed(
        value: bytes, reason: str) -> None:
    assert len(value) <= LIMIT
    out = decode(raw(value), default_kind="news", max_bytes=LIMIT)
    assert isinstance(out, Rejection) and out.reason == reason, out


# -- fuzz through the live daemon ----------------------------------------------------------


def fuzz_corpus(data_dir: Path, prefix: str) -> list[tuple[str, bytes | None]]:
    """(category, value) of a seeded mix of good, odd and hostile records."""
    rnd = random.Random(SEED)
    tweets = [t for _, t, _ in tweet_texts(data_dir)[:5_000]]
    with open(data_dir / "finfe_zh" / "finfe_eval.csv", newline="", encoding="utf-8") as f:
        chinese = [row["text"] for row in csv.DictReader(f)][:200]
    n = 0

    def doc(text: Any, **extra: Any) -> bytes:
        nonlocal n
        n += 1
        return json.dumps({"id": f"{prefix}-{n}", "text": text, "source": "fuzz", **extra},
                          ensure_ascii=rnd.random() < 0.5).encode("utf-8")

    emoji = "📈📉🚀💎🙌🐻🐂🔥💸😱🤑"
    out: list[tuple[str, bytes | None]] = []
    out += [("tweet", doc(t)) for t in rnd.sample(tweets, 120)]
    out += [("chinese", doc(t)) for t in rnd.sample(chinese, 40)]
    out += [("emoji", doc(rnd.choice(tweets) + " " + "".join(rnd.choices(emoji, k=8))))
            for _ in range(20)]
    out += [("emoji_only", doc("".join(rnd.choices(emoji, k=rnd.randint(1, 30)))))
            for _ in range(10)]
    out += [("control", doc("".join(rnd.choice([c, "\x00", "\x1b[31m", "\u202e", "\u200b", "\r"])
                                    for c in rnd.choice(tweets))))
            for _ in range(20)]
    out += [("long_token", doc(rnd.choice("AXz9$") * rnd.choice([5_000, 50_000, 200_000])))
            for _ in range(6)]
    out += [("long_text", doc(" ".join(rnd.choices(tweets, k=6_000))[:400_000]))
            for _ in range(2)]
    out += [("random_bytes", rnd.randbytes(rnd.randint(0, 3_000))) for _ in range(60)]
    out += [("invalid_utf8", doc(rnd.choice(tweets)).replace(b'"text": "', b'"text": "\xc3\x28', 1)
             .replace(b'"text":"', b'"text":"\xff', 1)) for _ in range(30)]
    out += [("lone_surrogate", b'{"text": "bad \\udc80 escape"}') for _ in range(5)]
    out += [("nested", b"[" * rnd.randint(10_000, 400_000)) for _ in range(10)]
    out += [("nested_field", b'{"text": "x", "meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
            for _ in range(5)]
    wrong_fields = [("text", 5), ("text", ["a"]), ("text", {"t": 1}), ("tickers", "AAPL"),
                    ("ts", True), ("source", 3.5), ("kind", 1), ("lang", [])]
    for field, bad in wrong_fields * 5:
        d = json.loads(doc(rnd.choice(tweets)))
        d[field] = bad
        out.append(("wrong_type", json.dumps(d).encode()))
    out += [("blank", doc(rnd.choice(["", " ", "\n\t", "\u3000\u00a0", " " * 5_000])))
            for _ in range(20)]
    out += [("not_object", rnd.choice([b"null", b"42", b'"str"', b"[1,2]", b"true"]))
            for _ in range(15)]
    out += [("tombstone", None) for _ in range(5)]
    out += [("too_large", doc("word " * 400_000)) for _ in range(2)]  # 2 MB, under the topic limit
    rnd.shuffle(out)
    return out


EXPECTED = {  # the outcome each category must have, whatever the decoder's internals
    "tweet": "scored", "chinese": "scored", "emoji": "scored", "emoji_only": "scored",
    "control": "scored", "long_token": "scored", "long_text": "scored",
    "invalid_utf8": "invalid_utf8", "lone_surrogate": "invalid_utf8", "nested": "invalid_json",
    "nested_field": "invalid_json", "wrong_type": "wrong_type", "blank": "empty_text",
    "not_object": "not_an_object", "tombstone": "no_value", "too_large": "too_large",
}


@needs_model
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fuzz_through_the_live_scorer(kafka_settings: Settings, data_dir: Path,
                                      tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = TopicSettings(news=f"fuzz.news.{suffix}", comments=f"fuzz.comments.{suffix}",  # type: ignore[call-arg]
                           scored=f"fuzz.scored.{suffix}", dlq=f"fuzz.dlq.{suffix}", partitions=3)
    # The input topics accept records up to 16 MiB, so the 10 MB one reaches the scorer.
    ensure_topics(kafka_settings.kafka, topics.inputs, partitions=3,
                  configs={"max.message.bytes": str(16 * 1024 * 1024)})
    ensure_topics(kafka_settings.kafka, [topics.scored, topics.dlq], partitions=3)
    [port] = free_ports(1)
    settings = kafka_settings.model_copy(update={
        "home": tmp_path, "topics": topics, "log_json": True,
        "scorer": ScorerSettings(group_id=f"fuzz-{suffix}", metrics_port=port),  # type: ignore[call-arg]
        "model": ModelSettings(device="cpu"),  # type: ignore[call-arg]
    })
    big_opts = {"max_request_size": 16 * 1024 * 1024}
    corpus = fuzz_corpus(data_dir, prefix=f"fz{suffix}")
    keys = [f"k{i}".encode() for i in range(len(corpus))]
    scorer = Daemon(settings, ["score"], tmp_path / "scorer.log", port=port)
    try:
        scorer.start().wait_ready(timeout_s=180)
        # The 10 MB record first and alone: it must be dead-lettered quickly, unparsed.
        huge = b'{"id": "huge", "text": "' + b"x" * TEN_MB + b'"}'
        produce(settings.kafka, topics.news, [huge], keys=[b"huge"], **big_opts)
        acked = time.monotonic()
        found: list[Any] = []

        def dead_lettered() -> bool:
            found[:] = read_topic(settings.kafka, topics.dlq)
            return bool(found)

        wait_for(dead_lettered, "the 10 MB record's dead letter", timeout_s=60, interval_s=0.5)
        huge_s = time.monotonic() - acked
        [huge_dl] = [json.loads(r.value) for r in found]

        values = [v for _, v in corpus]
        half = len(values) // 2
        produce(settings.kafka, topics.news, values[:half], keys=keys[:half], **big_opts)
        produce(settings.kafka, topics.comments, values[half:], keys=keys[half:], **big_opts)
        total = len(values) + 1

        def done() -> bool:
            return scorer.metric_sum("sentimon_scorer_records_consumed_total") == total and (
                scorer.metric_sum("sentimon_scorer_records_scored_total")
                + scorer.metric_sum("sentimon_scorer_records_dead_lettered_total") == total)

        wait_for(done, "every fuzz record scored or dead-lettered", timeout_s=400, interval_s=1)
        assert scorer.alive() and scorer.lives == 1, scorer.tail()
        # Still working after all that: a plain message is scored.
        produce(settings.kafka, topics.comments,
                [json.dumps({"id": "after", "text": "Apple shares rise after earnings"}).encode()])
        wait_for(lambda: scorer.metric_sum("sentimon_scorer_records_scored_total")
                 + scorer.metric_sum("sentimon_scorer_records_dead_lettered_total") == total + 1,
                 "the message after the fuzz", timeout_s=60)
        metrics = scorer.metrics()
        assert scorer.terminate() == 0, scorer.tail()
        scored = [json.loads(r.value) for r in read_topic(settings.kafka, topics.scored)]
        dlq = read_topic(settings.kafka, topics.dlq, timeout_s=120)
    finally:
        stop_all([scorer])

    assert huge_dl["reason"] == "too_large" and huge_dl["value_size"] == len(huge)
    assert huge_s < 30, f"the 10 MB record took {huge_s:.1f}s to dead-letter"

    by_key = {k: cat for k, (cat, _) in zip(keys, corpus, strict=True)}
    dead = {r.key: json.loads(r.value) for r in dlq if r.key != b"huge"}
    assert len(dead) == len([r for r in dlq if r.key != b"huge"]), "a record dead-lettered twice"
    scored_ids = Counter(d["id"] for d in scored)
    assert max(scored_ids.values()) == 1
    outcome: dict[str, list[str]] = {}
    for key, value in zip(keys, [v for _, v in corpus], strict=True):
        msg_id = json.loads(value)["id"] if value is not None and EXPECTED.get(
            by_key[key]) == "scored" else None
        if key in dead:
            outcome.setdefault(by_key[key], []).append(dead[key]["reason"])
        elif msg_id is not None and msg_id in scored_ids:
            outcome.setdefault(by_key[key], []).append("scored")
        else:
            outcome.setdefault(by_key[key], []).append("LOST")
    wrong = {cat: Counter(got) for cat, got in outcome.items()
             if cat in EXPECTED and set(got) != {EXPECTED[cat]}}
    assert not wrong, f"unexpected outcomes: {wrong}"
    # random_bytes are whatever the bytes happen to be, but never lost nor silently dropped.
    assert "LOST" not in outcome["random_bytes"]
    for d in dead.values():
        assert d["reason"] in REASONS and d["detail"].strip(), d
    assert sum(scored_ids.values()) + len(dlq) == total + 1
    consumed = sum(v for (n, _), v in metrics.items()
                   if n == "sentimon_scorer_records_consumed_total")
    assert consumed == total + 1
    print(f"\nfuzz: {total + 1} records, {sum(scored_ids.values())} scored, {len(dlq)} "
          f"dead-lettered {dict(Counter(d['reason'] for d in dead.values()))}; the 10 MB record "
          f"dead-lettered {huge_s:.2f}s after its ack")
