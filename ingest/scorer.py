"""The scorer daemon: consume input topics, score micro-batches, produce, then commit.

Delivery is at-least-once. For every batch the scored records and dead letters are sent
and acknowledged by the broker (``flush`` + each future, ``acks=all``) before the batch's
offsets are committed, so a crash repeats a batch (same ``id``s) and never loses one. A
rebalance gives up the batch in hand, which nothing was produced for yet: its records are
read again by whichever member gets their partitions (``on_partitions_revoked`` only rewinds).

A broken model (a known-good canary text fails too) and an output topic that does not take
the output within ``scorer.output_timeout_s`` stop the scorer with exit code 1 and nothing
committed past the failure; a dead letter is bounded in size and, if the broker still refuses
it for its size, replaced by the smallest one, so no single record can stop a partition.

Every consumed record ends as exactly one scored record or one dead letter; the counters
``consumed = scored + dead_lettered`` add up whenever no batch is in flight.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from kafka.structs import OffsetAndMetadata, TopicPartition

from sentimon.config import Settings
from sentimon.http import DaemonHTTPServer
from sentimon.ingest.batching import Batch, MicroBatcher, plan_runs
from sentimon.ingest.deadletter import dead_letter_record
from sentimon.ingest.message import InputMessage, Kind, RawRecord, Rejection, decode, kind_for_topic
from sentimon.ingest.metrics import ScorerMetrics
from sentimon.ingest.output import PredictionLike, encode, scored_value
from sentimon.kafka import GracefulStop, JoinWatch, consumer_lag, make_consumer, make_producer, subscribe
from sentimon.kafka.lag import GroupLag
from sentimon.kafka.logfilter import RepeatFilter
from sentimon.model.inference import fixed_runs
from sentimon.model.providers import CUDA
from sentimon.model.text import normalize

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.5
"""Longest poll: how fast a stop request or a due batch is noticed."""
LAG_EVERY_S = 5.0
CANARY_TEXT = "Shares of the company rose 3% after quarterly earnings beat analyst estimates."
"""A text any working model scores: when it fails too, the model is broken, not the record."""


class ModelLike(Protocol):
    """The part of ``sentimon.model.inference.SentimentModel`` the scorer uses."""

    name: str
    version: str
    provider: str
    variant: str

    @property
    def session_providers(self) -> tuple[str, ...]: ...

    def token_counts(self, texts: Sequence[str]) -> list[int]: ...

    def predict(
        self, texts: Sequence[str], *, batch_size: int = 64, sort_by_length: bool = True
    ) -> Sequence[PredictionLike]: ...


class EncodingModel(ModelLike, Protocol):
    """A model the scorer can hand token ids and a run plan (``SentimentModel``).

    With one, each record is tokenised once, on arrival, and the scorer chooses the runs;
    a plain :class:`ModelLike` (test doubles, wrappers) gets texts and a run size.
    """

    def encode(self, texts: Sequence[str], *, normalized: bool = False) -> list[list[int]]: ...

    def predict_ids(
        self, ids: Sequence[Sequence[int]], runs: Sequence[Sequence[int]]
    ) -> Sequence[PredictionLike]: ...


CPU_MODEL_RUN = 64
RUN_OVERHEAD_TOKENS = 32
"""Fixed cost of one CPU model run, in tokens of padded input (``plan_runs``).

