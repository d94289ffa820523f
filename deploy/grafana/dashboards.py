"""Grafana dashboards and provisioning for sentimon, generated from code.

Plain dicts in Grafana's dashboard JSON model (schemaVersion 39), no SDK. The committed files
under ``deploy/grafana/`` are this module's output; regenerate them after a change with::

    python -m sentimon.deploy.grafana.dashboards

Two dashboards: ``sentimon-topics`` (per-topic and per-ticker sentiment, negative share vs
baseline, volume, spike statistic, alerts; the alerts' ``dashboard_url`` points here) and
``sentimon-pipeline`` (throughput, latency quantiles, lag, dead letters, model).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
DATASOURCE_UID = "sentimon-prometheus"
DS = {"type": "prometheus", "uid": DATASOURCE_UID}
#: Where the dashboards provider reads the JSON files on a Grafana host (docs/alerts.md).
DASHBOARDS_PATH = "/etc/sentimon/grafana/dashboards"
DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:19090"
SCHEMA_VERSION = 39

Panel = dict[str, Any]


def target(expr: str, *, legend: str = "", ref: str = "A", instant: bool = False) -> dict[str, Any]:
    """One PromQL query of a panel."""
    t: dict[str, Any] = {"refId": ref, "datasource": DS, "expr": expr, "legendFormat": legend}
    if instant:
        t |= {"instant": True, "range": False, "format": "table"}
    return t


def timeseries(
    title: str, *targets: dict[str, Any], unit: str = "short", description: str = "",
    thresholds: list[tuple[float, str]] | None = None, stack: bool = False,
) -> Panel:
    """A time-series panel; ``thresholds`` draw dashed lines (value, colour)."""
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": color, "value": value} for value, color in thresholds or []]
    custom: dict[str, Any] = {
        "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stack else 0,
        "showPoints": "never", "spanNulls": False,
        "thresholdsStyle": {"mode": "dashed" if thresholds else "off"},
    }
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {
        "type": "timeseries", "title": title, "description": description, "datasource": DS,
        "targets": list(targets),
        "fieldConfig": {
            "defaults": {
                "unit": unit, "custom": custom,
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def table(title: str, *targets: dict[str, Any], description: str = "",
          hide: tuple[str, ...] = ("Time", "Value")) -> Panel:
    """An instant-query table, e.g. of label sets (ALERTS, model info)."""
    return {
        "type": "table", "title": title, "description": description, "datasource": DS,
        "targets": list(targets),
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm"},
        "transformations": [
            {"id": "organize", "options": {"excludeByName": dict.fromkeys(hide, True)}}
        ],
    }


def stat(title: str, *targets: dict[str, Any], unit: str = "short", description: str = "") -> Panel:
    return {
        "type": "stat", "title": title, "description": description, "datasource": DS,
        "targets": list(targets),
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "textMode": "auto"},
    }


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def variable(name: str, label: str, metric: str) -> dict[str, Any]:
    """A multi-value template variable over a label of ``metric`` (All = regex ``.*``)."""
    query = f"label_values({metric}, {name})"
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": f"{name}-values"}, "definition": query,
        "refresh": 2, "sort": 1, "multi": True, "includeAll": True, "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "hide": 0, "options": [], "regex": "",
    }


def layout(panels: list[Panel], *, width: int = 12, height: int = 8) -> list[Panel]:
    """Give panels ids and grid positions: rows span the width, panels flow two per line."""
    out, x, y = [], 0, 0
    for pid, panel in enumerate(panels, start=1):
        panel = {"id": pid, **panel}
        if panel["type"] == "row":
            if x:
                x, y = 0, y + height
            panel["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y += 1
        else:
            w = panel.pop("width", width)
            if x + w > 24:
                x, y = 0, y + height
            panel["gridPos"] = {"h": height, "w": w, "x": x, "y": y}
            x += w
        out.append(panel)
    return out


def dashboard(uid: str, title: str, panels: list[Panel], *, variables: list[dict[str, Any]],
              description: str, links: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["sentimon"],
        "timezone": "utc", "editable": True, "graphTooltip": 1, "schemaVersion": SCHEMA_VERSION,
        "version": 1, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard",
        }]},
        "links": links, "panels": layout(panels),
    }


def _link(title: str, uid: str) -> dict[str, Any]:
    return {"title": title, "type": "link", "url": f"/d/{uid}", "keepTime": True,
            "includeVars": False, "icon": "dashboard", "targetBlank": False, "tags": []}


def topics_dashboard() -> dict[str, Any]:
    """Sentiment per topic and ticker; the alerts' ``dashboard_url`` points here."""
    t, k = 'topic=~"$topic"', 'ticker=~"$ticker"'
    panels = [
        row("Topics"),
        timeseries(
            "Negative share: short window vs baseline",
            target(f'sentimon_topic_negative_share{{{t},window="short"}}', legend="{{topic}} now"),
            target(f'sentimon_topic_negative_share{{{t},window="baseline"}}',
                   legend="{{topic}} baseline", ref="B"),
            unit="percentunit",
            description="Share of negative records per topic in the short window and in the "
            "baseline window. A spike is the short share rising well above the baseline.",
        ),
        timeseries(
            "Spike statistic (z-score)",
            target(f"sentimon_topic_spike_zscore{{{t}}}", legend="{{topic}}"),
            thresholds=[(3.0, "red")],
            description="z of the short-window negative share against the baseline share; "
            "the dashed line is the default monitor.spike_z (3).",
        ),
        timeseries(
            "Rolling sentiment (mean score, short window)",
            target(f'sentimon_topic_mean_score{{{t},window="short"}}', legend="{{topic}}"),
            description="Mean of P(positive) - P(negative) per topic, -1 to 1.",
        ),
        timeseries(
            "Volume (short window)",
            target(f'sentimon_topic_volume{{{t},window="short"}}', legend="{{topic}}"),
            description="Records per topic in the short window; spikes need monitor.min_volume.",
        ),
        timeseries(
            "Spike flag",
            target(f"sentimon_topic_spike{{{t}}}", legend="{{topic}}"),
            description="1 while the monitor judges a spike (z, volume and lift all met); "
            "NegativeSentimentSpike fires once it holds for alerts.spike_for.",
        ),
        table(
            "Alerts pending and firing",
            target("ALERTS", instant=True),
            description="Every sentimon alert Prometheus is evaluating as pending or firing.",
            hide=("Time", "Value", "__name__"),
        ),
        row("Tickers"),
        timeseries(
            "Ticker negative share: short window vs baseline",
            target(f'sentimon_ticker_negative_share{{{k},window="short"}}', legend="{{ticker}} now"),
            target(f'sentimon_ticker_negative_share{{{k},window="baseline"}}',
                   legend="{{ticker}} baseline", ref="B"),
            unit="percentunit",
        ),
        timeseries(
            "Ticker spike statistic (z-score)",
            target(f"sentimon_ticker_spike_zscore{{{k}}}", legend="{{ticker}}"),
            thresholds=[(3.0, "red")],
        ),
        timeseries(
            "Ticker volume (short window)",
            target(f'sentimon_ticker_volume{{{k},window="short"}}', legend="{{ticker}}"),
        ),
        timeseries(
            "Ticker rolling sentiment (mean score, short window)",
            target(f'sentimon_ticker_mean_score{{{k},window="short"}}', legend="{{ticker}}"),
        ),
        row("Market"),
        timeseries(
            "Market negative and positive share",
            target("sentimon_market_negative_share", legend="negative {{window}}"),
            target("sentimon_market_positive_share", legend="positive {{window}}", ref="B"),
            unit="percentunit",
        ),
        timeseries(
            "Market volume",
            target("sentimon_market_volume", legend="{{window}}"),
        ),
    ]
    return dashboard(
        "sentimon-topics", "sentimon: sentiment by topic and ticker", panels,
        variables=[
            variable("topic", "Topic", "sentimon_topic_volume"),
            variable("ticker", "Ticker", "sentimon_ticker_volume"),
        ],
        description="Rolling financial sentiment per topic and watchlist ticker from the "
        "sentimon monitor, with the spike statistic behind NegativeSentimentSpike.",
        links=[_link("Pipeline health", "sentimon-pipeline")],
    )


