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


# --- every panel against the real pipeline -------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
SHORT_WINDOW_S = 10  # event-time seconds; small so that a baseline exists within the test


class Daemon:
    """A ``sentimon`` subcommand run as its own process, logging to a file."""

    def __init__(self, args: list[str], *, env: dict[str, str], log: Path) -> None:
        import sys

        self.args, self.log = args, log
        self._file = log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "sentimon", *args], env=env,
                                     stdout=self._file, stderr=subprocess.STDOUT, cwd=REPO)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"`sentimon {' '.join(self.args)}` exited with {self.proc.returncode}:\n"
                + self.log.read_text()[-4000:]
            )

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._file.close()


def _get_json(url: str) -> dict:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # Prometheus explains a bad query in the body
        return json.loads(exc.read())


def _ready(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def prom_query(prometheus_url: str, expr: str) -> dict:
    from urllib.parse import quote

    return _get_json(f"{prometheus_url}/api/v1/query?query={quote(expr)}")


@pytest.mark.integration
@pytest.mark.slow
def test_every_panel_query_returns_data_from_the_real_pipeline(
    observability, topics, tmp_path: Path
) -> None:
    """Real scorer, monitor and notify daemons fed by a real replay; Prometheus scrapes them.
    Every panel's query must parse and return data, with ``.*`` and with a real value."""
    import os
    import time

    from sentimon.kafka import make_producer

    settings = observability.settings.model_copy(update={"topics": topics})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTIMON_")}
    env |= {
        "SENTIMON_HOME": str(tmp_path / "home"),
        "SENTIMON_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "SENTIMON_TOPICS__NEWS": topics.news,
        "SENTIMON_TOPICS__COMMENTS": topics.comments,
        "SENTIMON_TOPICS__SCORED": topics.scored,
        "SENTIMON_TOPICS__DLQ": topics.dlq,
        "SENTIMON_SCORER__METRICS_PORT": str(settings.scorer.metrics_port),
        "SENTIMON_SCORER__GROUP_ID": f"scorer-{topics.news}",
        "SENTIMON_MONITOR__METRICS_PORT": str(settings.monitor.metrics_port),
        "SENTIMON_MONITOR__GROUP_ID": f"monitor-{topics.news}",
        "SENTIMON_MONITOR__SHORT_WINDOW_S": str(SHORT_WINDOW_S),
        "SENTIMON_MONITOR__BASELINE_WINDOW_S": "3600",
        # The detector armed on the first batch (1-second slots, a 5-second horizon), so the
        # evidence panels have data.
        "SENTIMON_MONITOR__DETECTION_HORIZON_S": "5",
        "SENTIMON_MONITOR__BASELINE_SLOT_S": "1",
        "SENTIMON_MONITOR__MIN_HISTORY_S": "1",
        "SENTIMON_MONITOR__HISTORY_S": "3600",
        "SENTIMON_NOTIFY__PORT": str(settings.notify.port),
        "SENTIMON_MODEL__DEVICE": "cpu",
        "SENTIMON_MODEL__THREADS": "1",  # two shared cores on the CI machine
    }
    daemons = [
        Daemon(["score"], env=env, log=tmp_path / "scorer.log"),
        Daemon(["monitor"], env=env, log=tmp_path / "monitor.log"),
        Daemon(["notify"], env=env, log=tmp_path / "notify.log"),
    ]
    prom = observability.prometheus_url
    try:
        ports = [settings.scorer.metrics_port, settings.monitor.metrics_port,
                 settings.notify.port]
        deadline = time.monotonic() + 180  # the scorer loads the model first
        for daemon, port in zip(daemons, ports, strict=True):
            while not _ready(f"http://127.0.0.1:{port}/healthz"):
                daemon.check_alive()
                assert time.monotonic() < deadline, f"{daemon.args} never answered /healthz"
                time.sleep(0.5)

        # Two batches of distinct records, more than the short window apart in event time:
        # the first ends up in the baseline window, the second in the short one.
        demo = REPO / "deploy" / "demo"
        for batch, (first, last) in enumerate(((0, 150), (150, 300))):
            if batch:
                time.sleep(SHORT_WINDOW_S + 2)
            for source, kind in (("news.csv", "news"), ("comments.csv", "comment")):
                part = csv_slice(demo / source, tmp_path / f"{batch}-{source}", first, last)
                proc = subprocess.run(
                    [*_sentimon(), "replay", str(part), "--kind", kind, "--retime",
                     "--rate", "1000", "--no-progress"],
                    env=env, capture_output=True, text=True, timeout=120, cwd=REPO,
                )
                assert proc.returncode == 0, proc.stdout + proc.stderr
        # Records the scorer must dead-letter (not JSON): the dead-letter panel needs some,
        # and at ~10% they put DeadLetterRateHigh into pending for the ALERTS panel.
        producer = make_producer(settings.kafka, client_suffix="grafana-test")
        for i in range(60):
            producer.send(topics.news, key=f"bad-{i}".encode(), value=b"{not json")
        producer.flush(30)
        producer.close()

        queries = all_queries()
        missing: list[str] = []
        deadline = time.monotonic() + 240
        while True:
            for daemon in daemons:
                daemon.check_alive()
            missing = []
            for name, title, expr in queries:
                answer = prom_query(prom, concrete(expr))
                assert answer.get("status") == "success", (name, title, expr, answer)
                if not answer["data"]["result"]:
                    missing.append(f"{name} / {title}: {concrete(expr)}")
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert not missing, "panels without data:\n" + "\n".join(missing)

        # Template variables set to one real value, as a user picking a topic/ticker would:
        # some value seen in Prometheus must fill every panel that uses the variable.
        # (Not any value: a ticker seen only in the baseline batch has no short-window data.)
        for var, metric in (("topic", "sentimon_topic_volume"), ("ticker", "sentimon_ticker_volume")):
            values = _get_json(f"{prom}/api/v1/label/{var}/values?match[]={metric}")["data"]
            assert values, f"no {var} values in Prometheus"
            uses = [(name, title, expr) for name, title, expr in queries if f"${var}" in expr]
            assert uses, f"no panel uses ${var}"
            empty: dict[str, list[str]] = {}
            for value in values:
                empty[value] = []
                for name, title, expr in uses:
                    one = concrete(expr.replace(f"${var}", grafana_regex_value(value)))
                    answer = prom_query(prom, one)
                    assert answer["status"] == "success", (name, title, one, answer)
                    if not answer["data"]["result"]:
                        empty[value].append(f"{name} / {title}: {one}")
                if not empty[value]:
                    break
            else:
                raise AssertionError(f"no {var} value fills every panel: {empty}")
    finally:
        for daemon in daemons:
            daemon.stop()


def grafana_regex_value(value: str) -> str:
    """A variable value as Grafana writes it into ``=~"..."``: regex characters escaped,
    with the backslash doubled for the PromQL string (topics such as "Company | Product News")."""
    return re.sub(r"[\\^$*+?.()|{}\[\]]", lambda m: "\\\\" + m.group(0), value)


def test_grafana_regex_value_escapes_for_promql() -> None:
    assert grafana_regex_value("Company | Product News") == r"Company \\| Product News"
    assert grafana_regex_value("BRK.B") == r"BRK\\.B"


def csv_slice(source: Path, dest: Path, first: int, last: int) -> Path:
    """Rows ``first:last`` of a CSV file (with its header) as a new file."""
    import csv

    with source.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    with dest.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([rows[0], *rows[1 + first : 1 + last]])
    return dest


def _sentimon() -> list[str]:
    import sys

    return [sys.executable, "-m", "sentimon"]