Measured on 2 cores with the int8 release: a run takes about 1.2 ms plus 0.15-0.2 ms per
padded token (1 x 16 tokens 3.9 ms, 16 x 16 35 ms, 64 x 32 372 ms), but a run of a few rows
costs more per token than one of 16 (it parallelises badly over two threads). Of 16, 32, 64
and 128, 32 was fastest on micro-batches of 6 and of 60 (``benchmarks.scorer_bench --sizes 6,60
--overheads 16,32,64,128``: 7-8 % more texts/s than 16, 2026-12-02, docs/benchmarks.md).
"""


def model_run_size(n: int, *, configured: int, provider: str) -> int:
    """Texts per ONNX Runtime run for a micro-batch of ``n`` (``scorer.model_batch``; 0 = auto)."""
    if configured:
        return min(n, configured)
    # Measured on 2 CPU cores (docs/benchmarks.md): sorted runs of 64 beat one padded run
    # of 256 by 2x in throughput and 3.7x in peak memory. A GPU wants the largest run.
    return n if provider == CUDA else min(n, CPU_MODEL_RUN)


class ScorerError(RuntimeError):
    """The scorer cannot go on (broker refused output, model broken, topic missing)."""


@dataclass(frozen=True, slots=True)
class Item:
    """One consumed record, what became of decoding it, and its model input.

    ``key`` is the normalised text (what the model sees, the cache key); ``ids`` its token
    ids, None when it was not tokenised on arrival (a cache hit then, or a plain model).
    """

    raw: RawRecord
    result: InputMessage | Rejection
    key: str = ""
    ids: Sequence[int] | None = None


class PredictionCache:
    """Predictions by normalised text, at most ``max_entries``, least recently used out first.

    The model sees only the normalised text, so two records with the same key get the same
    prediction; keeping it saves the model run. ``nbytes`` is an estimate of the memory the
    keys and predictions hold (``sys.getsizeof`` of each object plus the dict's share).
    """

    # Per entry beyond key and prediction: the OrderedDict's node and hash slot (~100 bytes),
    # the (prediction, size) tuple (56) and the size (28); tracemalloc agrees within 5 %
    # (benchmarks/scorer_bench.py).
    ENTRY_OVERHEAD = 190

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[PredictionLike, int]] = OrderedDict()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def get(self, key: str) -> PredictionLike | None:
        """The prediction for ``key`` (now the most recently used), or None; counted."""
        entry = self._data.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return entry[0]

    def put(self, key: str, pred: PredictionLike) -> None:
        """Keep ``pred`` for ``key``, dropping the least recently used entry past the bound."""
        if self.max_entries < 1 or key in self._data:
            return
        size = _entry_bytes(key, pred)
        self._data[key] = (pred, size)
        self.nbytes += size
        while len(self._data) > self.max_entries:
            _, (_, old) = self._data.popitem(last=False)
            self.nbytes -= old

    def hit_ratio(self) -> float:
        """Hits over lookups since the start (0 before the first lookup)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


def _entry_bytes(key: str, pred: PredictionLike) -> int:
    # Topic and label strings are shared with every other entry; floats and the dict are not.
    probs = pred.sentiment_probs
    return (sys.getsizeof(key) + sys.getsizeof(pred) + sys.getsizeof(probs)
            + 24 * (len(probs) + 2) + PredictionCache.ENTRY_OVERHEAD)


class _Listener(AsyncConsumerRebalanceListener):
    """Give up the batch in hand when partitions move; never block the client here.

    kafka-python sends no heartbeats while a listener runs. Scoring and waiting for acks
    here could outlast the session timeout and get the member evicted mid-rebalance, so
    the open batch (consumed, nothing produced yet) is dropped and its partitions rewound:
    the next owner, maybe this member again, reads those records from the committed offset.
    """

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.scorer._on_revoked(revoked, gave_up=self.scorer._give_up_in_hand())

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.scorer._on_assigned(assigned)


class Scorer:
    """One scorer process (or thread): ``run()`` until stopped, drained or told how many.

    Stop conditions: ``stop`` set (SIGTERM/SIGINT), ``max_records`` records done, no
    record for ``idle_exit_s`` seconds, or with ``once`` as soon as every assigned partition
    is drained (lag 0).
    """

    def __init__(
        self,
        settings: Settings,
        model: ModelLike,
        *,
        topics: Sequence[str] | None = None,
        stop: GracefulStop | None = None,
        max_records: int | None = None,
        idle_exit_s: float | None = None,
        once: bool = False,
        metrics: ScorerMetrics | None = None,
        serve_http: bool = True,
    ) -> None:
        self.settings = settings
        self.model = model
        self.topics = list(topics or settings.topics.inputs)
        self.stop = stop if stop is not None else GracefulStop()  # falsy until set
        self.max_records = max_records
        self.idle_exit_s = idle_exit_s
        self.once = once
        self.metrics = metrics if metrics is not None else ScorerMetrics()
        self.serve_http = serve_http and settings.scorer.metrics_port != 0
        self.model_label = f"{model.name}@{model.version}"
        sc = settings.scorer
        # Token ids in, runs planned here: each text tokenised once (SentimentModel does).
        self._encoder: EncodingModel | None = (
            model if callable(getattr(model, "predict_ids", None))  # type: ignore[assignment]
            and callable(getattr(model, "encode", None)) else None
        )
        self.cache = PredictionCache(sc.cache_entries) if sc.cache_entries else None
        self.batcher: MicroBatcher[Item] = MicroBatcher(
            max_items=sc.max_batch, max_tokens=sc.max_batch_tokens, max_wait_s=sc.max_wait_ms / 1000
        )
        self.lag_every_s = LAG_EVERY_S
        self.done = 0  # records produced and acknowledged (scored + dead-lettered)
        self.consumed = 0
        self._assigned: frozenset[TopicPartition] = frozenset()
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self.http: DaemonHTTPServer | None = None
        self._loop_at = time.monotonic()  # when the main loop last completed an iteration
        self._closing = threading.Event()
        self._lag_thread: threading.Thread | None = None
        # What ONNX Runtime really runs on: a CUDA session that could not start runs on CPU.
        self.providers = tuple(model.session_providers) or (model.provider,)
        self.provider = self.providers[0]
        if self.provider != model.provider:
            log.warning("the model runs on another provider than requested",
                        extra={"requested": model.provider, "providers": ",".join(self.providers)})
        self.metrics.model_info.labels(
            name=model.name, version=model.version, provider=self.provider, variant=model.variant
        ).set(1)
        self.metrics.loop_age_seconds.set_function(self.loop_age_s)
        if self.cache is not None:
            cache = self.cache
            self.metrics.cache_entries.set_function(lambda: len(cache))
            self.metrics.cache_bytes.set_function(lambda: cache.nbytes)
            self.metrics.cache_hit_ratio.set_function(cache.hit_ratio)

    # -- readiness ---------------------------------------------------------------------

    def loop_age_s(self) -> float:
        """Seconds since the main loop last completed an iteration (a stuck batch grows it)."""
        return time.monotonic() - self._loop_at

    def ready(self) -> bool:
        """At least one partition assigned and the loop not stuck (``scorer.stall_s``)."""
        return bool(self._assigned) and self.loop_age_s() < self.settings.scorer.stall_s

    @property
    def assignment(self) -> frozenset[TopicPartition]:
        return self._assigned

    # -- main loop ---------------------------------------------------------------------

    def run(self) -> int:
        """Consume until a stop condition; 0 on a clean stop, 1 when the scorer had to give up."""
        sc = self.settings.scorer
        if self.serve_http:
            self.http = DaemonHTTPServer(
                host=sc.metrics_host, port=sc.metrics_port, ready=self.ready,
                registry=self.metrics.registry,
            ).start()
        code = 0
        repeats = RepeatFilter()
        filtered = repeats.install()
        self._loop_at = time.monotonic()
        try:
            consumer = self._consumer = make_consumer(
                self.settings.kafka, group_id=sc.group_id, client_suffix="scorer",
                max_poll_records=sc.max_batch,
            )
            self._producer = make_producer(self.settings.kafka, client_suffix="scorer",
                                           max_block_ms=int(sc.output_timeout_s * 1000))
            self._check_output_topics(consumer)
            subscribe(consumer, self.topics, listener=_Listener(self))
            self._start_lag_thread()
            log.info("scorer started", extra={
                "topics": ",".join(self.topics), "group_id": sc.group_id,
                "max_batch": sc.max_batch, "max_batch_tokens": sc.max_batch_tokens,
                "max_wait_ms": sc.max_wait_ms, "model": self.model_label,
                "provider": self.provider, "providers": ",".join(self.providers),
                "variant": self.model.variant,
            })
            self._loop(consumer)
            batch = self.batcher.flush()
            if batch is not None:
                self._process(batch)
        except ScorerError as exc:
            log.error("scorer giving up; uncommitted records will be read again",
                      extra={"error": str(exc)})
            code = 1
        finally:
            # Whatever is still in hand after a failure is dropped unproduced: its records
            # are read again from the committed offset by the next owner.
            self.batcher.flush()
            self._close()
            repeats.remove(filtered)
        log.info("scorer stopped", extra={"consumed": self.consumed, "done": self.done,
                                          "exit_code": code})
        return code

    def _close(self) -> None:
        """Leave the group and release the clients; a failing close must not hide the result."""
        self._closing.set()
        if self._lag_thread is not None:
            self._lag_thread.join(timeout=30)
        try:
            if self._consumer is not None:
                self._consumer.close(autocommit=False)  # leaves the group at once
        except Exception as exc:
            log.warning("closing the consumer failed", extra={"error": repr(exc)})
        try:
            if self._producer is not None:
                self._producer.close(timeout=10)
        except Exception as exc:
            log.warning("closing the producer failed", extra={"error": repr(exc)})
            # close() flushes first and gives up on a refused batch before stopping its
            # sender thread; stop it anyway (kafka-python has no public forced close).
            sender = getattr(self._producer, "_sender", None)
            if sender is not None:
                sender.force_close()
        if self.http is not None:
            self.http.stop()
        self._assigned = frozenset()

    def _loop(self, consumer: KafkaConsumer) -> None:
        last_record = time.monotonic()
        join_watch = JoinWatch(consumer)
        while not self.stop:
            self._loop_at = time.monotonic()
            if self.max_records is not None and self.consumed >= self.max_records:
                return
            room = self.batcher.room
            if self.max_records is not None:
                room = min(room, self.max_records - self.consumed)
            # Capped, so that a stop request is seen within IDLE_POLL_S even when a long
            # max wait keeps a batch open.
            timeout = min(self.batcher.time_left(), IDLE_POLL_S) if len(self.batcher) else IDLE_POLL_S
            polled = consumer.poll(timeout_ms=max(1, int(timeout * 1000)), max_records=room)
            join_watch.check()
            records = [r for recs in polled.values() for r in recs]
            now = time.monotonic()
            if records:
                last_record = now
                self._ingest(records)
            if self.batcher.due():
                batch = self.batcher.flush()
                if batch is not None:
                    self._process(batch)
            if not records and not len(self.batcher):
                if self.idle_exit_s is not None and now - last_record >= self.idle_exit_s:
                    log.info("idle, exiting", extra={"idle_exit_s": self.idle_exit_s})
                    return
                if self.once and self._drained(consumer):
                    log.info("input drained, exiting")
                    return

    def _ingest(self, records: Sequence[Any]) -> None:
        items = []
        for rec in records:
            raw = RawRecord.from_consumer_record(rec)
            self.metrics.consumed.labels(topic=raw.topic).inc()
            self.consumed += 1
            items.append(Item(raw, decode(raw, default_kind=self._kind(raw.topic),
                                          max_bytes=self.settings.scorer.max_message_bytes)))
        now_ms = time.time() * 1000
        for it, tokens in self._tokenize(items):
            # How long ago the record reached Kafka (its timestamp, the producer's or the
            # broker's clock): one that arrived while the last batch was scored has waited.
            age_s = (now_ms - it.raw.timestamp_ms) / 1000
            for batch in self.batcher.add(it, tokens, age_s=age_s):
                self._process(batch)

    def _tokenize(self, items: list[Item]) -> list[tuple[Item, int]]:
        """Each item with its normalised text, its token ids unless cached, and its token cost.

        Each text is tokenised once, here; a cached text costs the model nothing, so it
        takes no room in the batch's token budget.
        """
        msgs = [i for i, it in enumerate(items) if isinstance(it.result, InputMessage)]
        keys = {i: normalize(items[i].result.text) for i in msgs}
        todo = [i for i in msgs if self.cache is None or keys[i] not in self.cache]
        ids: dict[int, Sequence[int]] = {}
        counts: dict[int, int] = {}
        if self._encoder is not None and todo:
            try:
                encoded = self._encoder.encode([keys[i] for i in todo], normalized=True)
                ids = dict(zip(todo, encoded, strict=True))
                counts = {i: len(x) for i, x in ids.items()}
            except Exception:
                # A text the tokenizer refuses fails again when scored and is dead-lettered
                # there (``_run_model`` tokenises what has no ids); batched by characters.
                log.warning("tokenizing failed; using character estimates", exc_info=True)
                counts = {i: len(keys[i]) // 4 + 2 for i in todo}
        elif todo:
            raw = [items[i].result.text for i in todo]
            counts = dict(zip(todo, self._token_counts(raw), strict=True))
        return [(Item(it.raw, it.result, keys.get(i, ""), ids.get(i)), counts.get(i, 0))
                for i, it in enumerate(items)]

    def _kind(self, topic: str) -> Kind:
        t = self.settings.topics
        return kind_for_topic(topic, news_topic=t.news, comments_topic=t.comments)

    def _token_counts(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        try:
            return list(self.model.token_counts(texts))
        except Exception:
            # Counting only shapes batches; a text the tokenizer refuses fails in predict
            # and is dead-lettered there.
            log.warning("token counting failed; using character estimates", exc_info=True)
            return [len(t) // 4 + 2 for t in texts]

    # -- one batch ---------------------------------------------------------------------

    def _process(self, batch: Batch[Item]) -> None:
        """Score, produce, wait for the broker's acks, then commit the batch's offsets."""
        assert self._consumer is not None
        self._commit(self._consumer, self._produce(batch), len(batch))

    def _produce(self, batch: Batch[Item]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Score and produce ``batch``; return its offsets to commit once all is acknowledged."""
        producer = self._producer
        assert producer is not None
        msgs = [it for it in batch.items if isinstance(it.result, InputMessage)]
        by_item = self._score(msgs, tokens=batch.tokens)
        now_ms = int(time.time() * 1000)
        topics = self.settings.topics
        sent: list[tuple[Any, str, Item, Rejection | None]] = []
        dead: list[tuple[Item, Rejection]] = []
        scored_by_topic: dict[str, int] = {}
        dead_by_reason: dict[str, int] = {}
        e2e: list[float] = []
        for it in batch.items:
            res: Any = by_item.get(id(it), it.result)
            if isinstance(res, Rejection):
                dead.append((it, res))
                dead_by_reason[res.reason] = dead_by_reason.get(res.reason, 0) + 1
            else:
                msg = it.result
                assert isinstance(msg, InputMessage)
                doc = scored_value(msg, res, model=self.model_label, scored_at_ms=now_ms)
                sent.append((self._send(topics.scored, res.topic.encode("utf-8"), encode(doc)),
                             topics.scored, it, None))
                scored_by_topic[it.raw.topic] = scored_by_topic.get(it.raw.topic, 0) + 1
                e2e.append((now_ms - msg.ts_ms) / 1000)
        self._await_acks(sent, now_ms=now_ms)
        if dead:
            # Dead letters go after the scored records are acknowledged: kafka-python's sender
            # treats a record the broker refuses for its size as fatal and aborts every batch
            # still pending with that error, scored records included (seen in CI).
            sent = []
            for it, res in dead:
                key, value = dead_letter_record(it.raw, res, now_ms=now_ms)
                sent.append((self._send(topics.dlq, key, value), topics.dlq, it, res))
            self._await_acks(sent, now_ms=now_ms)
        for topic, n in scored_by_topic.items():
            self.metrics.scored.labels(topic=topic).inc(n)
        for reason, n in dead_by_reason.items():
            self.metrics.dead_lettered.labels(reason=reason).inc(n)
        for seconds in e2e:
            self.metrics.end_to_end_seconds.observe(max(0.0, seconds))
        self.done += len(batch)
        log.debug("batch done", extra={"records": len(batch), "scored": len(e2e),
                                       "dead_lettered": len(batch) - len(e2e),
                                       "tokens": batch.tokens})
        return _next_offsets(batch)

    def _send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        """``producer.send``; a topic whose metadata never comes is fatal and named."""
        assert self._producer is not None
        try:
            return self._producer.send(topic, key=key, value=value)
        except KafkaTimeoutError as exc:
            raise ScorerError(f"{self._role(topic)} topic {topic!r} is not available (no metadata "
                              f"within {self.settings.scorer.output_timeout_s:.0f}s; deleted?): "
                              f"{exc!r}") from exc

    def _role(self, topic: str) -> str:
        return "dead-letter" if topic == self.settings.topics.dlq else "scored"

    def _await_acks(self, sent: list[tuple[Any, str, Item, Rejection | None]], *, now_ms: int) -> None:
        """Wait for every send's ack; re-send a dead letter the broker refused for its size.

        Anything else unacknowledged within ``scorer.output_timeout_s`` raises
        :class:`ScorerError` naming the topic(s), and the batch is not committed.
        """
        assert self._producer is not None
        timeout = self.settings.scorer.output_timeout_s
        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            pending = sorted({topic for fut, topic, _, _ in sent if not fut.is_done})
            raise ScorerError(
                f"output to {', '.join(f'{self._role(t)} topic {t!r}' for t in pending)} not "
                f"acknowledged within {timeout:.0f}s (topic deleted, broker down or refusing?)"
            ) from None
        except KafkaError as exc:
            # kafka-python's flush can fail on a refused batch ("Future not done"); the
            # futures below say which record and topic.
            log.debug("flush failed", extra={"error": repr(exc)})
        refused: list[tuple[Item, Rejection]] = []
        for fut, topic, it, rejection in sent:
            try:
                fut.get(timeout=timeout)
            except MessageSizeTooLargeError as exc:
                if rejection is None:  # a scored record is small: the topic is misconfigured
                    raise ScorerError(f"output not acknowledged by the broker on scored topic "
                                      f"{topic!r}: {exc!r}") from exc
                refused.append((it, rejection))
            except KafkaError as exc:
                raise ScorerError(f"output not acknowledged by the broker on {self._role(topic)} "
                                  f"topic {topic!r}: {exc!r}") from exc
        for it, rejection in refused:
            self._resend_dead_letter(it, rejection, now_ms=now_ms)

    def _renew_producer(self) -> None:
        """Replace the producer after a refused record.

        kafka-python 3.0.12's idempotent producer fails every later send to a partition that
        refused a record with that same error (measured: 10-byte records after a 1 MB one),
        so only a fresh producer can send there again.
        """
        old = self._producer
        self._producer = make_producer(
            self.settings.kafka, client_suffix="scorer",
            max_block_ms=int(self.settings.scorer.output_timeout_s * 1000))
        if old is not None:
            try:
                old.close(timeout=5)
            except Exception:
                sender = getattr(old, "_sender", None)
                if sender is not None:
                    sender.force_close()

    def _resend_dead_letter(self, it: Item, rejection: Rejection, *, now_ms: int) -> None:
        """A dead letter refused for its size (a smaller topic limit): alone, then the smallest.

        A per-record error that no retry can fix must not stop the partition. Records that
        shared a produce request with the refused one were refused with it; alone they pass.
        """
        dlq = self.settings.topics.dlq
        timeout = self.settings.scorer.output_timeout_s
        log.warning("dead letter refused for its size; sending it again, smaller if need be",
                    extra={"topic": it.raw.topic, "partition": it.raw.partition,
                           "offset": it.raw.offset})
        for smallest in (False, True):
            self._renew_producer()
            key, value = dead_letter_record(it.raw, rejection, now_ms=now_ms,
                                            **({"max_bytes": 0} if smallest else {}))
            try:
                self._send(dlq, key, value).get(timeout=timeout)
                return
            except MessageSizeTooLargeError as exc:
                if smallest:
                    raise ScorerError(f"dead-letter topic {dlq!r} refuses even the smallest dead "
                                      f"letter: {exc!r}") from exc
            except KafkaError as exc:
                raise ScorerError(f"output not acknowledged by the broker on dead-letter topic "
                                  f"{dlq!r}: {exc!r}") from exc

    def _score(self, msgs: list[Item], *, tokens: int) -> dict[int, PredictionLike | Rejection]:
        """Prediction or rejection per message (by ``id()``): cached, or one model call.

        With the cache on, each distinct normalised text of the batch goes to the model at
        most once, and not at all when an earlier batch scored it.
        """
        if self.cache is None:
            preds = self._predict(msgs, tokens=tokens)
            return {id(it): p for it, p in zip(msgs, preds, strict=True)}
        by_key: dict[str, PredictionLike | Rejection] = {}
        todo: dict[str, Item] = {}
        hits = 0
        for it in msgs:
            if it.key in by_key or it.key in todo:
                hits += 1  # the same text earlier in this batch
                self.cache.hits += 1
                continue
            cached = self.cache.get(it.key)
            if cached is not None:
                by_key[it.key] = cached
                hits += 1
            else:
                todo[it.key] = it
        for key, res in zip(todo, self._predict(list(todo.values()), tokens=tokens), strict=True):
            by_key[key] = res
            if not isinstance(res, Rejection):
                self.cache.put(key, res)
        if hits:
            self.metrics.cache_requests.labels(result="hit").inc(hits)
        if todo:
            self.metrics.cache_requests.labels(result="miss").inc(len(todo))
        return {id(it): by_key[it.key] for it in msgs}

    def _predict(self, msgs: list[Item], *, tokens: int) -> list[PredictionLike | Rejection]:
        if not msgs:
            return []
        texts = [it.result.text for it in msgs]
        started = time.perf_counter()
        try:
            preds = list(self._run_model(msgs, texts))
            if len(preds) != len(texts):
                raise ScorerError(f"model returned {len(preds)} predictions for {len(texts)} texts")
        except ScorerError:
            raise
        except Exception as exc:
            self._check_canary(exc)
            log.warning("batch inference failed; scoring one by one", exc_info=True)
            return self._predict_one_by_one(texts)
        self.metrics.inference_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(texts))
        self.metrics.batch_tokens.observe(tokens)
        return list(preds)

    def _run_model(self, msgs: list[Item], texts: list[str]) -> Sequence[PredictionLike]:
        enc = self._encoder
        if enc is None:
            return self.model.predict(texts, batch_size=self._model_batch(len(texts)))
        missing = [it.key for it in msgs if it.ids is None]  # cached on arrival, evicted since
        fresh = iter(enc.encode(missing, normalized=True) if missing else [])
        ids = [it.ids if it.ids is not None else next(fresh) for it in msgs]
        return enc.predict_ids(ids, self._plan([len(x) for x in ids]))

    def _plan(self, lengths: list[int]) -> list[list[int]]:
        """Model runs for texts of ``lengths`` tokens (indices), see ``scorer.length_buckets``."""
        cap = self._model_batch(len(lengths))
        if self.provider == CUDA or not self.settings.scorer.length_buckets:
            # A GPU's cost hardly grows with the rows of a run: one large run is best there.
            return fixed_runs(lengths, cap, True)
        return plan_runs(lengths, max_run=cap, run_overhead=RUN_OVERHEAD_TOKENS)

    def _model_batch(self, n: int) -> int:
        return model_run_size(n, configured=self.settings.scorer.model_batch, provider=self.provider)

    def _check_canary(self, failure: BaseException) -> None:
        """After a failed run: raise :class:`ScorerError` if a known-good text fails too.

        Then the model (GPU, ONNX Runtime session) is broken, not the input, and
        dead-lettering would turn every record of an outage into an ``inference_error``.
        """
        try:
            self.model.predict([CANARY_TEXT], batch_size=1)
        except Exception as exc:
            raise ScorerError(
                f"the model is broken: it fails on a known-good canary text too ({exc!r}; "
                f"first failure {failure!r}); model {self.model_label} on "
                f"{','.join(self.providers)}; not committing"
            ) from exc

    def _predict_one_by_one(self, texts: list[str]) -> list[PredictionLike | Rejection]:
        out: list[PredictionLike | Rejection] = []
        for text in texts:
            try:
                out.extend(self.model.predict([text], batch_size=1))
            except Exception as exc:
                self._check_canary(exc)  # the model may break in the middle of the batch
                out.append(Rejection("inference_error", repr(exc)[:300]))
        return out

    def _commit(self, consumer: KafkaConsumer, offsets: dict[TopicPartition, OffsetAndMetadata],
                records: int) -> None:
        try:
            consumer.commit(offsets)
        except KafkaError as exc:
            # Typically the group moved on (CommitFailedError): the new owner re-reads these
            # records, so they repeat downstream under the same ids; nothing is lost.
            log.warning("commit failed; these records will be scored again",
                        extra={"error": repr(exc), "records": records})

    # -- group membership --------------------------------------------------------------

    def _give_up_in_hand(self) -> int:
        """Drop the open batch and rewind its partitions to its first records; its size.

        Nothing of it was produced (batches are produced and committed whole in the main
        loop), so nothing repeats downstream. A partition this member keeps would otherwise
        go on from its position, past the dropped records.
        """
        batch = self.batcher.flush()
        if batch is None:
            return 0
        first: dict[TopicPartition, int] = {}
        for it in batch.items:
            tp = TopicPartition(it.raw.topic, it.raw.partition)
            first[tp] = min(first.get(tp, it.raw.offset), it.raw.offset)
        for tp, offset in first.items():
            try:
                if self._consumer is not None:
                    self._consumer.seek(tp, offset)
            except (ValueError, KafkaError):
                pass  # no longer assigned: its next owner starts from the committed offset
        return len(batch)

    def _on_revoked(self, revoked: set[TopicPartition], *, gave_up: int) -> None:
        self._assigned = self._assigned - set(revoked)
        self.metrics.set_lag({})  # refilled for the new assignment on the next lag update
        log.info("partitions revoked", extra={"partitions": _tps(revoked), "gave_up": gave_up})

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned = self._assigned | set(assigned)
        log.info("partitions assigned", extra={"partitions": _tps(assigned)})

    def _drained(self, consumer: KafkaConsumer) -> bool:
        if not self._assigned:
            return False
        try:
            lag = consumer_lag(consumer)
        except KafkaError:
            return False
        return bool(lag) and not any(lag.values())

    def _start_lag_thread(self) -> None:
        self._lag_thread = threading.Thread(target=self._lag_loop, daemon=True, name="scorer-lag")
        self._lag_thread.start()

    def _lag_loop(self) -> None:
        """Lag from the group's committed offsets, on its own clients and thread.

        Independent of the main loop: a batch stuck on an output topic leaves the committed
        offsets behind while the input grows, and ``sentimon_scorer_consumer_lag`` shows it.
        """
        group_lag: GroupLag | None = None
        try:
            while not self._closing.is_set():
                try:
                    if group_lag is None:
                        group_lag = GroupLag(self.settings.kafka, self.settings.scorer.group_id)
                    lag = group_lag(self._assigned)
                    self.metrics.set_lag({(tp.topic, tp.partition): v for tp, v in lag.items()})
                except Exception as exc:  # broker away: keep the last figures, try again
                    log.debug("lag not available", extra={"error": repr(exc)})
                self._closing.wait(self.lag_every_s)
        finally:
            if group_lag is not None:
                group_lag.close()

    def _check_output_topics(self, consumer: KafkaConsumer) -> None:
        topics = self.settings.topics
        known = consumer.topics()
        missing = [t for t in (topics.scored, topics.dlq) if t not in known]
        if missing:
            raise ScorerError(
                f"output topic(s) {', '.join(missing)} do not exist; create them "
                "(`sentimon stack up` does) or set SENTIMON_TOPICS__SCORED / __DLQ"
            )


def _next_offsets(batch: Batch[Item]) -> dict[TopicPartition, OffsetAndMetadata]:
    """Per partition, the offset after the last record of ``batch`` (what a commit stores)."""
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    for it in batch.items:
        tp = TopicPartition(it.raw.topic, it.raw.partition)
        if tp not in offsets or offsets[tp].offset <= it.raw.offset:
            offsets[tp] = OffsetAndMetadata(it.raw.offset + 1, "", -1)
    return offsets


def _tps(tps: set[TopicPartition]) -> str:
    return ",".join(f"{tp.topic}:{tp.partition}" for tp in sorted(tps))