def _quantiles(metric: str) -> list[dict[str, Any]]:
    return [
        target(
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket[$__rate_interval])))",
            legend=f"p{round(q * 100)}", ref=ref,
        )
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]


def pipeline_dashboard() -> dict[str, Any]:
    """Health of the scorer, monitor and notifier."""
    r = "[$__rate_interval]"
    panels = [
        row("Throughput"),
        timeseries(
            "Scorer throughput (records/s)",
            target(f"sum by (topic) (rate(sentimon_scorer_records_consumed_total{r}))",
                   legend="consumed {{topic}}"),
            target(f"sum by (topic) (rate(sentimon_scorer_records_scored_total{r}))",
                   legend="scored {{topic}}", ref="B"),
            unit="reqps",
        ),
        timeseries(
            "Monitor intake (unique records/s)",
            target(f"sum by (kind) (rate(sentimon_monitor_records_total{r}))", legend="{{kind}}"),
            target(f"sum(rate(sentimon_monitor_duplicates_total{r}))", legend="duplicates",
                   ref="B"),
            unit="reqps",
        ),
        row("Latency"),
        timeseries("Inference time per batch", *_quantiles("sentimon_scorer_inference_seconds"),
                   unit="s"),
        timeseries("End-to-end latency (scored_at - event time)",
                   *_quantiles("sentimon_scorer_end_to_end_seconds"), unit="s",
                   description="Large values during a replay of historical data are expected."),
        timeseries("Batch size (records)", *_quantiles("sentimon_scorer_batch_size")),
        timeseries("Batch size (tokens)", *_quantiles("sentimon_scorer_batch_tokens")),
        row("Backlog and errors"),
        timeseries(
            "Consumer lag (records)",
            target("sum by (topic) (sentimon_scorer_consumer_lag)", legend="scorer {{topic}}"),
            target("sum by (topic) (sentimon_monitor_consumer_lag)", legend="monitor {{topic}}",
                   ref="B"),
            thresholds=[(1000.0, "orange")],
            description="ConsumerLagGrowing fires when lag is above 1000 and still growing.",
        ),
        timeseries(
            "Dead letters by reason (records/s)",
            target(f"sum by (reason) (rate(sentimon_scorer_records_dead_lettered_total{r}))",
                   legend="{{reason}}"),
            unit="reqps", stack=True,
        ),
        row("Processes"),
        table(
            "Model",
            target("sentimon_model_info", instant=True),
            description="Model name, version, ONNX Runtime provider and variant per scorer.",
            hide=("Time", "Value", "__name__", "job"),
        ),
        stat(
            "Targets up",
            target('up{job=~"sentimon-.*"}', legend="{{job}} {{instance}}"),
            description="1 when Prometheus scrapes the daemon; ScorerDown/MonitorDown fire on 0.",
        ),
        timeseries(
            "Notifications received (last hour)",
            target("sum by (status) (increase(sentimon_notify_alerts_received_total[1h]))",
                   legend="{{status}}"),
        ),
    ]
    return dashboard(
        "sentimon-pipeline", "sentimon: pipeline health", panels, variables=[],
        description="Throughput, latency, lag, dead letters and model of the sentimon daemons.",
        links=[_link("Sentiment", "sentimon-topics")],
    )


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard."""
    return {"sentimon-topics.json": topics_dashboard(),
            "sentimon-pipeline.json": pipeline_dashboard()}


def panel_queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel."""
    for panel in board["panels"]:
        for t in panel.get("targets", []):
            yield panel["title"], t["expr"]


