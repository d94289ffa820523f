"""Grafana dashboards and provisioning for sentimon, generated from code.

Built with Grafana's official typed builders (``grafana-foundation-sdk``, the ``cog``-generated
Python SDK): panels, queries, variables and links are SDK objects, laid out on the grid by the
SDK and encoded to Grafana's dashboard JSON. The committed files under ``deploy/grafana/``
are this module's output; regenerate them after a change with::

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
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus as prom_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dash_m
from grafana_foundation_sdk.models import prometheus as prom_m

HERE = Path(__file__).parent
DATASOURCE_UID = "sentimon-prometheus"
DS = dash_m.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
#: Where the dashboards provider reads the JSON files on a Grafana host (docs/alerts.md).
DASHBOARDS_PATH = "/etc/sentimon/grafana/dashboards"
DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:19090"
#: Panels flow two per line, each 12 of Grafana's 24 columns wide and 8 rows high.
PANEL_WIDTH, PANEL_HEIGHT = 12, 8

Panel = Any  # an SDK panel builder (timeseries, table, stat)


def target(expr: str, *, legend: str = "", ref: str = "A", instant: bool = False
           ) -> prom_b.Dataquery:
    """One PromQL query of a panel."""
    q = prom_b.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)
    if instant:
        q = q.instant().format(prom_m.PromQueryFormat.TABLE)
    return q


def _sized(panel: Any, title: str, description: str, targets: tuple[prom_b.Dataquery, ...]
           ) -> Any:
    panel = panel.title(title).description(description).datasource(DS)
    panel = panel.span(PANEL_WIDTH).height(PANEL_HEIGHT)
    for t in targets:
        panel = panel.with_target(t)
    return panel


def timeseries(
    title: str, *targets: prom_b.Dataquery, unit: str = "short", description: str = "",
    thresholds: list[tuple[float, str]] | None = None, stack: bool = False,
) -> ts_b.Panel:
    """A time-series panel; ``thresholds`` draw dashed lines (value, colour)."""
    steps = [dash_m.Threshold(color="green", value=None)]
    steps += [dash_m.Threshold(color=color, value=value) for value, color in thresholds or []]
    panel = (
        _sized(ts_b.Panel(), title, description, targets)
        .unit(unit)
        .draw_style(common.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(10 if stack else 0)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .thresholds(dash_b.ThresholdsConfig().mode(dash_m.ThresholdsMode.ABSOLUTE).steps(steps))
        .thresholds_style(common_b.GraphThresholdsStyleConfig().mode(
            common.GraphTresholdsStyleMode.DASHED if thresholds
            else common.GraphTresholdsStyleMode.OFF))
        .legend(common_b.VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
                .placement(common.LegendPlacement.BOTTOM).show_legend(True))
        .tooltip(common_b.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                 .sort(common.SortOrder.DESCENDING))
    )
    if stack:
        panel = panel.stacking(common_b.StackingConfig().mode(common.StackingMode.NORMAL).group("A"))
    return panel


def table(title: str, *targets: prom_b.Dataquery, description: str = "",
          hide: tuple[str, ...] = ("Time", "Value")) -> table_b.Panel:
    """An instant-query table, e.g. of label sets (ALERTS, model info)."""
    return (
        _sized(table_b.Panel(), title, description, targets)
        .show_header(True)
        .cell_height(common.TableCellHeight.SM)
        .with_transformation(dash_m.DataTransformerConfig(
            id_val="organize", options={"excludeByName": dict.fromkeys(hide, True)}))
    )


def stat(title: str, *targets: prom_b.Dataquery, unit: str = "short", description: str = ""
         ) -> stat_b.Panel:
    return (
        _sized(stat_b.Panel(), title, description, targets)
        .unit(unit)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).fields("")
                        .values(False))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.AREA)
        .text_mode(common.BigValueTextMode.AUTO)
    )


def row(title: str) -> dash_b.Row:
    return dash_b.Row(title).collapsed(False)


def variable(name: str, label: str, metric: str) -> dash_b.QueryVariable:
    """A multi-value template variable over a label of ``metric`` (All = regex ``.*``)."""
    query = f"label_values({metric}, {name})"
    return (
        dash_b.QueryVariable(name).label(label).datasource(DS)
        .query({"query": query, "refId": f"{name}-values"})
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dash_m.VariableSort.ALPHABETICAL_ASC)
        .multi(True).include_all(True).all_value(".*")
        .current(dash_m.VariableOption(selected=True, text=["All"], value=["$__all"]))
        .hide(dash_m.VariableHide.DONT_HIDE).options([]).regex("")
    )


def dashboard(uid: str, title: str, panels: list[Any], *, variables: list[dash_b.QueryVariable],
              description: str, links: list[dash_b.DashboardLink]) -> dict[str, Any]:
    """The dashboard as Grafana JSON: the SDK places rows and panels and numbers the panels."""
    board = (
        dash_b.Dashboard(title).uid(uid).description(description).tags(["sentimon"])
        .timezone("utc").editable().tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .refresh("30s").time("now-6h", "now").version(1).variables([])
    )
    for v in variables:
        board = board.with_variable(v)
    for link in links:
        board = board.link(link)
    for pid, panel in enumerate(panels, start=1):
        panel = panel.id(pid)
        board = board.with_row(panel) if isinstance(panel, dash_b.Row) else board.with_panel(panel)
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def _link(title: str, uid: str) -> dash_b.DashboardLink:
    return (dash_b.DashboardLink(title).type(dash_m.DashboardLinkType.LINK).url(f"/d/{uid}")
            .keep_time(True).include_vars(False).icon("dashboard").target_blank(False).tags([]))


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
            "Surge evidence against its threshold",
            target(f"sentimon_topic_evidence{{{t}}}", legend="{{topic}} evidence"),
            target(f"sentimon_topic_evidence_threshold{{{t}}}", legend="{{topic}} threshold",
                   ref="B"),
            description="The change detector's evidence of a surge of negatives (log R, nats) "
            "and the threshold set by monitor.false_alerts_per_day_topics: "
            "NegativeSentimentSpike fires when evidence reaches it. Absent until a series has "
            "monitor.min_history_s of history.",
        ),
        timeseries(
            "Negatives: observed vs expected (short window)",
            target(f"sentimon_topic_observed_negatives{{{t}}}", legend="{{topic}} observed"),
            target(f"sentimon_topic_expected_negatives{{{t}}}", legend="{{topic}} expected",
                   ref="B"),
            description="Negatives in the short window against what the topic's baseline "
            "expects at this time of day.",
        ),
        timeseries(
            "z statistic (shown, not alerted on)",
            target(f"sentimon_topic_spike_zscore{{{t}}}", legend="{{topic}}"),
            description="z of the short-window negative share against the baseline share: "
            "the statistic before the detector, for comparison.",
        ),
        timeseries(
            "Rolling sentiment (mean score, short window)",
            target(f'sentimon_topic_mean_score{{{t},window="short"}}', legend="{{topic}}"),
            description="Mean of P(positive) - P(negative) per topic, -1 to 1.",
        ),
        timeseries(
            "Volume (short window)",
            target(f'sentimon_topic_volume{{{t},window="short"}}', legend="{{topic}}"),
            description="Records per topic in the short window.",
        ),
        timeseries(
            "Spike flag",
            target(f"sentimon_topic_spike{{{t}}}", legend="{{topic}}"),
            description="1 while the detector's evidence is at or above its threshold; "
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
            "Ticker surge evidence against its threshold",
            target(f"sentimon_ticker_evidence{{{k}}}", legend="{{ticker}} evidence"),
            target(f"sentimon_ticker_evidence_threshold{{{k}}}", legend="{{ticker}} threshold",
                   ref="B"),
            description="As for topics; the threshold comes from "
            "monitor.false_alerts_per_day_tickers.",
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
        "sentimon monitor, with the change detector behind NegativeSentimentSpike.",
        links=[_link("Pipeline health", "sentimon-pipeline")],
    )


def _quantiles(metric: str) -> list[prom_b.Dataquery]:
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
