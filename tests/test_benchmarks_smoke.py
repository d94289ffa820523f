"""Smoke runs of the benchmark scripts on tiny inputs: they run to the end and print their figures.

Benchmarks are not tests; these only keep the scripts working. Real figures: docs/benchmarks.md.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA_DIR, REPO


def _run(args: list[str], *, timeout_s: float) -> str:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout_s, env=None)
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(autouse=True)
def _data() -> None:
    if not DATA_DIR.is_dir():
        pytest.fail(f"benchmark data not found at {DATA_DIR}; set SENTIMON_DATA_DIR")


def test_model_bench_prints_its_figures(tmp_path: Path) -> None:
    out_json = tmp_path / "model.json"
    out = _run(["benchmarks.model_bench", "--n", "40", "--repeats", "1", "--batch-sizes", "1,16",
                "--json-out", str(out_json)], timeout_s=240)
    assert "seq/s" in out and "x baseline" in out and "tokenizer only" in out
    doc = json.loads(out_json.read_text())
    assert doc["n_texts"] == 40
    int8 = {(r["batch_size"], r["sorted"]): r for r in doc["rows"] if r["variant"] == "int8"}
    assert set(int8) >= {(1, "n/a"), (16, "yes"), (16, "no"), ("256 chunks", "one run")}
    assert all(r["seq_per_s"] > 0 for r in int8.values())
    if doc["baseline"] is not None:
        assert doc["baseline"]["seq_per_s"] > 0 and int8[(16, "yes")]["x_baseline"] > 0
    assert doc["machine"]["nproc"] >= 1


def test_model_bench_compare_dir_prints_the_ratio(tmp_path: Path) -> None:
    # The same release on both sides: the ratio only measures noise, but must be a number.
    out_json = tmp_path / "compare.json"
    release = REPO / "model" / "release"
    out = _run(["benchmarks.model_bench", "--n", "32", "--repeats", "2", "--batch-sizes", "1,64",
                "--skip-baseline", "--fp32-dir", str(tmp_path / "none"), "--train-dir",
                str(tmp_path / "none"), "--release-dir", str(release), "--compare-dir", str(release),
                "--json-out", str(out_json)], timeout_s=240)
    assert "new/old" in out and "geometric mean" in out
    compare = json.loads(out_json.read_text())["compare"]
    assert compare["dir"] == str(release) and len(compare["pairs"]) == len(compare["rows"]) == 5
    for ratio in (compare["ratio_default_batch"], compare["geomean_ratio"],
                  *(p["ratio"] for p in compare["pairs"])):
        assert math.isfinite(ratio) and ratio > 0
    # Interleaved: both sides were timed every repeat.
    assert all(len(r["seconds"]) == 2 for r in compare["rows"])


@pytest.mark.integration
def test_e2e_bench_prints_its_figures(tmp_path: Path) -> None:
    out_json = tmp_path / "e2e.json"
    out = _run(["benchmarks.e2e_bench", "--n", "200", "--processes", "1", "--paced-s", "2",
                "--model-n", "200", "--model-repeats", "1", "--json-out", str(out_json)], timeout_s=300)
    assert "msg/s" in out and "p99" in out and "target e2e_over_model" in out
    doc = json.loads(out_json.read_text())
    backlog, paced = doc["runs"]
    assert backlog["scored"] == 200 and backlog["unique_ids"] == 200 and backlog["dead_letters"] == 0
    assert backlog["msg_per_s"] > 0 and backlog["peak_rss_mb"] > 0
    assert paced["scored"] == paced["sent"] >= 1
    assert doc["model_level"]["seq_per_s"] > 0


def test_spin_bench_prints_its_figures(tmp_path: Path) -> None:
    out_json = tmp_path / "spin.json"
    out = _run(["benchmarks.spin_bench", "--n", "24", "--repeats", "1", "--patterns", "8:5",
                "--json-out", str(out_json)], timeout_s=240)
    assert "CPU ms/msg" in out and "x spinning on" in out
    doc = json.loads(out_json.read_text())
    assert {r["spin"] for r in doc["rows"]} == {"on", "off"}
    assert all(r["cpu_ms_per_msg"] > 0 and r["call_p50_ms"] > 0 for r in doc["rows"])


def test_op_profile_prints_its_figures(tmp_path: Path) -> None:
    out_json = tmp_path / "ops.json"
    out = _run(["benchmarks.op_profile", "--n", "24", "--batch-size", "8", "--json-out", str(out_json)],
               timeout_s=240)
    assert "share of kernels" in out and "inside ONNX Runtime runs" in out
    doc = json.loads(out_json.read_text())
    assert doc["kernels_s"] > 0 and 0 < doc["session_s"] <= doc["predict_wall_s"]
    assert sum(r["share"] for r in doc["by_op"]) == pytest.approx(1.0)
    assert any(r["op"] == "QAttention" for r in doc["by_op"])  # the int8 release is quantized


@pytest.mark.training
def test_base_compare_prints_its_figures(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out_json = tmp_path / "bases.json"
    args = ["benchmarks.base_compare", "--base", "minilm=default", "--max-steps", "2",
            "--limit", "120", "--eval-limit", "40", "--n", "24", "--repeats", "1",
            "--work", str(tmp_path / "work"), "--no-progress", "--json-out", str(out_json)]
    out = _run(args, timeout_s=420)
    assert "seq/s" in out and "speed x" in out
    (row,) = json.loads(out_json.read_text())["rows"]
    assert row["steps"] == 2 and row["encoder"] == "bert L6 H384" and row["int8_speed_x"] == 1.0
    for key in ("fp32_topic_acc", "int8_topic_acc", "fp32_sent_acc", "int8_sent_acc"):
        assert 0.0 <= row[key] <= 1.0
    assert row["fp32_seq_s"] > 0 and row["int8_seq_s"] > 0 and row["int8_mb"] < row["fp32_mb"]
    # A second run reuses the finished steps; another configuration in the same place is refused.
    assert "reusing the training run" in _run(args, timeout_s=300)
    proc = subprocess.run([sys.executable, "-m", *args[:4], "3", *args[5:]], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "another configuration" in proc.stderr


def test_scorer_bench_prints_its_figures(tmp_path: Path) -> None:
    out_json = tmp_path / "scorer.json"
    out = _run(["benchmarks.scorer_bench", "--n", "48", "--sizes", "16", "--repeats", "1",
                "--cache-n", "64", "--cache-sizes", "100,0", "--json-out", str(out_json)], timeout_s=240)
    assert "buckets/" in out and "hit rate" in out and "outside the model" in out
    doc = json.loads(out_json.read_text())
    from sentimon.ingest.scorer import RUN_OVERHEAD_TOKENS

    assert {r["path"] for r in doc["run_plans"]} == {"old", "fixed", f"buckets/{RUN_OVERHEAD_TOKENS}"}
    assert all(r["seq_per_s"] > 0 for r in doc["run_plans"])
    assert 0 < doc["cache_hit_rates"][0]["hit_rate"] <= doc["cache_hit_rates"][1]["hit_rate"] < 1
    assert doc["cache_memory"]["estimate_bytes"] > 0


def test_bound_bench_prints_its_figures(tmp_path: Path) -> None:
    out_json = tmp_path / "bound.json"
    out = _run(["benchmarks.bound_bench", "--n", "32", "--repeats", "1", "--agreement-n", "32",
                "--json-out", str(out_json)], timeout_s=300)
    assert "of the bound" in out and "GMAC/s" in out
    doc = json.loads(out_json.read_text())
    assert doc["macs_per_token"]["int8"] > doc["macs_per_token"]["fp32"] > 0
    assert doc["macs_per_token"]["layers"] == 6 and doc["bound_texts_per_s"] > 0
    shipped = doc["variants"][0]
    assert shipped["x_shipped"] == pytest.approx(1) and shipped["agree_topic"] == 1
    assert shipped["of_bound"] > 0
    assert len(doc["agreement_by_run_plan"]) == 3


def test_static_int8_prints_each_variant_against_the_shipped_model(tmp_path: Path) -> None:
    out_json = tmp_path / "static.json"
    out = _run(["benchmarks.static_int8", "--n", "32", "--calib-n", "8", "--agreement-n", "32",
                "--repeats", "1", "--variants", "qdq-minmax-dynamic,qoperator-minmax-keep",
                "--json-out", str(out_json)], timeout_s=300)
    assert "x shipped" in out and "topic agree" in out
    rows = json.loads(out_json.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["dynamic (shipped)", "qdq-minmax-dynamic",
                                            "qoperator-minmax-keep"]
    assert rows[0]["x_shipped"] == pytest.approx(1)
    for r in rows:
        assert r["seq_s"] > 0 and 0.5 < r["topic_agreement"] <= 1 and 0.5 < r["sentiment_agreement"] <= 1
    # Dynamic embeddings: every variant is int8-sized, far below the 90 MB fp32 graph.
    assert all(r["mb"] < 40 for r in rows)


def test_alert_quality_prints_recall_and_delay_against_the_oracle(tmp_path: Path) -> None:
    out_json = tmp_path / "quality.json"
    out = _run(["benchmarks.alert_quality", "--rates", "17", "--topics", "Earnings", "--sizes", "40",
                "--markdown", "--json-out", str(out_json)], timeout_s=300)
    assert "recall / oracle" in out
    (run,) = json.loads(out_json.read_text())["runs"]
    assert run["records"] > 0 and run["days"] > 1 and set(run["false_alerts"]) >= {"topic", "ticker"}
    pooled = run["pooled"]
    assert pooled["bursts"] > 0  # 40 texts: both detectors catch some
    assert 0 < pooled["caught"] <= pooled["bursts"] and 0 < pooled["oracle_caught"] <= pooled["bursts"]
    assert pooled["delay_median_s"] > 0 and pooled["oracle_delay_median_s"] > 0


def test_delay_budget_prints_each_step(tmp_path: Path) -> None:
    out_json = tmp_path / "budget.json"
    out = _run(["benchmarks.delay_budget", "--topics", "Earnings", "--sizes", "40",
                "--json-out", str(out_json)], timeout_s=240)
    assert "| size | topic | oracle | size unknown | bound threshold | monitor |" in out
    row = json.loads(out_json.read_text())["rows"][0]
    assert row["topic"] == "Earnings" and row["bursts"] > 0
    for step in ("oracle", "size unknown", "bound threshold", "monitor"):
        assert 0 < row[step]["caught"] <= row["bursts"]  # 40 texts: every step catches some
        assert len(row[step]["delays_s"]) == row[step]["caught"]
    # The simulated thresholds sit below the bound the monitor uses.
    t = row["thresholds"]
    assert t["oracle"] < t["bound threshold"] and t["size unknown"] <= t["bound threshold"] + 0.3


def test_matched_false_alerts_prints_both_at_the_same_rate(tmp_path: Path) -> None:
    out_json = tmp_path / "matched.json"
    out = _run(["benchmarks.matched_false_alerts", "--topics", "Earnings", "--sizes", "40",
                "--json-out", str(out_json)], timeout_s=300)
    assert "40 texts, <= 1 a day" in out and "oracle per topic" in out
    run = json.loads(out_json.read_text())["runs"][0]
    # Both detectors' thresholds rose until the clean stream gave at most one a day.
    assert run["ours_false_alerts_per_day_fitted"] <= 1.0
    assert run["oracle_false_alerts_per_day_fitted"] <= 1.0
    assert run["oracle_shift"] >= 0 and run["ours_shift"] >= 0
    topic = run["topics"][0]
    assert topic["topic"] == "Earnings" and topic["bursts"] > 0
    for kind in ("ours", "oracle", "ours_fitted", "oracle_fitted", "oracle_per_topic"):
        assert len(topic[kind]) == topic["bursts"]
        assert any(d is not None for d in topic[kind])  # 40 texts: every variant catches some