def datasource_provisioning(url: str = DEFAULT_PROMETHEUS_URL, *,
                            time_interval: str = "15s") -> dict[str, Any]:
    """Grafana data-source provisioning: the Prometheus the dashboards query."""
    return {
        "apiVersion": 1,
        "datasources": [{
            "name": "sentimon-prometheus", "uid": DATASOURCE_UID, "type": "prometheus",
            "access": "proxy", "url": url, "isDefault": True, "editable": False,
            "jsonData": {"timeInterval": time_interval},
        }],
    }


def dashboards_provisioning(path: str = DASHBOARDS_PATH) -> dict[str, Any]:
    """Grafana dashboard-provider provisioning: load the JSON files from ``path``."""
    return {
        "apiVersion": 1,
        "providers": [{
            "name": "sentimon", "orgId": 1, "folder": "sentimon", "type": "file",
            "disableDeletion": False, "allowUiUpdates": False, "updateIntervalSeconds": 60,
            "options": {"path": path, "foldersFromFilesStructure": False},
        }],
    }


def _yaml(doc: dict[str, Any]) -> str:
    head = "# Generated by `python -m sentimon.deploy.grafana.dashboards`; do not edit.\n"
    return head + yaml.safe_dump(doc, sort_keys=False)


def generated_files() -> dict[str, str]:
    """Path relative to ``deploy/grafana`` -> content, for everything this module owns."""
    files = {
        f"dashboards/{name}": json.dumps(board, indent=2, ensure_ascii=False) + "\n"
        for name, board in dashboards().items()
    }
    files["provisioning/datasources/sentimon.yml"] = _yaml(datasource_provisioning())
    files["provisioning/dashboards/sentimon.yml"] = _yaml(dashboards_provisioning())
    return files


def write(root: Path = HERE) -> list[Path]:
    """Write :func:`generated_files` under ``root``; return the paths written."""
    written = []
    for rel, text in generated_files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sentimon.deploy.grafana.dashboards",
        description="Write sentimon's Grafana dashboards and provisioning files.",
        epilog="example: python -m sentimon.deploy.grafana.dashboards --out /etc/sentimon/grafana",
    )
    parser.add_argument("--out", type=Path, default=HERE,
                        help="directory to write into (default: deploy/grafana in the source tree)")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
