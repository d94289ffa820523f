"""``sentimon report``: a PNG of rolling sentiment per topic, read from Prometheus.

For people without Grafana: two panels sharing the time axis, the short-window negative
share and the short-window mean score of every topic. Topics with a
``NegativeSentimentSpike`` in Prometheus's ``ALERTS`` series (pending or firing) stand out in
their own colours with their alert windows shaded and the start labelled; the other topics
are grey context. Data come from the HTTP API (``/api/v1/query_range``); :func:`fetch` reads
them and :func:`draw` draws them, so a recorded :class:`ReportData` can be drawn again.
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
VOLUME_QUERY = 'sentimon_topic_volume{window="short"}'
PENDING_ALPHA, FIRING_ALPHA = 0.3, 0.9
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


def parse_duration(text: str, *, allow_zero: bool = False) -> float:
    """``90s``, ``15m``, ``1h``, ``2d``, ``1w`` or plain seconds -> seconds.

    ``allow_zero`` admits ``0s`` (a rule's ``for:`` may be zero).
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match or (float(match.group(1)) == 0 and not allow_zero):
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


@dataclass
class ReportData:
    """What a report draws: per-topic series and the spike alerts, as read from Prometheus.

    Series are ``{topic: [(unix time, value), ...]}``; ``alerts`` is ``{topic: [(unix time,
    state), ...]}`` with state ``pending`` or ``firing`` (samples of ``ALERTS``).
    """

    start: float
    end: float
    step: float
    negative: dict[str, list[tuple[float, float]]]
    mean: dict[str, list[tuple[float, float]]]
    volume: dict[str, list[tuple[float, float]]]
    alerts: dict[str, list[tuple[float, str]]]


def fetch(prometheus_url: str, *, since_s: float, end: float | None = None) -> ReportData:
    """Read the topic series and spike alerts of the last ``since_s`` seconds."""
    end = time.time() if end is None else end
    start = end - since_s
    step = max(1.0, round(since_s / TARGET_POINTS))

    def rng(query: str) -> list[dict[str, Any]]:
        return query_range(prometheus_url, query, start=start, end=end, step=step)

    alerts: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for s in rng(ALERT_QUERY):
        labels = s.get("metric", {})
        if labels.get("topic") is None:
            continue
        for ts, _ in s.get("values", []):
            alerts[labels["topic"]].append((float(ts), str(labels.get("alertstate", "firing"))))
    return ReportData(
        start=start, end=end, step=step, negative=_by_topic(rng(NEGATIVE_QUERY)),
        mean=_by_topic(rng(MEAN_QUERY)), volume=_by_topic(rng(VOLUME_QUERY)),
        alerts={t: sorted(v) for t, v in alerts.items()},
    )


def alert_spans(points: list[tuple[float, str]], *, step: float) -> list[tuple[float, float, str]]:
    """Contiguous runs of one alert state: ``(first, last, state)``; a gap over 2 steps splits."""
    spans: list[tuple[float, float, str]] = []
    for ts, state in points:
        if spans and spans[-1][2] == state and ts - spans[-1][1] <= 2 * step:
            spans[-1] = (spans[-1][0], ts, state)
        else:
            spans.append((ts, ts, state))
    return spans


def time_format(span_s: float) -> str:
    """strftime pattern for the time axis: whole labels, never a lone "30"."""
    if span_s <= 15 * 60:
        return "%H:%M:%S"
    if span_s <= 2 * 86400:
        return "%H:%M"
    return "%m-%d %H:%M"


def render_report(*, prometheus_url: str, since_s: float, out: Path,
                  topics: list[str] | None = None, end: float | None = None,
                  highlight: list[str] | None = None, min_volume: int | None = None
                  ) -> ReportResult:
    """Query Prometheus and write the PNG; raise :class:`ReportError` when there is no data.

    ``min_volume`` defaults to the configured ``monitor.min_volume`` (the detector's own).
    """
    if min_volume is None:
        from sentimon.config import load_settings

        min_volume = load_settings().monitor.min_volume
    data = fetch(prometheus_url, since_s=since_s, end=end)
    return draw(data, out=out, topics=topics, highlight=highlight, min_volume=min_volume,
                source=prometheus_url)


def draw(data: ReportData, *, out: Path, topics: list[str] | None = None,
         highlight: list[str] | None = None, min_volume: int = 30,
         source: str = "Prometheus") -> ReportResult:
    """Write the PNG of ``data``.

    Topics that alerted in the range (and those in ``highlight``) are drawn in their own
    colours and named; every other topic is a thin grey line. Alert windows are bands in the
    topic's colour along the bottom, one row per topic (light while pending, solid while
    firing), the start of each alert is marked and labelled, and stretches where a topic's short window held fewer than
    ``min_volume`` records (too few for the detector) are drawn faint and dotted (left out
    for the grey topics).
    """
    neg, mean, volume = data.negative, data.mean, data.volume
    wanted = sorted(set(neg) | set(mean))
    skipped: list[str] = []
    if topics:
        skipped = [t for t in topics if t not in wanted]
        wanted = [t for t in wanted if t in set(topics)]
    if not wanted:
        which = f" for topics {', '.join(topics)}" if topics else ""
        raise ReportError(
            f"Prometheus at {source} has no sentimon_topic_* data{which} in the last "
            f"{data.end - data.start:g}s: is `sentimon monitor` running, receiving records and "
            "scraped?")

    import matplotlib

    matplotlib.use("Agg")  # no display needed, and none is there on a server
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import PercentFormatter

    def when(ts: float) -> datetime:
        return datetime.fromtimestamp(ts, tz=UTC)

    # Named topics first (they get the first colour), then the others that alerted.
    focus = [t for t in highlight or [] if t in wanted]
    focus += [t for t in wanted if t in data.alerts and t not in focus]
    palette = plt.get_cmap("tab10")
    colors = {t: palette(i % 10) for i, t in enumerate(focus)}
    fig, (ax_neg, ax_mean) = plt.subplots(2, 1, sharex=True, figsize=(12, 7.5),
                                          constrained_layout=True)
    series = 0
    for topic in wanted:  # grey context first, so the highlighted lines lie on top
        color = colors.get(topic)
        for ax, series_data in ((ax_neg, neg), (ax_mean, mean)):
            points = series_data.get(topic)
            if not points:
                continue
            series += 1
            xs = [when(t) for t, _ in points]
            ys = [v for _, v in points]
            thin = _thin_mask(points, volume.get(topic, []), min_volume=min_volume)
            if color is None:
                # Thin stretches swing between extremes on a handful of records: hide them.
                ax.plot(xs, [math.nan if t else v for v, t in zip(ys, thin, strict=True)],
                        color="#b8b8b8", linewidth=0.8, zorder=1)
                continue
            solid = [v if not t else math.nan for v, t in zip(ys, thin, strict=True)]
            faint = [v if t or (i + 1 < len(thin) and thin[i + 1]) or (i and thin[i - 1])
                     else math.nan for i, (v, t) in enumerate(zip(ys, thin, strict=True))]
            ax.plot(xs, faint, color=color, linewidth=1.2, linestyle=":", alpha=0.55, zorder=2)
            ax.plot(xs, solid, color=color, linewidth=2.2, zorder=3)

    # The axis starts where the data do: a 3 h report of 5 minutes of data shows 5 minutes.
    firsts = [pts[0][0] for d in (neg, mean) for t, pts in d.items() if t in wanted and pts]
    x_lo = max(data.start, min(firsts, default=data.start) - data.step)
    alert_points = 0
    starts: list[tuple[float, str]] = []
    for topic in focus:
        color = colors[topic]
        states = data.alerts.get(topic, [])
        alert_points += len(states)
        row = len(starts)
        for first, last, state in alert_spans(states, step=data.step):
            # A band of the topic's own colour along the bottom (one row per alerting topic,
            # so overlapping alerts stay apart), and a faint wash over both panels.
            ax_neg.axvspan(when(first), when(last + data.step), ymin=0.012 + 0.04 * row,
                           ymax=0.042 + 0.04 * row, color=color, linewidth=0, zorder=4,
                           alpha=PENDING_ALPHA if state == "pending" else FIRING_ALPHA)
            for ax in (ax_neg, ax_mean):
                ax.axvspan(when(first), when(last + data.step), color=color, alpha=0.05,
                           linewidth=0, zorder=0)
        if states:
            starts.append((states[0][0], topic))
    # Labels in a column of their own near the top, one row per alert in time order, each tied
    # to its marker by a thin line: alerts a few seconds apart do not print over each other.
    for row, (t0, topic) in enumerate(sorted(starts)):
        color = colors[topic]
        y = dict(neg.get(topic, [])).get(t0, 0.5)
        for ax in (ax_neg, ax_mean):
            ax.axvline(when(t0), color=color, linewidth=1.0, linestyle="--", zorder=2)
        ax_neg.scatter([when(t0)], [y], marker="v", s=90, color=color, edgecolors="black",
                       linewidths=0.6, zorder=5)
        right_half = t0 > (x_lo + data.end) / 2  # keep the label inside the axes
        ax_neg.annotate(
            f"{topic}: spike from {when(t0):%H:%M:%S}", (when(t0), y),
            xytext=(when(t0 - 0.02 * (data.end - x_lo) if right_half
                         else t0 + 0.02 * (data.end - x_lo)), 0.93 - 0.085 * row),
            textcoords=("data", "axes fraction"), ha="right" if right_half else "left",
            va="center", fontsize=9, fontweight="bold", zorder=6,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": color, "alpha": 0.92},
            arrowprops={"arrowstyle": "-", "color": color, "linewidth": 0.8})

    ax_neg.set_ylabel("negative share (short window)")
    ax_neg.set_ylim(0, 1.05)
    ax_neg.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax_mean.set_ylabel("mean score (short window)")
    ax_mean.set_ylim(-1.05, 1.05)
    ax_mean.axhline(0, color="grey", linewidth=0.6)
    ax_mean.xaxis.set_major_locator(mdates.AutoDateLocator(tz=UTC, minticks=6, maxticks=12))
    ax_mean.xaxis.set_major_formatter(mdates.DateFormatter(time_format(data.end - x_lo), tz=UTC))
    ax_mean.set_xlabel(f"time (UTC), {when(x_lo):%Y-%m-%d}")
    ax_mean.set_xlim(when(x_lo), when(data.end))
    for ax in (ax_neg, ax_mean):
        ax.grid(True, alpha=0.3)

    handles: list[Any] = [Line2D([], [], color=colors[t], linewidth=2.2, label=t) for t in focus]
    others = len(wanted) - len(focus)
    if others:
        handles.append(Line2D([], [], color="#b8b8b8", linewidth=1,
                              label=f"{others} other topic{'s' if others > 1 else ''}"))
    if focus:
        handles.append(Line2D([], [], color="black", linestyle=":", alpha=0.6,
                              label=f"fewer than {min_volume} records"))
    if data.alerts:
        handles.append(Patch(color="black", alpha=PENDING_ALPHA, label="alert pending"))
        handles.append(Patch(color="black", alpha=FIRING_ALPHA, label="alert firing"))
    # One row above the plot: it hides no data and leaves no gap at the side.
    ax_neg.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=9,
                  frameon=False, ncol=min(len(handles), 7), handlelength=1.6, columnspacing=1.2)
    alerted = [t for t in focus if t in data.alerts]
    fig.suptitle(
        f"sentimon: negative sentiment per topic, {when(x_lo):%H:%M}-{when(data.end):%H:%M}"
        " UTC" + (f"; spike alerts: {', '.join(alerted)}" if alerted else "; no spike alert"),
        x=0.01, ha="left", fontsize=12)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return ReportResult(path=out, topics=wanted, series=series, alert_points=alert_points,
                        bytes=out.stat().st_size, skipped_topics=skipped)


def _thin_mask(points: list[tuple[float, float]], volume: list[tuple[float, float]], *,
               min_volume: int) -> list[bool]:
    """For each point, whether the short window then held fewer than ``min_volume`` records."""
    counts = dict(volume)
    return [counts.get(ts, 0.0) < min_volume for ts, _ in points]
