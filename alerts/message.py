"""What a notification says: figures now vs baseline, tickers, exemplars, links, chat blocks.

The spike rules put their figures in machine-readable annotations (``negative_share``,
``baseline_share``, ``volume``, ``zscore``, ``observed_negatives``, ``expected_negatives``,
``evidence``, ``threshold``: plain numbers read by Prometheus at evaluation time) beside the
human ``summary``. Two annotations are optional and rendered when an alert
carries them: ``tickers`` (comma-separated, most mentioned first) and ``exemplars`` (a JSON
list of ``{"text", "source", "ts", "tickers"}``, the most negative texts of the burst).
Links are built here, URL-encoded: the topic's report PNG and the page of recent alerts
served by ``sentimon notify``, the dashboard (``dashboard_url``) and Prometheus
(``generatorURL``).
"""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

#: Annotations holding one number each, in display order (the last four are the monitor's
#: change detector: negatives seen vs expected at this time of day, evidence vs threshold).
FIGURES = ("negative_share", "baseline_share", "volume", "zscore", "observed_negatives",
           "expected_negatives", "evidence", "threshold")
#: How far back the report PNG linked from a notification reaches.
REPORT_SINCE = "3h"
#: Slack refuses more than 50 blocks per message; alerts beyond this are only counted.
MAX_ALERTS_PER_MESSAGE = 8
MAX_EXEMPLARS = 5


def figures(annotations: Mapping[str, Any]) -> dict[str, float]:
    """The numeric figures an alert carries (missing or unreadable ones are left out)."""
    out: dict[str, float] = {}
    for key in FIGURES:
        try:
            value = float(str(annotations.get(key, "")).strip())
        except ValueError:
            continue
        if math.isfinite(value):
            out[key] = value
    return out


def tickers(labels: Mapping[str, Any], annotations: Mapping[str, Any]) -> list[str]:
    """The alert's ticker label, then the ``tickers`` annotation, without repeats."""
    names = [str(labels["ticker"])] if labels.get("ticker") else []
    names += [t.strip().upper() for t in str(annotations.get("tickers", "")).split(",")]
    return list(dict.fromkeys(t for t in names if t))


