"""Grafana dashboards: committed files are the generator's output, every query is valid
PromQL (promtool), and against the real pipeline every query returns data."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sentimon.config import Settings
from sentimon.deploy.grafana import dashboards as gd

GRAFANA_DIR = Path(__file__).parent.parent / "deploy" / "grafana"
PROMTOOL = shutil.which("promtool")


def concrete(expr: str, *, regex: str = ".*") -> str:
    """A panel query with Grafana's variables replaced, as Grafana would send it."""
    expr = expr.replace("$__rate_interval", "1m")
    return re.sub(r"\$(topic|ticker)\b", regex, expr)


def all_queries() -> list[tuple[str, str, str]]:
    return [
        (name, title, expr)
        for name, board in gd.dashboards().items()
        for title, expr in gd.panel_queries(board)
    ]


def test_committed_files_equal_the_generated_ones() -> None:
    for rel, text in gd.generated_files().items():
        path = GRAFANA_DIR / rel
        assert path.exists(), f"{rel} missing: run python -m sentimon.deploy.grafana.dashboards"
        assert path.read_text() == text, (
            f"{rel} is stale: run python -m sentimon.deploy.grafana.dashboards"
        )
    committed = {p.relative_to(GRAFANA_DIR).as_posix()
                 for p in (GRAFANA_DIR / "dashboards").glob("*.json")}
    assert committed == {r for r in gd.generated_files() if r.startswith("dashboards/")}


def test_write_to_another_directory(tmp_path: Path) -> None:
    assert gd.main(["--out", str(tmp_path)]) == 0
    board = json.loads((tmp_path / "dashboards" / "sentimon-topics.json").read_text())
    assert board["uid"] == "sentimon-topics"


def test_alert_links_point_at_the_topics_dashboard() -> None:
    assert Settings().alerts.dashboard_url.endswith("/d/sentimon-topics")
    board = gd.topics_dashboard()
    assert {v["name"] for v in board["templating"]["list"]} == {"topic", "ticker"}


@pytest.mark.parametrize("name", sorted(gd.dashboards()))
def test_dashboard_layout_is_consistent(name: str) -> None:
    board = gd.dashboards()[name]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            for t in panel["targets"]:
                assert t["datasource"]["uid"] == gd.DATASOURCE_UID
    variables = {v["name"] for v in board["templating"]["list"]}
    for _, expr in gd.panel_queries(board):
        used = set(re.findall(r"\$(\w+)", expr)) - {"__rate_interval"}
        assert used <= variables, f"{expr} uses undefined variables {used - variables}"


def test_provisioning_files_name_the_datasource_the_dashboards_use() -> None:
    ds = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/sentimon.yml").read_text())
    assert [d["uid"] for d in ds["datasources"]] == [gd.DATASOURCE_UID]
    prov = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/sentimon.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == gd.DASHBOARDS_PATH


def test_dashboards_cover_the_required_views() -> None:
    exprs = " ".join(expr for _, _, expr in all_queries())
    for metric in (
        "sentimon_topic_negative_share", "sentimon_topic_volume", "sentimon_topic_spike_zscore",
        "sentimon_topic_mean_score", "ALERTS", "sentimon_ticker_negative_share",
        "sentimon_scorer_records_consumed_total", "sentimon_scorer_inference_seconds_bucket",
        "sentimon_scorer_end_to_end_seconds_bucket", "sentimon_scorer_consumer_lag",
        "sentimon_scorer_records_dead_lettered_total", "sentimon_model_info",
    ):
        assert metric in exprs, metric


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (scripts/setup.sh)")
def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses recording-rule expressions offline: one rule per panel query.
    rules = [{"record": f"panel:q{i}", "expr": concrete(expr)}
             for i, (_, _, expr) in enumerate(all_queries())]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    assert PROMTOOL is not None
    proc = subprocess.run([PROMTOOL, "check", "rules", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout
