"""Backtest streams: real baselines at a chosen volume, with real negative bursts injected.

The committed scenario pools (``scenarios/``, made by ``scripts/make_scenarios.py``) hold
every StockNet tweet (MIT) with its time, tickers and the released model's topic and
sentiment logits, and every Bearish text of Twitter Financial News Sentiment (MIT) with the
same. From them:

- :func:`fold` lays the tweets of several source days over one scenario day, keeping each
  tweet's time of day, until the stream runs at the asked rate (the real daily rhythm and
  real topic mix stay; ~96,800 tweets make 4 days at 17 messages a minute);
- :func:`inject` adds bursts of Bearish texts that the model puts in one topic, sized to
  multiply that topic's negative share by a factor (``multiple``) or as a number of texts
  (``extra``), and returns the truth: where each burst starts and ends.

Everything is seeded: the same arguments give the same stream.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from sentimon.monitor.records import ScoredRecord, text_key

#: The scenario pools shipped with the repository.
SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"
#: Scenario streams start on this (arbitrary, fixed) Monday, 00:00 UTC.
EPOCH = 1_767_571_200.0  # 2026-01-05T00:00:00Z
DAY = 86_400.0


@dataclass(frozen=True)
class Burst:
    """One injected burst: the truth a backtest is scored against."""

    topic: str
    start: float
    end: float
    texts: int  # records injected
    negatives: int  # of them, labelled negative by the model
    #: Distinct texts among them (fewer than ``texts`` when the pool is smaller than the burst:
    #: the rest are copies, which ``monitor.repeat_window_s`` counts once); 0 when unknown.
    distinct: int = 0

    def as_json(self) -> dict[str, object]:
        return {"topic": self.topic, "start": iso(self.start), "end": iso(self.end),
                "texts": self.texts, "negatives": self.negatives, "distinct": self.distinct}


def iso(ts: float) -> str:
    return pd.Timestamp(ts, unit="s", tz="UTC").isoformat().replace("+00:00", "Z")


def parse_iso(value: str) -> float:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"time {value!r} has no UTC offset")
    return float(stamp.timestamp())


def sentiment_temperature(pool_dir: Path = SCENARIO_DIR) -> float:
    """The released model's sentiment temperature for the variant that scored the pools."""
    try:
        from sentimon.model.calibration import temperatures_for
        from sentimon.model.inference import RELEASE_DIR
    except ImportError:  # an older model package without calibration
        return 1.0
    variant = json.loads((pool_dir / "scored_by.json").read_text()).get("variant", "int8")
    return float(temperatures_for(RELEASE_DIR, variant).get("sentiment", 1.0))


def _scored(frame: pd.DataFrame, *, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(P(negative), P(positive) - P(negative)) per row from the pool's raw logits."""
    from sentimon.model.calibration import softmax  # numpy only; the release's own rule

    logits = frame[["logit_negative", "logit_neutral", "logit_positive"]].to_numpy(float)
    p = softmax(logits, temperature)
    return p[:, 0], p[:, 2] - p[:, 0]


def _records(frame: pd.DataFrame, ts: np.ndarray, ids: Sequence[str], kind: str,
             tickers: Sequence[tuple[str, ...]], temperature: float) -> list[ScoredRecord]:
    p_neg, score = _scored(frame, temperature=temperature)
    labels = np.array(["negative", "neutral", "positive"])[
        frame[["logit_negative", "logit_neutral", "logit_positive"]].to_numpy().argmax(axis=1)]
    # The text's identity, for the evidence's repeats: a pool without texts carries it.
    if "text_key" in frame:
        keys = frame.text_key.astype(str).tolist()
    elif "text" in frame:
        keys = [text_key(str(t)) for t in frame.text]
    else:
        keys = [""] * len(frame)
    return [
        ScoredRecord(id=i, ts=float(t), kind=kind, topic=topic, sentiment=str(label),
                     score=float(s), tickers=tk, p_negative=float(p), text_key=key)
        for i, t, topic, label, s, tk, p, key in zip(ids, ts, frame.topic, labels, score,
                                                      tickers, p_neg, keys, strict=True)
    ]


def load_pool(name: str, pool_dir: Path = SCENARIO_DIR) -> pd.DataFrame:
    """``stocknet`` (the baseline pool) or ``bearish`` (the burst pool)."""
    path = pool_dir / f"{name}_scored.csv.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run scripts/make_scenarios.py")
    return pd.read_csv(path, dtype={"tweet_id": str, "tickers": str}, keep_default_na=False)


