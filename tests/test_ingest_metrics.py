"""The scorer's metric names are exactly those of docs/contracts.md."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sentimon.ingest.message import REASONS
from sentimon.ingest.metrics import ScorerMetrics

CONTRACTS = Path(__file__).resolve().parents[1] / "docs" / "contracts.md"


def contract_metrics() -> dict[str, set[str]]:
    """Scorer metric name -> label names, as listed in the contracts page."""
    text = CONTRACTS.read_text(encoding="utf-8")
    section = text[text.index("Scorer (`sentimon score`"):text.index("Monitor (`sentimon monitor`")]
    out = {}
    for name, labels in re.findall(r"`(sentimon_[a-z_]+)(?:\{([a-z_,]*)\})?`", section):
        out[name] = set(filter(None, labels.split(",")))
    return out


def exposed() -> dict[str, set[str]]:
    m = ScorerMetrics()
    m.consumed.labels(topic="t").inc()
    m.scored.labels(topic="t").inc()
    m.batch_size.observe(3)
    m.batch_tokens.observe(90)
    m.inference_seconds.observe(0.01)
    m.end_to_end_seconds.observe(1.0)
    m.set_lag({("t", 0): 5})
    m.model_info.labels(name="n", version="v", provider="p", variant="int8").set(1)
    out: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(generate_latest(m.registry).decode()):
        for s in fam.samples:
            if s.name.endswith(("_created", "_bucket", "_count", "_sum")):
                continue
            out.setdefault(s.name, set()).update(s.labels)
    hist = {f.name for f in text_string_to_metric_families(generate_latest(m.registry).decode())
            if f.type == "histogram"}
    out.update({h: set() for h in hist})
    return out


def test_names_and_labels_match_the_contract() -> None:
    want = contract_metrics()
    assert len(want) == 14, want
    assert exposed() == want


def test_every_reason_is_exposed_from_the_start() -> None:
    text = generate_latest(ScorerMetrics().registry).decode()
    for reason in REASONS:
        assert f'sentimon_scorer_records_dead_lettered_total{{reason="{reason}"}} 0.0' in text


def test_lag_series_follow_the_assignment() -> None:
    m = ScorerMetrics()
    m.set_lag({("a", 0): 3, ("a", 1): 0})
    m.set_lag({("a", 1): 2})
    text = generate_latest(m.registry).decode()
    assert 'partition="0"' not in text
    assert 'sentimon_scorer_consumer_lag{partition="1",topic="a"} 2.0' in text
