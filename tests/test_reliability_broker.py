"""The broker restarts mid-stream: scorer and monitor reconnect by themselves, nothing is lost.

A broker of its own (own home, free ports; the session broker is never stopped) runs the
pipeline topics; the scorer and the monitor run as `sentimon score` / `sentimon monitor`
processes; a writer streams real tweets while the broker is stopped (SIGTERM, controlled
shutdown) and started again on the same data directory by the stack code.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from sentimon.config import (
    KafkaSettings,
    ModelSettings,
    MonitorSettings,
    ScorerSettings,
    Settings,
    TopicSettings,
)
from sentimon.kafka import make_producer
from sentimon.kafka.admin import ensure_pipeline_topics
from sentimon.stack.cluster import Cluster, free_ports
from tests.reliability.helpers import (
    Daemon,
    GroupProgress,
    encode_all,
    messages,
    needs_model,
    read_topic,
    scaled,
    stop_all,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MESSAGES = 2_000
CHUNK = 50


@needs_model
@pytest.mark.timeout(600)
def test_broker_restart_mid_stream(tmp_path: Path, data_dir: Path) -> None:
    n = scaled(MESSAGES)
    cluster = Cluster(tmp_path / "broker", nodes=1, heap="256m")
    scorer_port, monitor_port = free_ports(2)
    topics = TopicSettings(partitions=3)  # type: ignore[call-arg]
    settings = Settings(  # type: ignore[call-arg]
        home=tmp_path / "home", log_json=True,
        kafka=KafkaSettings(bootstrap_servers=cluster.bootstrap()),  # type: ignore[call-arg]
        topics=topics,
        scorer=ScorerSettings(max_batch=64, metrics_port=scorer_port),  # type: ignore[call-arg]
        monitor=MonitorSettings(metrics_port=monitor_port),  # type: ignore[call-arg]
        model=ModelSettings(device="cpu"),  # type: ignore[call-arg]
    )
    msgs = messages(data_dir, n, prefix="restart", now_ts=True)
    values = encode_all(msgs)
    scorer = Daemon(settings, ["score"], tmp_path / "scorer.log", port=scorer_port)
    monitor = Daemon(settings, ["monitor"], tmp_path / "monitor.log", port=monitor_port)
    try:
        cluster.start(timeout_s=120)
        ensure_pipeline_topics(settings.kafka, topics)
        monitor.start()
        scorer.start()
        monitor.wait_ready(timeout_s=120)
        scorer.wait_ready(timeout_s=180)

        sent = [0]
        errors: list[str] = []
        producer = make_producer(settings.kafka, client_suffix="reliability-writer")

        def stream() -> None:
            futures = []
            for start in range(0, n, CHUNK):
                for v in values[start:start + CHUNK]:
                    futures.append(producer.send(topics.comments, value=v))
                    sent[0] += 1
                time.sleep(0.25)
            producer.flush(timeout=180)
            for fut in futures:
                try:
                    fut.get(timeout=60)
                except Exception as exc:  # reported below; the test then fails
                    errors.append(repr(exc))

        writer = threading.Thread(target=stream)
        writer.start()
        with GroupProgress(settings.kafka, settings.scorer.group_id, topics.inputs) as progress:
            wait_for(lambda: sent[0] >= n // 3 and progress() > 0,
                     "a third sent and the first batches committed", timeout_s=180)
            done_at_stop = progress()
        cluster.stop_node(1)
        stopped = time.monotonic()
        time.sleep(2.0)
        cluster.start_node(1, timeout_s=120)
        down_s = time.monotonic() - stopped
        writer.join(timeout=240)
        assert not writer.is_alive()
        producer.close(timeout=30)
        assert not errors, f"{len(errors)} input records not acknowledged: {errors[:3]}"

        with GroupProgress(settings.kafka, settings.scorer.group_id, topics.inputs) as progress:
            wait_for(lambda: progress() == n, "the scorer to commit every record",
                     timeout_s=420, interval_s=0.5)
        wait_for(lambda: monitor.metric_sum("sentimon_monitor_records_total") == n,
                 "the monitor to count every record", timeout_s=120)
        figures = monitor.metrics()
        # Neither daemon was restarted by hand: the same processes reconnected.
        assert scorer.alive() and monitor.alive() and scorer.lives == monitor.lives == 1
        assert scorer.terminate() == 0, scorer.tail()
        assert monitor.terminate() == 0, monitor.tail()
        out = read_topic(settings.kafka, topics.scored, timeout_s=120)
    finally:
        stop_all([scorer, monitor])
        cluster.stop()

    ids = Counter(json.loads(r.value)["id"] for r in out)
    duplicates = sum(ids.values()) - len(ids)
    print(f"\nbroker restart: {n} messages, broker down {down_s:.1f}s after {done_at_stop} "
          f"committed; {len(ids)} unique scored, {duplicates} duplicates")
    assert done_at_stop < n, "the broker restart came after the stream had been scored"
    assert set(ids) == {m["id"] for m in msgs}
    volume = sum(v for (name, _), v in figures.items() if name == "sentimon_market_volume")
    assert volume == n
    assert figures[("sentimon_monitor_duplicates_total", frozenset())] == duplicates
