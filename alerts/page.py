"""The page of recent alerts and the topic report PNGs that ``sentimon notify`` serves.

For people without Slack or Grafana: ``GET /`` lists the receiver's recent notifications,
newest first, each with its status, figures, tickers, exemplar texts, links and, for the
newest alert of each topic, the topic's report PNG (``GET /report.png?topic=T&since=3h``,
drawn from Prometheus by :func:`sentimon.monitor.report.render_report` and kept for a short
while so a page reload does not redraw it).
"""

from __future__ import annotations

import html
import logging
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sentimon.alerts.message import exemplar_meta, figures_line, report_url, subject

log = logging.getLogger(__name__)

#: Seconds a drawn PNG is served again instead of being redrawn.
REPORT_CACHE_S = 30.0
MAX_REPORT_SINCE_S = 7 * 86400.0

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:70rem;color:#1d2330;padding:0 1rem}
h1{font-size:1.4rem;margin:0 0 .2rem} .muted{color:#667}
article{border:1px solid #d8dbe2;border-left:6px solid #999;border-radius:6px;padding:.7rem 1rem;margin:1rem 0}
article.firing{border-left-color:#d62728} article.resolved{border-left-color:#2ca02c}
.badge{font-weight:700;font-size:.8rem;padding:.1rem .45rem;border-radius:4px;color:#fff;background:#999}
.firing .badge{background:#d62728} .resolved .badge{background:#2ca02c}
h2{font-size:1.1rem;display:inline;margin-left:.4rem} .figures{font-weight:600}
blockquote{margin:.4rem 0;padding:.2rem .8rem;border-left:3px solid #ccd;color:#333}
img{max-width:100%;border:1px solid #eee;margin-top:.5rem} a{color:#1f5fbf}
"""


def render_page(records: Sequence[Mapping[str, Any]], *, title: str = "sentimon alerts") -> str:
    """The HTML page for ``records`` (given newest first)."""
    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta http-equiv='refresh' content='30'>",
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p class='muted'>{len(records)} most recent notifications, newest first; "
        "this page reloads every 30 s.</p>",
    ]
    if not records:
        parts.append("<p>No alert received yet.</p>")
    pictured: set[str] = set()
    for r in records:
        status = str(r.get("status", "unknown"))
        labels: Mapping[str, Any] = r.get("labels") or {}
        annotations: Mapping[str, Any] = r.get("annotations") or {}
        parts.append(f"<article class='{esc(status)}'>")
        parts.append(f"<span class='badge'>{esc(status.upper())}</span><h2>{esc(subject(r))}</h2>")
        when = f"received {r.get('received_at', '?')}"
        if r.get("starts_at"):
            when += f" · since {r['starts_at']}"
        if status == "resolved" and r.get("ends_at"):
            when += f" · resolved {r['ends_at']}"
        parts.append(f"<div class='muted'>{esc(when)}</div>")
        if annotations.get("summary"):
            parts.append(f"<p>{esc(' '.join(str(annotations['summary']).split()))}</p>")
        line = figures_line(r.get("figures") or {})
        if line:
            parts.append(f"<p class='figures'>{esc(line)}</p>")
        if r.get("tickers"):
            parts.append("<p>Tickers: " + esc(", ".join(f"${t}" for t in r["tickers"])) + "</p>")
        for ex in r.get("exemplars") or []:
            meta = exemplar_meta(ex)
            parts.append(f"<blockquote>{esc(ex['text'])}<br><small class='muted'>{esc(meta)}"
                         "</small></blockquote>")
        link_map: Mapping[str, str] = r.get("links") or {}
        anchors = [f"<a href='{esc(link_map[k], quote=True)}'>{label}</a>"
                   for k, label in (("report", "report PNG"), ("dashboard", "dashboard"),
                                    ("prometheus", "Prometheus")) if link_map.get(k)]
        if anchors:
            parts.append("<p>" + " · ".join(anchors) + "</p>")
        topic = labels.get("topic")
        if topic and topic not in pictured:
            pictured.add(str(topic))
            src = report_url("", str(topic)).lstrip("/")
            parts.append(f"<img loading='lazy' alt='report of {esc(str(topic))}' "
                         f"src='{esc(src, quote=True)}'>")
        parts.append("</article>")
    parts.append("</body></html>")
    return "\n".join(parts)


class ReportRenderer:
    """Draws topic report PNGs from Prometheus, one at a time, each kept ``REPORT_CACHE_S``."""

    def __init__(self, prometheus_url: str, *, min_volume: int = 30) -> None:
        self.prometheus_url = prometheus_url
        self.min_volume = min_volume
        self._lock = threading.Lock()  # pyplot keeps global state: one drawing at a time
        self._cache: dict[tuple[str, float], tuple[float, bytes]] = {}

    def png(self, topic: str, *, since_s: float) -> bytes:
        """The PNG bytes; raises :class:`~sentimon.monitor.report.ReportError` without data."""
        from sentimon.monitor.report import render_report

        key = (topic, since_s)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < REPORT_CACHE_S:
                return hit[1]
            with tempfile.TemporaryDirectory(prefix="sentimon-report-") as tmp:
                out = Path(tmp) / "report.png"
                render_report(prometheus_url=self.prometheus_url, since_s=since_s, out=out,
                              highlight=[topic], min_volume=self.min_volume)
                data = out.read_bytes()
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = (time.monotonic(), data)
            return data
