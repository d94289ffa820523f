"""``sentimon monitor``: consume scored records, keep sliding windows, serve ``/metrics``.

Every monitor reads **every** partition of the scored topic (a group-less consumer), so its
windows, baselines and detector see the whole stream, exactly as a single monitor would. The
consumer group ``monitor.group_id`` only decides who *exports* what: the scored topic is keyed
by predicted topic, and a monitor exports a topic's series when that topic's partition is
assigned to it, and the ticker and market series when partition 0 is. So every series is
owned by exactly one monitor and N monitors raise the same alerts as one.

On start (and when the topic gains partitions) the windows are rebuilt from the records since
``now - max(baseline window, history) - short window`` (found with ``offsets_for_times``);
figures are a function of the records in the windows only, so a restart changes no figure and
committed offsets are never needed.

On a live stream that goes quiet, the watermark follows the wall clock after
``monitor.live_idle_s`` (see :meth:`Monitor._advance_live`), so evidence decays and alerts
resolve; replays of old data stay in event time.

Beside the figures the monitor keeps, per series, the most negative texts of the detection
horizon (:mod:`sentimon.monitor.exemplars`) and serves them with the series' figures on
``GET /exemplars?topic=T`` (or ``ticker=S``, or ``market``) for ``sentimon notify``. Every
monitor sees the whole stream, so any monitor answers for every series, owned or not.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2
from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry, ProcessCollector

from sentimon.config import Settings
from sentimon.http import DaemonHTTPServer
from sentimon.ingest.message import rfc3339_ms
from sentimon.kafka import GracefulStop, JoinWatch, consumer_lag, make_consumer, subscribe
from sentimon.monitor.aggregate import MARKET, NO_DETECTION, Aggregator, Outcome, Snapshot
from sentimon.monitor.collector import MonitorCollector
from sentimon.monitor.exemplars import Exemplars
from sentimon.monitor.records import MalformedRecord, parse_scored
from sentimon.monitor.windows import Key
from sentimon.timestamps import FUTURE_TOLERANCE_S  # one rule with the scorer

log = logging.getLogger(__name__)

#: Seconds between two consumer-lag refreshes (one ListOffsets request each).
LAG_REFRESH_S = 2.0
#: Seconds between two looks at the scored topic's partition count.
METADATA_REFRESH_S = 10.0
#: Seconds between two progress lines while the windows are rebuilt.
PROGRESS_S = 5.0
#: Malformed records of one reason logged one by one, then one in this many.
_LOG_FIRST, _LOG_EVERY = 10, 1000


class _Ownership(ConsumerRebalanceListener):
    """Records which partitions the group gives this monitor: the series it exports."""

    def __init__(self, monitor: Monitor) -> None:
        self._monitor = monitor

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._monitor._owned = None

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._monitor._owned = frozenset(tp.partition for tp in assigned)
        log.info("exporting the series of partitions", extra={
            "partitions": ",".join(str(tp.partition) for tp in sorted(assigned)) or "-"})


def partition_of(key: str, partitions: int) -> int:
    """The partition the producer's default partitioner (murmur2) puts ``key`` in."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


