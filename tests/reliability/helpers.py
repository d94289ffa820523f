"""Real data, Kafka reads and writes, and daemons as child processes for the reliability tests.

Sizes are chosen to fit CI (2 cores, about 8 minutes for the whole reliability set);
``SENTIMON_RELIABILITY_SCALE`` multiplies the message counts for a longer soak by hand.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
from kafka.errors import KafkaError
from kafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from sentimon.config import KafkaSettings, Settings, to_env
from sentimon.kafka import make_admin, make_consumer, make_producer

REPO = Path(__file__).resolve().parents[2]
SEED = 20261125
"""Every random choice of the reliability tests (kill points, fuzz input) starts here."""


def scale() -> float:
    """``SENTIMON_RELIABILITY_SCALE`` (default 1): multiplies message counts for a soak."""
    return float(os.environ.get("SENTIMON_RELIABILITY_SCALE", "1"))


def scaled(n: int) -> int:
    return max(1, round(n * scale()))


def model_ready() -> bool:
    """True once the model release (``model/release``) holds a tokenizer and an ONNX file."""
    from sentimon.model.inference import RELEASE_DIR

    return (RELEASE_DIR / "tokenizer.json").exists() and any(RELEASE_DIR.glob("model.*.onnx"))


needs_model = pytest.mark.skipif(not model_ready(), reason="model release not built yet "
                                 "(no model/release/model.*.onnx)")


# -- real texts ------------------------------------------------------------------------


def tweet_texts(data_dir: Path) -> list[tuple[str, str, list[str]]]:
    """(ts, text, tickers) of every English StockNet tweet, in file order."""
    out = []
    with open(data_dir / "stocknet_tweets" / "stocknet_tweets.csv", newline="",
              encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["lang"] == "en" and row["text"].strip():
                out.append((row["ts"], row["text"], row["tickers"].split(";")))
    return out


def messages(data_dir: Path, n: int, *, prefix: str, now_ts: bool = False) -> list[dict[str, Any]]:
    """``n`` input messages from real tweets, ids ``<prefix>-<i>`` unique per message.

    Past the end of the file the texts repeat (ids stay unique). With ``now_ts`` the event
    times are spread over the last ten minutes, as a live stream (for the monitor's windows).
    """
    rows = tweet_texts(data_dir)
    now = time.time()
    out = []
    for i in range(n):
        ts, text, tickers = rows[i % len(rows)]
        if now_ts:
            ts = datetime.fromtimestamp(now - 600 + 600 * i / n, tz=UTC).isoformat()
        out.append({"id": f"{prefix}-{i:07d}", "ts": ts, "source": "stocknet",
                    "tickers": tickers, "text": text})
    return out


def encode_all(msgs: Iterable[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(m, ensure_ascii=False).encode("utf-8") for m in msgs]


# -- Kafka -------------------------------------------------------------------------------


def produce(kafka: KafkaSettings, topic: str, values: Sequence[bytes | None], *,
            keys: Sequence[bytes | None] | None = None, **producer_opts: Any) -> None:
    """Send ``values`` and wait until the broker acknowledged every one (acks=all)."""
    producer = make_producer(kafka, client_suffix="reliability", **producer_opts)
    try:
        futures = [producer.send(topic, key=keys[i] if keys else None, value=v)
                   for i, v in enumerate(values)]
        producer.flush(timeout=120)
        for fut in futures:
            fut.get(timeout=120)
    finally:
        producer.close(timeout=10)


def read_topic(kafka: KafkaSettings, topic: str, *, timeout_s: float = 60.0,
               **consumer_opts: Any) -> list[Any]:
    """Every record now in ``topic``, all partitions, from the start to the end offsets."""
    consumer = make_consumer(kafka, group_id=None, client_suffix="reliability-reader",
                             **consumer_opts)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end in {timeout_s:.0f}s")
            for recs in consumer.poll(timeout_ms=500).values():
                out.extend(recs)
        return out
    finally:
        consumer.close()


class GroupProgress:
    """Committed offsets of one consumer group, summed over ``topics`` (one admin client)."""

    def __init__(self, kafka: KafkaSettings, group: str, topics: Iterable[str]) -> None:
        self.group = group
        self.topics = set(topics)
        self.admin = make_admin(kafka, request_timeout_ms=10_000)

    def __call__(self) -> int:
        found = self.admin.list_group_offsets({self.group: None}).get(self.group, {})
        return sum(o.offset for tp, o in found.items() if tp.topic in self.topics and o.offset > 0)

    def close(self) -> None:
        self.admin.close()

    def __enter__(self) -> GroupProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EndOffsets:
    """Records ever written to ``topics`` (sum of end offsets), read with one consumer."""

    def __init__(self, kafka: KafkaSettings, topics: Iterable[str]) -> None:
        self.consumer = make_consumer(kafka, group_id=None, client_suffix="reliability-ends")
        self.tps = [TopicPartition(t, p) for t in topics
                    for p in sorted(self.consumer.partitions_for_topic(t) or ())]

    def __call__(self) -> int:
        return int(sum(self.consumer.end_offsets(self.tps).values()))

    def close(self) -> None:
        self.consumer.close()


def wait_for(check: Callable[[], bool], what: str, *, timeout_s: float,
             interval_s: float = 0.25) -> None:
    """Poll ``check`` (errors count as "not yet") until true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError, KafkaError) as exc:
            last = exc
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}"
                         + (f" (last error: {last!r})" if last else ""))


