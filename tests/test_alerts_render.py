"""The shipped rules and their rendered copies pass the real promtool (check + unit tests)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from sentimon.alerts.render import RULES_FILE, check_duration, dashboard_link, render_rules
from sentimon.config import ConfigError, Settings

ALERTS_DIR = RULES_FILE.parent.parent
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (scripts/setup.sh)"
)


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def rules_by_name(text: str) -> dict[str, dict]:
    data = yaml.safe_load(text)
    return {r["alert"]: r for g in data["groups"] for r in g["rules"]}


def test_rules_cover_every_contract_alert() -> None:
    names = set(rules_by_name(RULES_FILE.read_text()))
    assert names == {
        "NegativeSentimentSpike", "TickerNegativeSpike", "ScorerDown", "MonitorDown",
        "ScorerStalled", "ConsumerLagGrowing", "DeadLetterRateHigh", "NoDataFromSource",
    }


def test_every_alert_has_a_promtool_test() -> None:
    tests = [yaml.safe_load(p.read_text()) for p in (ALERTS_DIR / "tests").glob("*.yml")]
    tested = {c["alertname"] for t in tests for case in t["tests"] for c in case["alert_rule_test"]}
    fired = {
        c["alertname"]
        for t in tests for case in t["tests"] for c in case["alert_rule_test"] if c["exp_alerts"]
    }
    names = set(rules_by_name(RULES_FILE.read_text()))
    assert tested == names
    assert fired == names, "every alert needs a case where it fires"


def test_render_sets_spike_for_and_dashboard_url_only() -> None:
    settings = Settings(alerts={"spike_for": "45s", "dashboard_url": "https://grafana.example/d/abc"})
    rendered = rules_by_name(render_rules(settings))
    shipped = rules_by_name(RULES_FILE.read_text())
    for name in ("NegativeSentimentSpike", "TickerNegativeSpike"):
        assert rendered[name]["for"] == "45s"
    assert rendered["NegativeSentimentSpike"]["annotations"]["dashboard_url"] == (
        "https://grafana.example/d/abc?var-topic={{ $labels.topic | urlquery }}"
    )
    assert rendered["TickerNegativeSpike"]["annotations"]["dashboard_url"] == (
        "https://grafana.example/d/abc?var-ticker={{ $labels.ticker | urlquery }}"
    )
    for name, rule in shipped.items():
        other = rendered[name]
        assert other["expr"] == rule["expr"]
        assert other["labels"] == rule["labels"]
        assert other["annotations"]["summary"] == rule["annotations"]["summary"]
        if name not in ("NegativeSentimentSpike", "TickerNegativeSpike"):
            assert other == rule


def test_dashboard_link_keeps_an_existing_query_string() -> None:
    assert dashboard_link("http://g/d/x?orgId=2", label="topic") == (
        "http://g/d/x?orgId=2&var-topic={{ $labels.topic | urlquery }}"
    )


@pytest.mark.parametrize("value", ["1h30m", "10m", "30s", "500ms", "1d"])
def test_check_duration_accepts(value: str) -> None:
    assert check_duration(value, field="alerts.spike_for") == value


@pytest.mark.parametrize("value", ["", "10", "ten minutes", "0s", "-5m", "5 m", "m"])
def test_check_duration_rejects(value: str) -> None:
    with pytest.raises(ConfigError, match=r"alerts\.spike_for"):
        check_duration(value, field="alerts.spike_for")


def test_render_rejects_bad_spike_for() -> None:
    with pytest.raises(ConfigError, match=r"alerts\.spike_for"):
        render_rules(Settings(alerts={"spike_for": "soon"}))


def test_render_fails_on_a_rules_file_without_the_spike_alerts(tmp_path: Path) -> None:
    other = tmp_path / "other.yml"
    other.write_text("groups:\n  - name: x\n    rules: []\n")
    with pytest.raises(ConfigError, match="NegativeSentimentSpike"):
        render_rules(Settings(), source=other)


@needs_promtool
def test_promtool_checks_shipped_rules() -> None:
    proc = promtool("check", "rules", RULES_FILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 8 rules found" in proc.stdout


@needs_promtool
def test_promtool_unit_tests_pass_on_shipped_rules() -> None:
    tests = sorted((ALERTS_DIR / "tests").glob("*.yml"))
    assert tests
    proc = promtool("test", "rules", *tests)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_promtool
def test_promtool_unit_tests_pass_on_default_rendered_rules(tmp_path: Path) -> None:
    # Same layout as the package (tests refer to ../rules/sentimon.yml).
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "sentimon.yml").write_text(render_rules(Settings()))
    shutil.copytree(ALERTS_DIR / "tests", tmp_path / "tests")
    assert promtool("check", "rules", tmp_path / "rules" / "sentimon.yml").returncode == 0
    proc = promtool("test", "rules", *sorted((tmp_path / "tests").glob("*.yml")))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_promtool
def test_scaled_down_spike_for_is_what_prometheus_evaluates(tmp_path: Path) -> None:
    settings = Settings(alerts={"spike_for": "20s", "dashboard_url": "http://grafana:3000/d/t"})
    (tmp_path / "rules.yml").write_text(render_rules(settings))
    assert promtool("check", "rules", tmp_path / "rules.yml").returncode == 0
    summary = (
        "Negative sentiment surge on topic Macro: n/a negative records in the short window "
        "where n/a were expected at this time of day (negative share 50% vs 10% usually, "
        "over 80 records)."
    )
    description = rules_by_name(render_rules(settings))["NegativeSentimentSpike"]
    description = description["annotations"]["description"].replace("{{ $labels.topic }}", "Macro")
    (tmp_path / "test.yml").write_text(textwrap.dedent(f"""\
        rule_files: [rules.yml]
        evaluation_interval: 10s
        tests:
          - interval: 10s
            input_series:
              - series: 'sentimon_topic_spike{{topic="Macro"}}'
                values: '0 1x12'
              - series: 'sentimon_topic_negative_share{{topic="Macro",window="short"}}'
                values: '0.5x12'
              - series: 'sentimon_topic_negative_share{{topic="Macro",window="baseline"}}'
                values: '0.1x12'
              - series: 'sentimon_topic_volume{{topic="Macro",window="short"}}'
                values: '80x12'
              - series: 'sentimon_topic_spike_zscore{{topic="Macro"}}'
                values: '6x12'
            alert_rule_test:
              - eval_time: 20s
                alertname: NegativeSentimentSpike
                exp_alerts: []
              - eval_time: 30s
                alertname: NegativeSentimentSpike
                exp_alerts:
                  - exp_labels: {{severity: warning, topic: Macro}}
                    exp_annotations:
                      summary: "{summary}"
                      description: "{description}"
                      dashboard_url: "http://grafana:3000/d/t?var-topic=Macro"
                      negative_share: "0.5000"
                      baseline_share: "0.1000"
                      volume: "80.0000"
                      zscore: "6.0000"
                      evidence: ""
                      threshold: ""
                      expected_negatives: ""
                      observed_negatives: ""
        """))
    proc = promtool("test", "rules", tmp_path / "test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The same series against the shipped 30s rule is still pending at 30s.
    shipped = (tmp_path / "test.yml").read_text().replace("rules.yml", str(RULES_FILE))
    (tmp_path / "shipped.yml").write_text(shipped)
    proc = promtool("test", "rules", tmp_path / "shipped.yml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "FAILED" in out and "got:[]" in out, out


@needs_promtool
def test_dashboard_link_of_a_topic_with_a_space_is_url_encoded(tmp_path: Path) -> None:
    rules = render_rules(Settings(alerts={"spike_for": "10s"}))
    (tmp_path / "rules.yml").write_text(rules)
    annotations = rules_by_name(rules)["NegativeSentimentSpike"]["annotations"]
    description = annotations["description"].replace("{{ $labels.topic }}", "Stock Movement")
    summary = ("Negative sentiment surge on topic Stock Movement: n/a negative records in the "
               "short window where n/a were expected at this time of day (negative share n/a "
               "vs n/a usually, over n/a records).")
    (tmp_path / "test.yml").write_text(textwrap.dedent(f"""\
        rule_files: [rules.yml]
        evaluation_interval: 10s
        tests:
          - interval: 10s
            input_series:
              - series: 'sentimon_topic_spike{{topic="Stock Movement"}}'
                values: '1x5'
            alert_rule_test:
              - eval_time: 20s
                alertname: NegativeSentimentSpike
                exp_alerts:
                  - exp_labels: {{severity: warning, topic: Stock Movement}}
                    exp_annotations:
                      summary: "{summary}"
                      description: "{description}"
                      dashboard_url: "http://127.0.0.1:3000/d/sentimon-topics?var-topic=Stock+Movement"
                      negative_share: ""
                      baseline_share: ""
                      volume: ""
                      zscore: ""
                      evidence: ""
                      threshold: ""
                      expected_negatives: ""
                      observed_negatives: ""
        """))
    proc = promtool("test", "rules", tmp_path / "test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_spike_for_may_be_zero_and_keep_firing_for_may_not() -> None:
    rules = rules_by_name(render_rules(Settings(alerts={"spike_for": "0s"})))
    assert rules["NegativeSentimentSpike"]["for"] == "0s"
    assert rules["TickerNegativeSpike"]["for"] == "0s"
    with pytest.raises(ConfigError, match=r"alerts\.spike_keep_firing_for"):
        render_rules(Settings(alerts={"spike_keep_firing_for": "0s"}))
