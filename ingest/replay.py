"""Stream a data set into Kafka as sentimon input messages, paced like the real thing.

Reads CSV (any file with a text column: the StockNet tweets, the news headlines, the
committed demo slice) or JSONL (one input message per line). Pacing is either a speed-up of
the file's own timestamps or a fixed rate. ``retime`` rewrites event times so that the
replayed stream happens *now*, which is what a live monitor and its alerts expect.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

# Column names seen in the supported data sets, in order of preference.
TEXT_COLUMNS = ("text", "Headlines", "headline", "title")
TS_COLUMNS = ("ts", "Time", "timestamp", "created_at")
ID_COLUMNS = ("id", "tweet_id")


class ReplayError(ValueError):
    """The input file cannot be replayed; the message says why."""


@dataclass
class ReplayItem:
    """One message to send: its original event time (if any) and the JSON object."""

    ts: datetime | None
    value: dict[str, Any] = field(default_factory=dict)


def _pick(columns: Sequence[str], names: Sequence[str]) -> str | None:
    return next((c for c in names if c in columns), None)


def load_items(path: Path, *, kind: str, lang: str | None = None, limit: int | None = None) -> list[ReplayItem]:
    """Read ``path`` into replay items sorted by time; rows without text are reported, not sent."""
    if not path.exists():
        raise ReplayError(f"{path}: no such file")
    if path.suffix in (".jsonl", ".ndjson"):
        items = list(_from_jsonl(path, kind=kind))
    elif path.suffix == ".csv":
        items = list(_from_csv(path, kind=kind, lang=lang))
    else:
        raise ReplayError(f"{path}: unsupported format (use .csv or .jsonl)")
    if any(i.ts is not None for i in items):
        far_future = datetime.max.replace(tzinfo=UTC)
        items.sort(key=lambda i: i.ts or far_future)
    return items[:limit] if limit else items


def _from_jsonl(path: Path, *, kind: str) -> Iterator[ReplayItem]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReplayError(f"{path}:{n}: not JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise ReplayError(f"{path}:{n}: each line must be a JSON object")
            obj.setdefault("kind", kind)
            yield ReplayItem(ts=_parse_ts(obj.get("ts")), value=obj)


def _from_csv(path: Path, *, kind: str, lang: str | None) -> Iterator[ReplayItem]:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    text_col = _pick(df.columns, TEXT_COLUMNS)
    if text_col is None:
        raise ReplayError(f"{path}: no text column (looked for {', '.join(TEXT_COLUMNS)})")
    ts_col = _pick(df.columns, TS_COLUMNS)
    id_col = _pick(df.columns, ID_COLUMNS)
    if lang and "lang" in df.columns:
        df = df[df["lang"] == lang]
    stem = path.stem
    for row_no, row in enumerate(df.to_dict("records")):
        value: dict[str, Any] = {"kind": kind, "source": row.get("source") or stem}
        value["id"] = f"{stem}:{row[id_col]}" if id_col and row[id_col] else f"{stem}:{row_no}"
        text = row[text_col].strip()
        if kind == "news" and row.get("description", "").strip():
            value["title"], value["body"] = text, row["description"].strip()
        else:
            value["text"] = text  # empty text is sent as is: the scorer dead-letters it
        if row.get("tickers"):
            value["tickers"] = [t for t in row["tickers"].split(";") if t]
        if row.get("lang"):
            value["lang"] = row["lang"]
        ts = _parse_ts(row[ts_col]) if ts_col else None
        yield ReplayItem(ts=ts, value=value)


def _parse_ts(raw: object) -> datetime | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, int | float):
        return datetime.fromtimestamp(float(raw) / 1000, UTC)
    try:
        ts = pd.Timestamp(str(raw))
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.to_pydatetime()


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Schedule:
    """When to send each item, in seconds from the start of the replay.

    ``speedup`` paces by the items' own timestamps (items without one fall back to ``rate``);
    ``rate`` sends a fixed number per second; neither means as fast as possible.
    """

    speedup: float | None = None
    rate: float | None = None

    def offsets(self, items: Sequence[ReplayItem]) -> list[float]:
        stamped = [i.ts for i in items if i.ts is not None]
        if self.speedup and len(stamped) == len(items) and items:
            first = stamped[0]
            return [((i.ts - first).total_seconds()) / self.speedup for i in items]  # type: ignore[operator]
        if self.rate:
            return [n / self.rate for n in range(len(items))]
        return [0.0] * len(items)


def retimed(item: ReplayItem, *, at: datetime) -> dict[str, Any]:
    """The message with its event time moved to ``at`` (the original kept as ``orig_ts``)."""
    value = dict(item.value)
    if item.ts is not None:
        value["orig_ts"] = rfc3339(item.ts)
    value["ts"] = rfc3339(at)
    return value


def burst_items(
    pool: Path, *, topic: str, count: int, model: Any, seed: int = 0, kind: str = "news"
) -> list[ReplayItem]:
    """A negative burst about ``topic``: real Bearish-labelled texts the model puts in ``topic``.

    The texts carry a human Bearish label; the model only decides which are about ``topic``.
    With fewer such texts than ``count`` they repeat, as retweets do, each with its own id.
    """
    items = load_items(pool, kind=kind)
    texts = [str(i.value.get("text", "")) for i in items]
    preds = model.predict(texts)
    on_topic = [i for i, p in zip(items, preds, strict=True) if p.topic == topic]
    if not on_topic:
        raise ReplayError(f"no negative text in {pool} is about {topic!r} according to the model")
    rng = random.Random(seed)
    chosen = [on_topic[n % len(on_topic)] for n in range(count)]
    rng.shuffle(chosen)
    out = []
    for n, item in enumerate(chosen):
        value = dict(item.value, id=f"burst:{topic}:{seed}:{n}", source="sentimon-inject")
        out.append(ReplayItem(ts=None, value=value))
    return out


def merge_burst(
    items: Sequence[ReplayItem], offsets: Sequence[float], burst: Sequence[ReplayItem],
    *, after_s: float, rate: float,
) -> tuple[list[ReplayItem], list[float]]:
    """Interleave ``burst`` into the stream from ``after_s`` on, ``rate`` messages a second."""
    burst_offsets = [after_s + n / rate for n in range(len(burst))]
    merged = sorted(zip([*offsets, *burst_offsets], [*items, *burst], strict=True),
                    key=lambda pair: pair[0])
    return [m[1] for m in merged], [m[0] for m in merged]


def send(
    producer: Any,
    topic: str,
    items: Sequence[ReplayItem],
    offsets: Sequence[float],
    *,
    retime: bool,
    progress: bool = True,
    stop: Any = None,
    desc: str | None = None,
) -> int:
    """Produce ``items`` to ``topic``, item n at ``offsets[n]`` seconds; return the acknowledged count."""
    from tqdm import tqdm

    start = time.monotonic()
    wall0 = datetime.now(UTC)
    futures = []
    bar = tqdm(total=len(items), desc=desc or topic, unit="msg", disable=not progress,
               dynamic_ncols=True)
    for item, offset in zip(items, offsets, strict=True):
        if stop is not None and stop:
            break
        delay = offset - (time.monotonic() - start)
        if delay > 0:
            time.sleep(delay)
        value = retimed(item, at=wall0 + timedelta(seconds=offset)) if retime else dict(item.value)
        if "ts" not in value and item.ts is not None:
            value["ts"] = rfc3339(item.ts)
        key = str(value.get("id", "")).encode() or None
        futures.append(producer.send(topic, key=key, value=json.dumps(value, ensure_ascii=False).encode()))
        bar.update(1)
    producer.flush()
    bar.close()
    acked = 0
    for fut in futures:
        try:
            fut.get(timeout=30)
            acked += 1
        except Exception as exc:  # counted and reported: a replay must not hide lost sends
            log.error("send failed", extra={"topic": topic, "error": repr(exc)})
    if acked != len(futures):
        log.error("not every message was acknowledged", extra={"sent": len(futures), "acked": acked})
    return acked
