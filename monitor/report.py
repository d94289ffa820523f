"""``sentimon report``: a PNG of rolling sentiment per topic, read from Prometheus.

For people without Grafana: two panels sharing the time axis, the short-window negative
share and the short-window mean score of every topic, with markers where Prometheus's
``ALERTS`` series shows a ``NegativeSentimentSpike`` for that topic (pending or firing).
Data come from the HTTP API (``/api/v1/query_range``).
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

NEGATIVE_QUERY = 'sentimon_topic_negative_share{window="short"}'
MEAN_QUERY = 'sentimon_topic_mean_score{window="short"}'
ALERT_QUERY = 'ALERTS{alertname="NegativeSentimentSpike"}'
#: Points per series asked of Prometheus (it refuses more than 11,000).
TARGET_POINTS = 400

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ReportError(RuntimeError):
    """Prometheus could not be read or had nothing to plot; the message says which."""


@dataclass
class ReportResult:
    """What was drawn: the file, the topics, and how many series and alert points."""

    path: Path
    topics: list[str]
    series: int
    alert_points: int
    bytes: int = 0
    skipped_topics: list[str] = field(default_factory=list)


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``1h``, ``2d``, ``1w`` or plain seconds -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"not a duration: {text!r} (examples: 90s, 15m, 1h, 2d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def query_range(url: str, query: str, *, start: float, end: float, step: float,
                timeout_s: float = 15.0) -> list[dict[str, Any]]:
    """``result`` of a range query (matrix), or :class:`ReportError` with the reason."""
    params = urllib.parse.urlencode(
        {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
    full = f"{url.rstrip('/')}/api/v1/query_range?{params}"
    try:
        with urllib.request.urlopen(full, timeout=timeout_s) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise ReportError(f"Prometheus at {url} answered HTTP {exc.code} to {query!r}: "
                          f"{detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReportError(f"Prometheus at {url} is unreachable ({reason}); start it with "
                          "`sentimon stack up` or pass --prometheus-url") from None
    except ValueError as exc:
        raise ReportError(f"Prometheus at {url} sent no JSON: {exc}") from None
    if body.get("status") != "success":
        raise ReportError(f"Prometheus at {url} refused {query!r}: {body.get('error')}")
    return list(body.get("data", {}).get("result", []))


def _by_topic(result: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Points per ``topic`` label; series of one topic from several instances are merged."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for series in result:
        topic = series.get("metric", {}).get("topic")
        if topic is None:
            continue
        for ts, value in series.get("values", []):
            v = float(value)
            if math.isfinite(v):
                out[topic].append((float(ts), v))
    return {t: sorted(points) for t, points in out.items()}


def render_report(*, prometheus_url: str, since_s: float, out: Path,
                  topics: list[str] | None = None, end: float | None = None) -> ReportResult:
    """Query Prometheus and write the PNG; raise :class:`ReportError` when there is no data."""
    end = time.time() if end is None else end
    start = end - since_s
    step = max(1.0, round(since_s / TARGET_POINTS))
    neg = _by_topic(query_range(prometheus_url, NEGATIVE_QUERY, start=start, end=end, step=step))
    mean = _by_topic(query_range(prometheus_url, MEAN_QUERY, start=start, end=end, step=step))
    alerts = query_range(prometheus_url, ALERT_QUERY, start=start, end=end, step=step)

    wanted = sorted(set(neg) | set(mean))
    skipped: list[str] = []
    if topics:
        skipped = [t for t in topics if t not in wanted]
        wanted = [t for t in wanted if t in set(topics)]
    if not wanted:
        which = f" for topics {', '.join(topics)}" if topics else ""
        raise ReportError(
            f"Prometheus at {prometheus_url} has no sentimon_topic_* data{which} in the last "
            f"{since_s:g}s: is `sentimon monitor` running, receiving records and scraped?")

    import matplotlib

    matplotlib.use("Agg")  # no display needed, and none is there on a server
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    def when(ts: float) -> datetime:
        return datetime.fromtimestamp(ts, tz=UTC)

    fig, (ax_neg, ax_mean) = plt.subplots(2, 1, sharex=True, figsize=(12, 7.5),
                                          constrained_layout=True)
    colors: dict[str, Any] = {}
    series = 0
    for i, topic in enumerate(wanted):
        # tab20 pairs a dark and a light shade of each hue: take the 10 dark ones first.
        color = plt.get_cmap("tab20")((2 * i) % 20 + (i // 10) % 2)
        colors[topic] = color
        for ax, data in ((ax_neg, neg), (ax_mean, mean)):
            points = data.get(topic)
            if points:
                ax.plot([when(t) for t, _ in points], [v for _, v in points], color=color,
                        linewidth=1.3, label=topic if ax is ax_neg else None)
                series += 1

    alert_points = 0
    for state, marker, size, edge in (("pending", "o", 36, "orange"),
                                      ("firing", "X", 80, "red")):
        xs, ys, cs = [], [], []
        for s in alerts:
            labels = s.get("metric", {})
            topic = labels.get("topic")
            if labels.get("alertstate") != state or topic not in colors:
                continue
            shares = dict(neg.get(topic, []))
            for ts, _ in s.get("values", []):
                xs.append(when(float(ts)))
                ys.append(shares.get(float(ts), 1.0))
                cs.append(colors[topic])
        if xs:
            ax_neg.scatter(xs, ys, marker=marker, s=size, c=cs, edgecolors=edge,
                           linewidths=1.2, zorder=3, label=f"spike alert ({state})")
            alert_points += len(xs)

    ax_neg.set_ylabel("negative share (short window)")
    ax_neg.set_ylim(0, 1.05)
    ax_mean.set_ylabel("mean score (short window)")
    ax_mean.set_ylim(-1.05, 1.05)
    ax_mean.axhline(0, color="grey", linewidth=0.6)
    locator = mdates.AutoDateLocator(tz=UTC)
    ax_mean.xaxis.set_major_locator(locator)
    ax_mean.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    ax_mean.set_xlabel("time (UTC)")
    for ax in (ax_neg, ax_mean):
        ax.grid(True, alpha=0.3)
    ax_neg.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax_neg.set_title(f"sentimon: rolling sentiment per topic, "
                     f"{when(start):%Y-%m-%d %H:%M:%S} to {when(end):%Y-%m-%d %H:%M:%S} UTC")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return ReportResult(path=out, topics=wanted, series=series, alert_points=alert_points,
                        bytes=out.stat().st_size, skipped_topics=skipped)