# -- daemons as child processes ----------------------------------------------------------


class Daemon:
    """``python -m sentimon <command>`` with ``settings`` passed as SENTIMON_* variables.

    Like :class:`sentimon.demo.Pipeline`, but one command, several lives (restarts append to
    the same log) and exit codes kept, which crash tests need.
    """

    def __init__(self, settings: Settings, command: list[str], log: Path, *,
                 port: int | None = None, host: str = "127.0.0.1") -> None:
        self.settings = settings
        self.command = command
        self.log = log
        self.port = port
        self.host = host
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMON_")}
        self.env.update(to_env(settings))
        self.env["PYTHONUNBUFFERED"] = "1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.lives = 0

    def start(self) -> Daemon:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"--- start {self.lives + 1}: sentimon {' '.join(self.command)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sentimon", *self.command], cwd=REPO, env=self.env,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.lives += 1
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def ready(self) -> bool:
        if not self.alive():
            raise AssertionError(f"sentimon {self.command[0]} exited ({self.proc and self.proc.poll()})"
                                 f"; log {self.log}:\n{self.tail()}")
        try:
            with urllib.request.urlopen(self.url("/readyz"), timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float = 120.0) -> Daemon:
        wait_for(self.ready, f"sentimon {self.command[0]} to be ready", timeout_s=timeout_s)
        return self

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as resp:
            text = resp.read().decode()
        return {(s.name, frozenset(s.labels.items())): float(s.value)
                for fam in text_string_to_metric_families(text) for s in fam.samples}

    def metric_sum(self, name: str) -> float:
        return sum(v for (n, _), v in self.metrics().items() if n == name)

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or committed."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait; the exit code (SIGKILL after ``timeout_s``)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
                raise AssertionError(f"sentimon {self.command[0]} ignored SIGTERM; log:\n"
                                     + self.tail()) from None
        return int(self.proc.returncode)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def listening(self) -> list[tuple[str, int]]:
        """(address, port) of every TCP socket this process listens on."""
        conns = psutil.Process(self.pid).net_connections(kind="inet")
        return sorted((c.laddr.ip, c.laddr.port) for c in conns
                      if c.status == psutil.CONN_LISTEN)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines (``log_json``) of every life."""
        out = []
        for line in self.text().splitlines():
            if line.startswith("{") and line.endswith("}"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out


def stop_all(daemons: Iterable[Daemon]) -> None:
    """Best-effort cleanup for ``finally`` blocks: kill what still runs."""
    for d in daemons:
        if d.alive():
            d.kill()