class Monitor:
    """The monitor daemon. ``run()`` blocks until ``stop`` is set (or idle exit)."""

    def __init__(
        self,
        settings: Settings,
        *,
        stop: GracefulStop | None = None,
        clock: Callable[[], float] = time.time,
        future_tolerance_s: float = FUTURE_TOLERANCE_S,
    ) -> None:
        m = settings.monitor
        self.settings = settings
        self.stop = stop if stop is not None else GracefulStop()
        self.clock = clock
        self.future_tolerance_s = future_tolerance_s
        self.aggregator = Aggregator.from_settings(m)
        # Fed the records the aggregator counts (never a duplicate), under the same lock.
        self.exemplars = Exemplars(horizon_s=m.detection_horizon_s,
                                   watchlist=self.aggregator.watchlist)
        self.registry = CollectorRegistry()
        self.registry.register(MonitorCollector(self.snapshot))
        ProcessCollector(registry=self.registry)
        self.http: DaemonHTTPServer | None = None
        self._lock = threading.Lock()
        self._ready = False
        self._assigned = False  # every partition of the scored topic assigned and sought
        self._partitions = 0  # how many the scored topic has
        self._owned: frozenset[int] | None = None  # partitions the group gave us; None: none yet
        self._pending_rebuild = False
        self._targets: dict[TopicPartition, int] = {}
        # Offsets already counted in the counters: re-reads after a rebalance update the
        # windows but must not count the same record twice in *_total.
        self._counted_upto: dict[TopicPartition, int] = {}
        self._lag: dict[tuple[str, int], int] = {}
        self._logged: Counter[str] = Counter()

    # -- state read by the HTTP thread -------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Figures for ``/metrics``, taken under the lock so a scrape sees whole batches.

        Only the series this monitor owns: the topics whose partition the group assigned to
        it, and the tickers and the market with partition 0.
        """
        with self._lock:
            snap = self.aggregator.snapshot()
        owned, n = self._owned or frozenset(), max(1, self._partitions)
        lead = 0 in owned
        return replace(
            snap, lag=dict(self._lag), ready=self.ready(),
            topics={t: f for t, f in snap.topics.items() if partition_of(t, n) in owned},
            tickers=snap.tickers if lead else {}, market=snap.market if lead else None)

    def exemplars_route(self, params: Mapping[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """``GET /exemplars``: one series' most negative recent texts, tickers and figures.

        Exactly one of ``topic=T``, ``ticker=S`` (a watchlist ticker) or ``market``. 400 for
        anything else, 404 for a series the monitor has no record of. Answered for every
        series, owned or not: every monitor reads the whole stream.
        """
        given = [(f, v[0]) for f, v in params.items() if f in ("topic", "ticker", "market")]
        if len(given) != 1:
            return 400, {"error": "give exactly one of topic=T, ticker=S or market"}
        family, name = given[0]
        name = name.strip()
        if family == "ticker":
            name = name.upper()
            if name not in self.aggregator.watchlist:
                return 404, {"error": f"ticker {name!r} is not on the watchlist"}
        elif family == "market":
            name = ""
        body = self.exemplars_view((family, name))
        if body is None:
            return 404, {"error": f"no records of {family} {name!r}".replace(" ''", "")}
        return 200, body

    def exemplars_view(self, key: Key) -> dict[str, Any] | None:
        """The ``/exemplars`` body of ``key``; None when the monitor has no record of it."""
        with self._lock:
            got = self.exemplars.get(key)
            known = key in self.aggregator.windows
            if got is None and not known:
                return None
            short, base = self.aggregator.windows.figures(key)
            has_history = key in self.aggregator.history.coarse
            detection = (self.aggregator.detect([key])[key] if has_history else NO_DETECTION)
        texts = [] if got is None else [{
            "id": r.id, "text": r.text, "source": r.source, "ts": rfc3339_ms(round(r.ts * 1000)),
            "tickers": list(r.tickers), "p_negative": round(r.p_negative, 4),
        } for r in got.records if r.text]

        def number(value: float | None) -> float | None:
            # JSON has no infinity; a cold-start series has no threshold yet.
            return value if value is not None and math.isfinite(value) else None

        d = detection
        return {
            "series": {"family": key[0], "name": key[1]},
            "ready": self.ready(),
            "horizon_s": self.exemplars.horizon_s,
            "since": rfc3339_ms(round(got.since * 1000)) if got else None,
            "watermark": rfc3339_ms(round(got.watermark * 1000)) if got else None,
            "texts": texts,
            "tickers": [] if got is None else [[s, c] for s, c in got.tickers],
            "volume": short.n,
            "negative_share": short.negative_share,
            "baseline_share": base.negative_share,
            "expected": number(d.expected) if d.has_baseline else None,
            "observed": number(d.observed) if d.has_baseline else None,
            "evidence": number(d.evidence) if d.has_baseline else None,
            "threshold": number(d.threshold) if d.has_baseline else None,
            "spike": d.alarm,
        }

    def ready(self) -> bool:
        """True once the windows are rebuilt, caught up, and the group said what we own."""
        return self._ready and self._owned is not None

    # -- main loop ---------------------------------------------------------------------

    def run(self, *, idle_exit_s: float | None = None) -> int:
        """Consume until stopped, or with ``idle_exit_s`` until that long idle once ready."""
        m, topic = self.settings.monitor, self.settings.topics.scored
        try:
            self.http = DaemonHTTPServer(host=m.metrics_host, port=m.metrics_port,
                                         ready=self.ready, registry=self.registry,
                                         routes={"/exemplars": self.exemplars_route}).start()
        except OSError as exc:
            log.error("cannot serve metrics", extra={
                "host": m.metrics_host, "port": m.metrics_port, "error": str(exc)})
            return 1
        try:
            # Give up on an unreachable cluster after one request timeout, not kafka-python's
            # fixed 30 s, so a misconfigured bootstrap list is reported promptly.
            consumer = make_consumer(
                self.settings.kafka, group_id=None, client_suffix="monitor",
                bootstrap_timeout_ms=self.settings.kafka.request_timeout_ms)
            member = make_consumer(
                self.settings.kafka, group_id=m.group_id, client_suffix="monitor-member",
                bootstrap_timeout_ms=self.settings.kafka.request_timeout_ms)
        except KafkaError as exc:
            log.error("cannot reach Kafka", extra={
                "bootstrap_servers": self.settings.kafka.bootstrap_servers, "error": repr(exc)})
            self.http.stop()
            return 1
        try:
            if topic not in consumer.topics():
                log.warning("scored topic does not exist yet, waiting", extra={"topic": topic})
            subscribe(member, [topic], listener=_Ownership(self))
            log.info("monitor started", extra={
                "topic": topic, "group_id": m.group_id, "metrics_port": self.http.port,
                "short_window_s": m.short_window_s, "baseline_window_s": m.baseline_window_s})
            self._loop(consumer, member, idle_exit_s=idle_exit_s)
        finally:
            member.close(autocommit=False)
            consumer.close(autocommit=False)
            self.http.stop()
        log.info("monitor stopped", extra={"records": sum(self.aggregator.records.values())})
        return 0

    def _loop(self, consumer: KafkaConsumer, member: KafkaConsumer, *,
              idle_exit_s: float | None) -> None:
        last_record = last_lag = last_progress = time.monotonic()
        last_meta = -float("inf")
        join_watch = JoinWatch(member)
        while not self.stop:
            now = time.monotonic()
            if now - last_meta >= METADATA_REFRESH_S:
                last_meta = now
                self._check_partitions(consumer)
            # The member only takes part in the group: it heartbeats and learns what this
            # monitor owns, and fetches nothing (its partitions stay paused).
            # Joining needs the member's poll to wait for the coordinator's answers; once it
            # owns its partitions, a non-blocking poll keeps it in the group.
            member.poll(timeout_ms=0 if self._owned is not None else 200)
            if member.assignment():
                member.pause(*member.assignment())
            join_watch.check()
            if self._pending_rebuild:
                self._rebuild(consumer)
                continue
            batch = consumer.poll(timeout_ms=500) if self._assigned else {}
            if not self._assigned:
                time.sleep(0.5)
            now = time.monotonic()
            if batch:
                last_record = now
                with self._lock:
                    for tp, messages in batch.items():
                        for msg in messages:
                            self._handle(tp, msg)
            if not self._ready and self._caught_up(consumer):
                self._ready = True
                log.info("windows rebuilt, monitor ready", extra={
                    "partitions": len(self._targets), "records": self._in_windows()})
            elif not self._ready and self._assigned and now - last_progress >= PROGRESS_S:
                last_progress = now
                log.info("rebuilding windows", extra={
                    "records": self._in_windows(), "remaining": self._remaining(consumer)})
            if now - last_lag >= LAG_REFRESH_S:
                self._refresh_lag(consumer)
                last_lag = now
            if self._ready and now - last_record >= self.settings.monitor.live_idle_s:
                self._advance_live()
            if idle_exit_s is not None and self.ready() and now - last_record >= idle_exit_s:
                log.info("idle, exiting", extra={"idle_exit_s": idle_exit_s})
                return

    def _check_partitions(self, consumer: KafkaConsumer) -> None:
        """Assign every partition of the scored topic; rebuild when their number changes."""
        topic = self.settings.topics.scored
        try:
            consumer.topics()  # refreshes the metadata partitions_for_topic reads
            found = consumer.partitions_for_topic(topic)
        except KafkaError as exc:
            log.warning("cannot read the scored topic's partitions", extra={"error": repr(exc)})
            return
        if not found or len(found) == self._partitions:
            return
        self._partitions = len(found)
        consumer.assign([TopicPartition(topic, p) for p in sorted(found)])
        self._pending_rebuild = True

    def _advance_live(self) -> None:
        """On a live stream gone quiet, let event time follow the wall clock.

        Without records the watermark would stand still and a spike would stay on for as
        long as the stream is silent; moving it lets the evidence decay. Only a stream whose
        newest event lies within the detection horizon of the clock counts as live: a replay
        of old records stays in event time.
        """
        wall = self.clock()
        wm = self.aggregator.windows.watermark
        if wm is None or not wall - self.settings.monitor.detection_horizon_s <= wm < wall - 1.0:
            return
        with self._lock:
            self.aggregator.advance_to(wall)
            self.exemplars.advance_to(wall)

    def _handle(self, tp: TopicPartition, msg: Any) -> None:
        count = msg.offset >= self._counted_upto.get(tp, 0)
        if count:
            self._counted_upto[tp] = msg.offset + 1
        try:
            rec = parse_scored(msg.value)
            if rec.ts > self.clock() + self.future_tolerance_s:
                raise MalformedRecord("future_ts", f"event time {rec.ts} is ahead of the clock")
        except MalformedRecord as exc:
            if count:
                self.aggregator.note_malformed(exc.reason)
                self._log_malformed(exc, tp, msg.offset)
            return
        if self.aggregator.add(rec, count=count) is Outcome.COUNTED:
            self.exemplars.add(rec)

    def _log_malformed(self, exc: MalformedRecord, tp: TopicPartition, offset: int) -> None:
        self._logged[exc.reason] += 1
        seen = self._logged[exc.reason]
        if seen <= _LOG_FIRST or seen % _LOG_EVERY == 0:
            log.warning("malformed scored record skipped", extra={
                "reason": exc.reason, "detail": exc.detail[:200], "topic": tp.topic,
                "partition": tp.partition, "offset": offset, "seen": seen})

    def _rebuild(self, consumer: KafkaConsumer) -> None:
        """Empty the windows and seek every partition to the start of the windows."""
        self._pending_rebuild = False
        self._ready = False
        assigned = sorted(consumer.assignment())
        m = self.settings.monitor
        with self._lock:
            self.aggregator.reset()
            self.exemplars.reset()
        ends: dict[TopicPartition, int] = {}
        starts: dict[TopicPartition, int] = {}
        if assigned:
            # Everything that can still change a figure: the longer of the baseline window and
            # the detector's history, plus the short window.
            start_ms = int((self.clock() - self.aggregator.memory_s - m.short_window_s) * 1000)
            found = consumer.offsets_for_times({tp: max(0, start_ms) for tp in assigned})
            ends = {tp: int(o) for tp, o in consumer.end_offsets(assigned).items()}
            for tp in assigned:
                hit = found.get(tp)
                starts[tp] = hit.offset if hit is not None else ends[tp]
                consumer.seek(tp, starts[tp])
        self._targets = ends
        self._assigned = True
        log.info("rebuilding windows", extra={
            "partitions": ",".join(str(tp.partition) for tp in assigned) or "-",
            "records": sum(ends[tp] - starts[tp] for tp in assigned)})

    def _caught_up(self, consumer: KafkaConsumer) -> bool:
        # Before the partitions are assigned there is nothing to be caught up with.
        if self._pending_rebuild or not self._assigned:
            return False
        for tp, target in self._targets.items():
            try:
                if consumer.position(tp) < target:
                    return False
            except Exception:  # revoked meanwhile; the next rebuild decides
                return False
        return True

    def _in_windows(self) -> int:
        short, base = self.aggregator.windows.figures(MARKET)
        return short.n + base.n

    def _remaining(self, consumer: KafkaConsumer) -> int:
        left = 0
        for tp, target in self._targets.items():
            try:
                left += max(0, target - consumer.position(tp))
            except Exception:  # revoked meanwhile
                continue
        return left

    def _refresh_lag(self, consumer: KafkaConsumer) -> None:
        try:
            lag = consumer_lag(consumer)
        except Exception as exc:  # a lag gauge must not stop the daemon
            log.debug("lag refresh failed", extra={"error": repr(exc)})
            return
        self._lag = {(tp.topic, tp.partition): value for tp, value in lag.items()}