def exemplars(annotations: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``exemplars`` annotation as a list of texts with their source, time and tickers."""
    raw = annotations.get("exemplars")
    if not raw:
        return []
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return []
    if not isinstance(items, list):
        return []
    out = []
    for item in items[:MAX_EXEMPLARS]:
        if isinstance(item, dict) and item.get("text"):
            out.append({
                "text": str(item["text"]), "source": str(item.get("source") or ""),
                "ts": str(item.get("ts") or ""),
                "tickers": [str(t) for t in item.get("tickers") or []],
            })
    return out


def exemplar_meta(ex: Mapping[str, Any]) -> str:
    """``source · time · $TICKERS · P(negative) 0.97``: what is known of an exemplar text."""
    p = ex.get("p_negative")
    parts = [ex.get("source"), ex.get("ts"), " ".join(f"${t}" for t in ex.get("tickers", [])),
             f"P(negative) {p:.2f}" if isinstance(p, int | float) else ""]
    return " · ".join(str(x) for x in parts if x)


def report_url(base_url: str, topic: str, *, since: str = REPORT_SINCE) -> str:
    """The receiver's PNG report of ``topic`` (query string encoded)."""
    query = urllib.parse.urlencode({"topic": topic, "since": since}, quote_via=urllib.parse.quote)
    return f"{base_url.rstrip('/')}/report.png?{query}"


def links(alert: Mapping[str, Any], *, base_url: str | None) -> dict[str, str]:
    """Where to look next: report PNG and page (receiver), dashboard, Prometheus."""
    labels: Mapping[str, Any] = alert.get("labels") or {}
    annotations: Mapping[str, Any] = alert.get("annotations") or {}
    out: dict[str, str] = {}
    if base_url and labels.get("topic"):
        out["report"] = report_url(base_url, str(labels["topic"]))
    if annotations.get("dashboard_url"):
        out["dashboard"] = str(annotations["dashboard_url"])
    if alert.get("generatorURL"):
        out["prometheus"] = str(alert["generatorURL"])
    if base_url:
        out["page"] = base_url.rstrip("/") + "/"
    return out


def figures_line(values: Mapping[str, float]) -> str:
    """``negative share 80% vs baseline 10%, 60 records, z=13.8`` (what is known of it)."""
    parts = []
    if "negative_share" in values:
        text = f"negative share {values['negative_share']:.0%}"
        if "baseline_share" in values:
            text += f" vs baseline {values['baseline_share']:.0%}"
        parts.append(text)
    if "volume" in values:
        parts.append(f"{values['volume']:.0f} records in the short window")
    if "zscore" in values:
        parts.append(f"z={values['zscore']:.1f}")
    if "observed_negatives" in values and "expected_negatives" in values:
        parts.append(f"{values['observed_negatives']:.0f} negative records where "
                     f"{values['expected_negatives']:.1f} were expected")
    if "evidence" in values and "threshold" in values:
        parts.append(f"evidence {values['evidence']:.1f} (threshold {values['threshold']:.1f})")
    return ", ".join(parts)


def subject(record: Mapping[str, Any]) -> str:
    """``NegativeSentimentSpike: Stock Movement`` (the label that says what it is about)."""
    labels: Mapping[str, Any] = record.get("labels") or {}
    about = next((str(labels[k]) for k in ("topic", "ticker", "kind", "job") if labels.get(k)), "")
    name = str(record.get("alertname") or "(unnamed alert)")
    return f"{name}: {about}" if about else name


def _mrkdwn(text: str) -> str:
    # Slack's three control characters; everything else is shown as written.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    return f"<{url.replace('>', '%3E').replace('|', '%7C')}|{label}>"


def slack_message(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A Slack message for one notification: ``text`` (fallback, the console lines) and blocks.

    Per alert: a header (status and subject), the summary, the figures as fields, tickers,
    exemplar quotes, and a context line of links. Slack-compatible services that do not
    know blocks show ``text``.
    """
    blocks: list[dict[str, Any]] = []
    for record in records[:MAX_ALERTS_PER_MESSAGE]:
        status = str(record.get("status", "unknown"))
        icon = {"firing": ":red_circle:", "resolved": ":large_green_circle:"}.get(status, ":grey_question:")
        blocks.append({"type": "header", "text": {
            "type": "plain_text", "text": f"{status.upper()} {subject(record)}"[:150]}})
        summary = " ".join(str((record.get("annotations") or {}).get("summary", "")).split())
        if summary:
            blocks.append({"type": "section", "text": {
                "type": "mrkdwn", "text": f"{icon} {_mrkdwn(summary)}"[:3000]}})
        values: Mapping[str, float] = record.get("figures") or {}
        fields = []
        if "negative_share" in values:
            base = values.get("baseline_share")
            fields.append(f"*Negative share*\n{values['negative_share']:.0%}"
                          + (f" (baseline {base:.0%})" if base is not None else ""))
        if "volume" in values:
            fields.append(f"*Records (short window)*\n{values['volume']:.0f}")
        if "zscore" in values:
            fields.append(f"*z-score*\n{values['zscore']:.1f}")
        if "observed_negatives" in values and "expected_negatives" in values:
            fields.append(f"*Negative records*\n{values['observed_negatives']:.0f} "
                          f"(expected {values['expected_negatives']:.1f})")
        if record.get("tickers"):
            fields.append("*Tickers*\n" + ", ".join(f"${t}" for t in record["tickers"][:10]))
        if record.get("starts_at"):
            fields.append(f"*Since*\n{record['starts_at']}")
        if fields:
            blocks.append({"type": "section", "fields": [
                {"type": "mrkdwn", "text": _mrkdwn(f)[:2000]} for f in fields[:10]]})
        for ex in record.get("exemplars") or []:
            meta = exemplar_meta(ex)
            blocks.append({"type": "section", "text": {
                "type": "mrkdwn", "text": f">{_mrkdwn(ex['text'])[:2500]}\n_{_mrkdwn(meta)}_"}})
        link_map: Mapping[str, str] = record.get("links") or {}
        names = {"report": "Report PNG", "dashboard": "Dashboard", "prometheus": "Prometheus",
                 "page": "Recent alerts"}
        shown = [_link(link_map[k], v) for k, v in names.items() if link_map.get(k)]
        if shown:
            blocks.append({"type": "context", "elements": [
                {"type": "mrkdwn", "text": " · ".join(shown)}]})
        blocks.append({"type": "divider"})
    more = len(records) - MAX_ALERTS_PER_MESSAGE
    if more > 0:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"and {more} more alert(s) in this group"}]})
    if blocks and blocks[-1]["type"] == "divider":
        blocks.pop()
    return {"text": "\n".join(str(r.get("text", "")) for r in records), "blocks": blocks}
