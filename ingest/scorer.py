"""The scorer daemon: consume input topics, score micro-batches, produce, then commit.

Delivery is at-least-once. For every batch the scored records and dead letters are sent
and acknowledged by the broker (``flush`` + each future, ``acks=all``) before the batch's
offsets are committed, so a crash repeats a batch (same ``id``s) and never loses one. A
rebalance first finishes the batch in hand and commits it (``on_partitions_revoked``).

Every consumed record ends as exactly one scored record or one dead letter; the counters
``consumed = scored + dead_lettered`` add up whenever no batch is in flight.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from sentimon.config import Settings
from sentimon.http import DaemonHTTPServer
from sentimon.ingest.batching import Batch, MicroBatcher
from sentimon.ingest.deadletter import dead_letter_value
from sentimon.ingest.message import InputMessage, Kind, RawRecord, Rejection, decode, kind_for_topic
from sentimon.ingest.metrics import ScorerMetrics
from sentimon.ingest.output import PredictionLike, encode, scored_value
from sentimon.kafka import GracefulStop, JoinWatch, consumer_lag, make_consumer, make_producer, subscribe
from sentimon.model.providers import CUDA

log = logging.getLogger(__name__)

IDLE_POLL_S = 0.5
"""Longest poll: how fast a stop request or a due batch is noticed."""
LAG_EVERY_S = 5.0
ACK_TIMEOUT_S = 120.0


class ModelLike(Protocol):
    """The part of ``sentimon.model.inference.SentimentModel`` the scorer uses."""

    name: str
    version: str
    provider: str
    variant: str

    def token_counts(self, texts: Sequence[str]) -> list[int]: ...

    def predict(
        self, texts: Sequence[str], *, batch_size: int = 64, sort_by_length: bool = True
    ) -> Sequence[PredictionLike]: ...


CPU_MODEL_RUN = 64


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
    """One consumed record and what became of decoding it."""

    raw: RawRecord
    result: InputMessage | Rejection


class _Listener(AsyncConsumerRebalanceListener):
    """Finish and commit the batch in hand before partitions move to another member.

    kafka-python 3 runs listeners on the consumer's IO thread, where the blocking
    ``consumer.commit`` is refused; hence the async listener awaiting ``commit_async``.
    """

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        scorer = self.scorer
        offsets, n = scorer._finish_in_hand()
        if offsets and scorer._consumer is not None:
            try:
                await scorer._consumer.commit_async(offsets)
            except Exception as exc:
                log.warning("commit before rebalance failed; those records will repeat",
                            extra={"error": repr(exc), "records": n})
        scorer._on_revoked(revoked, finished=n)

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
        self.batcher: MicroBatcher[Item] = MicroBatcher(
            max_items=sc.max_batch, max_tokens=sc.max_batch_tokens, max_wait_s=sc.max_wait_ms / 1000
        )
        self.lag_every_s = LAG_EVERY_S
        self.done = 0  # records produced and acknowledged (scored + dead-lettered)
        self.consumed = 0
        self._assigned: frozenset[TopicPartition] = frozenset()
        self._fatal: BaseException | None = None
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self.http: DaemonHTTPServer | None = None
        self.metrics.model_info.labels(
            name=model.name, version=model.version, provider=model.provider, variant=model.variant
        ).set(1)

    # -- readiness ---------------------------------------------------------------------

    def ready(self) -> bool:
        """Model loaded (it is, once constructed) and at least one partition assigned."""
        return bool(self._assigned)

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
        try:
            consumer = self._consumer = make_consumer(
                self.settings.kafka, group_id=sc.group_id, client_suffix="scorer",
                max_poll_records=sc.max_batch,
            )
            self._producer = make_producer(self.settings.kafka, client_suffix="scorer")
            self._check_output_topics(consumer)
            subscribe(consumer, self.topics, listener=_Listener(self))
            log.info("scorer started", extra={
                "topics": ",".join(self.topics), "group_id": sc.group_id,
                "max_batch": sc.max_batch, "max_batch_tokens": sc.max_batch_tokens,
                "max_wait_ms": sc.max_wait_ms, "model": self.model_label,
                "provider": self.model.provider, "variant": self.model.variant,
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
            # Whatever is still in hand must not be produced and committed by the listener
            # during close: it would commit past an earlier batch that failed.
            self.batcher.flush()
            self._close()
        log.info("scorer stopped", extra={"consumed": self.consumed, "done": self.done,
                                          "exit_code": code})
        return code

    def _close(self) -> None:
        """Leave the group and release the clients; a failing close must not hide the result."""
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
        next_lag = 0.0
        join_watch = JoinWatch(consumer)
        while not self.stop:
            if self.max_records is not None and self.consumed >= self.max_records:
                return
            room = self.batcher.room
            if self.max_records is not None:
                room = min(room, self.max_records - self.consumed)
            # Capped, so that a stop request is seen within IDLE_POLL_S even when a long
            # max wait keeps a batch open.
            timeout = min(self.batcher.time_left(), IDLE_POLL_S) if len(self.batcher) else IDLE_POLL_S
            polled = consumer.poll(timeout_ms=max(1, int(timeout * 1000)), max_records=room)
            self._raise_fatal()
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
            if now >= next_lag:
                next_lag = now + self.lag_every_s
                self._update_lag(consumer)
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
        texts = [it.result.text for it in items if isinstance(it.result, InputMessage)]
        counts = iter(self._token_counts(texts))
        for it in items:
            tokens = next(counts) if isinstance(it.result, InputMessage) else 0
            for batch in self.batcher.add(it, tokens):
                self._process(batch)

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
        preds = self._predict([m.result.text for m in msgs], tokens=batch.tokens)
        by_item = {id(it): p for it, p in zip(msgs, preds, strict=True)}
        now_ms = int(time.time() * 1000)
        topics = self.settings.topics
        sent = []
        scored_by_topic: dict[str, int] = {}
        dead_by_reason: dict[str, int] = {}
        e2e: list[float] = []
        try:
            for it in batch.items:
                res: Any = by_item.get(id(it), it.result)
                if isinstance(res, Rejection):
                    value = encode(dead_letter_value(it.raw, res, now_ms=now_ms))
                    sent.append(producer.send(topics.dlq, key=it.raw.key, value=value))
                    dead_by_reason[res.reason] = dead_by_reason.get(res.reason, 0) + 1
                else:
                    msg = it.result
                    assert isinstance(msg, InputMessage)
                    doc = scored_value(msg, res, model=self.model_label, scored_at_ms=now_ms)
                    sent.append(producer.send(topics.scored, key=res.topic.encode("utf-8"),
                                              value=encode(doc)))
                    scored_by_topic[it.raw.topic] = scored_by_topic.get(it.raw.topic, 0) + 1
                    e2e.append((now_ms - msg.ts_ms) / 1000)
            producer.flush(timeout=ACK_TIMEOUT_S)
            for fut in sent:
                fut.get(timeout=ACK_TIMEOUT_S)
        except KafkaError as exc:
            raise ScorerError(f"output not acknowledged by the broker: {exc!r}") from exc
        for topic, n in scored_by_topic.items():
            self.metrics.scored.labels(topic=topic).inc(n)
        for reason, n in dead_by_reason.items():
            self.metrics.dead_lettered.labels(reason=reason).inc(n)
        for seconds in e2e:
            self.metrics.end_to_end_seconds.observe(max(0.0, seconds))
        self.done += len(batch)
        log.debug("batch done", extra={"records": len(batch), "scored": len(msgs),
                                       "dead_lettered": len(batch) - len(e2e),
                                       "tokens": batch.tokens})
        return _next_offsets(batch)

    def _predict(self, texts: list[str], *, tokens: int) -> list[PredictionLike | Rejection]:
        if not texts:
            return []
        started = time.perf_counter()
        try:
            preds = list(self.model.predict(texts, batch_size=self._model_batch(len(texts))))
            if len(preds) != len(texts):
                raise ScorerError(f"model returned {len(preds)} predictions for {len(texts)} texts")
        except ScorerError:
            raise
        except Exception:
            log.warning("batch inference failed; scoring one by one", exc_info=True)
            return self._predict_one_by_one(texts)
        self.metrics.inference_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(texts))
        self.metrics.batch_tokens.observe(tokens)
        return list(preds)

    def _model_batch(self, n: int) -> int:
        return model_run_size(n, configured=self.settings.scorer.model_batch, provider=self.model.provider)

    def _predict_one_by_one(self, texts: list[str]) -> list[PredictionLike | Rejection]:
        out: list[PredictionLike | Rejection] = []
        errors = 0
        for text in texts:
            try:
                out.extend(self.model.predict([text], batch_size=1))
            except Exception as exc:
                errors += 1
                out.append(Rejection("inference_error", repr(exc)[:300]))
        if len(texts) > 1 and errors == len(texts):
            # Not the input's fault: dead-lettering everything would bury the outage.
            raise ScorerError("the model fails on every text; not committing")
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

    def _finish_in_hand(self) -> tuple[dict[TopicPartition, OffsetAndMetadata], int]:
        """Score and produce the open batch (rebalance path); its offsets and size."""
        batch = self.batcher.flush()
        if batch is None:
            return {}, 0
        try:
            return self._produce(batch), len(batch)
        except BaseException as exc:
            # kafka-python logs and swallows listener exceptions; the main loop re-raises
            # this after poll returns. Nothing of the batch is committed.
            self._fatal = exc
            return {}, 0

    def _on_revoked(self, revoked: set[TopicPartition], *, finished: int) -> None:
        self._assigned = self._assigned - set(revoked)
        self.metrics.set_lag({})  # refilled for the new assignment on the next lag update
        log.info("partitions revoked", extra={"partitions": _tps(revoked),
                                              "finished_first": finished})

    def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned = self._assigned | set(assigned)
        log.info("partitions assigned", extra={"partitions": _tps(assigned)})

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            exc, self._fatal = self._fatal, None
            raise exc

    def _drained(self, consumer: KafkaConsumer) -> bool:
        if not self._assigned:
            return False
        try:
            lag = consumer_lag(consumer)
        except KafkaError:
            return False
        return bool(lag) and not any(lag.values())

    def _update_lag(self, consumer: KafkaConsumer) -> None:
        try:
            lag = consumer_lag(consumer)
        except KafkaError as exc:
            log.debug("lag not available", extra={"error": repr(exc)})
            return
        self.metrics.set_lag({(tp.topic, tp.partition): v for tp, v in lag.items()})

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