def fold(pool: pd.DataFrame, *, rate_per_min: float, temperature: float = 1.0,
         start: float = EPOCH) -> list[ScoredRecord]:
    """The tweets laid onto whole scenario days at about ``rate_per_min``, in time order."""
    src = (pd.to_datetime(pool.ts, utc=True)
           - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    day0 = math.floor(src.min() / DAY)
    src_day = np.floor(src / DAY) - day0
    n_source_days = int(src_day.max()) + 1
    n_days = max(1, round(len(pool) / (rate_per_min * 1440)))
    per_day = n_source_days / n_days  # source days folded onto one scenario day
    ts = start + np.floor(src_day / per_day) * DAY + (src % DAY)
    order = np.argsort(ts, kind="stable")
    frame = pool.iloc[order].reset_index(drop=True)
    tickers = [tuple(t for t in s.split(";") if t) for s in frame.tickers]
    return _records(frame, ts[order], [f"sn-{i}" for i in frame.tweet_id], "comment",
                    tickers, temperature)


def null_twin(records: Sequence[ScoredRecord], *, seed: int = 7) -> list[ScoredRecord]:
    """``records`` with their contents permuted among records at the same hour of day.

    Every record keeps its time and id; everything else (topic, sentiment, tickers, ...) comes
    from a random record of the same hour of day (any day). The twin has the stream's topic mix and
    daily rhythm but no real events, clusters or drifts between days: what the detector's
    false-alert budget assumes. Alerts on the real stream beyond the twin's are real events.
    """
    rng = np.random.default_rng(seed)
    by_hour: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        by_hour.setdefault(int(r.ts % DAY // 3600), []).append(i)
    out = list(records)
    for idx in by_hour.values():
        for i, j in zip(idx, rng.permutation(idx).tolist(), strict=True):
            out[i] = replace(records[j], id=records[i].id, ts=records[i].ts)
    return out


def topic_profile(records: Sequence[ScoredRecord], topic: str) -> tuple[np.ndarray, float]:
    """(records per hour by hour of day, negative share by label) of ``topic`` in a stream."""
    ts = np.array([r.ts for r in records if r.topic == topic])
    if len(ts) == 0:
        raise ValueError(f"no records of topic {topic!r} in the stream")
    days = (max(r.ts for r in records) - min(r.ts for r in records)) / DAY
    per_hour = np.bincount(((ts % DAY) // 3600).astype(int), minlength=24) / max(days, 1e-9)
    neg = sum(1 for r in records if r.topic == topic and r.sentiment == "negative")
    return per_hour, neg / len(ts)


def negative_share(texts: pd.DataFrame) -> float:
    """The share of burst texts (scored pool rows) that the model labels negative."""
    labels = texts[["logit_negative", "logit_neutral", "logit_positive"]].to_numpy().argmax(1)
    return float((labels == 0).mean())


def texts_for_multiple(n0: float, p0: float, q: float, multiple: float) -> float:
    """Texts that multiply the negative share ``p0`` of ``n0`` records by ``multiple``, when a
    share ``q`` of the added texts are negative: ``n0 p0 (m - 1) / (q - m p0)``."""
    return n0 * p0 * (multiple - 1) / (q - multiple * p0)


def inject(records: Sequence[ScoredRecord], burst_pool: pd.DataFrame, *, topic: str,
           multiple: float | None = None, extra: int | None = None, duration_s: float = 600.0,
           every_s: float = 3 * 3600.0, warmup_s: float = DAY, temperature: float = 1.0,
           seed: int = 7) -> tuple[list[ScoredRecord], list[Burst]]:
    """``records`` plus bursts in ``topic``, one every ``every_s`` after ``warmup_s``.

    ``multiple`` sizes each burst so that the topic's negative share over the burst is that
    many times its usual share at that hour (``k = n0 p0 (m - 1) / (q - m p0)``, with ``n0``
    the topic's usual records in the burst window, ``p0`` its negative share and ``q`` the
    share of the burst texts that the model calls negative); ``extra`` injects that many
    texts. The texts are Bearish texts that the model puts in ``topic``.
    """
    if (multiple is None) == (extra is None):
        raise ValueError("give exactly one of multiple and extra")
    texts = burst_pool[burst_pool.topic == topic].reset_index(drop=True)
    if texts.empty:
        raise ValueError(f"the burst pool has no text that the model puts in {topic!r}")
    labels = texts[["logit_negative", "logit_neutral", "logit_positive"]].to_numpy().argmax(1)
    q = negative_share(texts)
    per_hour, p0 = topic_profile(records, topic)
    if multiple is not None and q <= multiple * p0:
        raise ValueError(
            f"cannot multiply {topic!r}'s negative share {p0:.2f} by {multiple}: only "
            f"{q:.0%} of its burst texts are negative")
    rng = np.random.default_rng(seed)
    first, last = min(r.ts for r in records), max(r.ts for r in records)
    out = list(records)
    bursts: list[Burst] = []
    start = first + warmup_s
    n = 0
    while start + duration_s <= last:
        if multiple is not None:
            hours = ((start + np.arange(0, duration_s, 60.0)) % DAY // 3600).astype(int)
            n0 = float(per_hour[hours].sum() / 60.0)
            k = max(1, round(texts_for_multiple(n0, p0, q, multiple)))
        else:
            k = int(extra or 0)
        pick = rng.choice(len(texts), size=k, replace=k > len(texts))
        frame = texts.iloc[pick].reset_index(drop=True)
        ts = np.sort(start + rng.uniform(0, duration_s, size=k))
        ids = [f"burst-{n}-{j}-{frame.id[j]}" for j in range(k)]
        out.extend(_records(frame, ts, ids, "news", [()] * k, temperature))
        bursts.append(Burst(topic=topic, start=start, end=start + duration_s, texts=k,
                            negatives=int((labels[pick] == 0).sum()),
                            distinct=len({text_key(str(t)) for t in frame.text})
                            if "text" in frame else 0))
        start += every_s
        n += 1
    out.sort(key=lambda r: r.ts)
    return out, bursts
