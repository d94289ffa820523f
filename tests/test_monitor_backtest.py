"""Backtests: the rule state machine, matching against truth, scenarios, the oracle, the CLI."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from sentimon.monitor import oracle, scenario
from sentimon.monitor.backtest import (
    AlertRule,
    BurstResult,
    Episode,
    false_alerts,
    first_in,
    match,
    summarize,
)
from sentimon.monitor.detector import log_sr
from sentimon.monitor.scenario import Burst

T0 = scenario.EPOCH
DAY_S = 86_400.0


def test_rule_fires_after_for_and_keeps_firing() -> None:
    rule = AlertRule(for_s=30, keep_s=60)
    assert rule.step(0, True) is None and rule.fired is None  # pending
    assert rule.step(15, True) is None and rule.fired is None
    assert rule.step(30, True) is None and rule.fired == 30
    assert rule.step(45, False) is None  # keeps firing
    assert rule.step(60, True) is None  # back: one alert
    for t in (75, 90, 105, 120):  # keep_firing_for counts from the first quiet evaluation
        assert rule.step(t, False) is None
    assert rule.step(135, False) == (30, 135)


def test_rule_with_for_zero_fires_at_the_first_alarm() -> None:
    rule = AlertRule(for_s=0, keep_s=30)
    assert rule.step(0, False) is None and rule.fired is None
    assert rule.step(15, True) is None and rule.fired == 15
    assert rule.step(30, False) is None  # a one-evaluation blip is one alert, kept 30 s
    assert rule.step(45, False) is None
    assert rule.step(60, False) == (15, 60)


def test_rule_without_keep_resolves_at_once_and_a_blip_never_fires() -> None:
    rule = AlertRule(for_s=30)
    assert rule.step(0, True) is None
    assert rule.step(15, False) is None and rule.fired is None
    rule.step(30, True)
    rule.step(45, True)
    rule.step(60, True)
    assert rule.step(75, False) == (60, 75)


def test_matching_and_false_alerts() -> None:
    bursts = [Burst("Macro", T0, T0 + 600, 20, 19), Burst("Macro", T0 + 9000, T0 + 9600, 20, 19)]
    episodes = [
        Episode(("topic", "Macro"), T0 + 200, T0 + 900),  # catches the first
        Episode(("market", ""), T0 + 300, None),  # the market turned with it: explained
        Episode(("topic", "Macro"), T0 + 5000, T0 + 5100),  # nothing there: false
        Episode(("ticker", "AAPL"), T0 + 100, T0 + 200),  # false
        Episode(("topic", "Macro"), T0 + 9600 + 601, None),  # after end + grace: missed
    ]
    assert match(episodes, bursts, grace_s=600) == [T0 + 200, None]
    assert false_alerts(episodes, bursts, grace_s=600) == {"topic": 2, "ticker": 1, "market": 0}
    s = summarize([BurstResult(bursts[0], T0 + 200, T0 + 100),
                   BurstResult(bursts[1], None, T0 + 9100)])
    assert (s.caught, s.oracle_caught, s.recall, s.recall_ratio) == (1, 2, 0.5, 0.5)
    assert s.delay_median_s == 200 and s.delay_ratio == 2.0


@pytest.fixture(scope="module")
def small() -> list:
    """One day of real StockNet tweets, one in 60, at about one a minute."""
    pool = scenario.load_pool("stocknet").iloc[::60].reset_index(drop=True)
    return scenario.fold(pool, rate_per_min=1.0)


def test_fold_keeps_time_of_day_and_reaches_the_rate(small: list) -> None:
    ts = np.array([r.ts for r in small])
    days = (ts.max() - ts.min()) / 86400
    assert 0.9 < days <= 1.0 + 1e-9
    assert len(small) / (days * 1440) == pytest.approx(1.0, rel=0.25)
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(small))
    # US market hours (13-21 UTC) carry more tweets than the night, as in the source.
    hours = (ts % 86400) // 3600
    assert (hours >= 13).sum() > 2 * (hours < 8).sum()


def test_scenario_records_carry_the_identity_of_their_text(small: list) -> None:
    """The StockNet pool has no text but its key; the burst pool's keys come from its texts."""
    from sentimon.monitor.records import text_key

    assert all(len(r.text_key) == 16 for r in small)
    assert len({r.text_key for r in small}) < len(small)  # retweets and bot lines repeat
    pool = scenario.load_pool("bearish")
    records, _ = scenario.inject(small, pool, topic="Stock Movement", extra=3, every_s=4 * 3600,
                                 warmup_s=8 * 3600)
    texts = dict(zip(pool.id, pool.text, strict=True))
    injected = [r for r in records if r.id.startswith("burst-")]
    assert injected and all(r.text_key == text_key(texts[r.id.split("-", 3)[3]]) for r in injected)
    # A burst larger than the topic's pool repeats texts, and says how many are distinct.
    n_pool = int((pool.topic == "Earnings").sum())
    _, bursts = scenario.inject(small, pool, topic="Earnings", extra=n_pool + 4,
                                every_s=4 * 3600, warmup_s=8 * 3600)
    assert bursts and all(b.distinct <= n_pool < b.texts for b in bursts)
    _, bursts = scenario.inject(small, pool, topic="Stock Movement", extra=5, every_s=4 * 3600,
                                warmup_s=8 * 3600)
    assert all(b.distinct == b.texts == 5 for b in bursts)


def test_null_twin_keeps_times_and_the_hourly_mix_but_moves_contents(small: list) -> None:
    from collections import Counter

    twin = scenario.null_twin(small, seed=3)
    assert [(r.id, r.ts) for r in twin] == [(r.id, r.ts) for r in small]

    def mix(records: list) -> Counter:
        return Counter((int(r.ts % 86400 // 3600), r.topic, r.p_negative) for r in records)

    assert mix(twin) == mix(small)
    moved = sum(a.topic != b.topic or a.p_negative != b.p_negative for a, b in zip(twin, small, strict=True))
    assert moved > len(small) // 3
    assert scenario.null_twin(small, seed=3) == twin  # seeded


def test_inject_sizes_bursts_by_the_topic_share(small: list) -> None:
    bursts_pool = scenario.load_pool("bearish")
    topic = "Stock Movement"
    records, bursts = scenario.inject(small, bursts_pool, topic=topic, extra=7, every_s=4 * 3600,
                                      warmup_s=8 * 3600)
    assert len(records) == len(small) + 7 * len(bursts)
    assert len(bursts) == 4 and all(b.texts == 7 and b.end - b.start == 600 for b in bursts)
    assert all(b.start >= small[0].ts + 8 * 3600 for b in bursts)
    injected = [r for r in records if r.id.startswith("burst-")]
    assert {r.topic for r in injected} == {topic} and not any(r.tickers for r in injected)
    doubled, _ = scenario.inject(small, bursts_pool, topic=topic, multiple=2.0, every_s=4 * 3600,
                                 warmup_s=8 * 3600)
    with pytest.raises(ValueError, match="cannot multiply"):
        scenario.inject(small, bursts_pool, topic=topic, multiple=10.0)
    with pytest.raises(ValueError, match="no text"):
        scenario.inject(small, bursts_pool, topic="Nope", extra=3)
    assert len(doubled) > len(small)


def test_replay_skips_quiet_stretches_with_the_same_alerts(small: list) -> None:
    """Two bursty stretches of stream three days apart: the same alerts with and without
    the skip, a NaN in the trace where it jumped, and far fewer evaluations."""
    from dataclasses import replace

    from sentimon.config import MonitorSettings
    from sentimon.monitor.backtest import replay

    m = MonitorSettings(min_history_s=3600)
    first, _ = scenario.inject(small, scenario.load_pool("bearish"), topic="Stock Movement",
                               extra=25, every_s=4 * 3600, warmup_s=6 * 3600)
    later = [replace(r, id=f"{r.id}-later", ts=r.ts + 3 * 86_400.0)
             for r in first[: len(first) // 2]]
    key = ("topic", "Stock Movement")
    fast, slow = (replay(first + later, settings=m, for_s=30, keep_s=600, keys=[key],
                         trace=[key], skip_quiet=skip) for skip in (True, False))
    assert fast.episodes == slow.episodes
    assert len(fast.episodes) >= 2  # not vacuous
    assert any(e.fired > later[0].ts for e in fast.episodes)  # alerts after the gap, too
    assert len(fast.trace_times) < len(slow.trace_times) * 0.6
    assert any(math.isnan(v) for v in fast.trace[key])


def test_replay_says_when_the_detector_armed(small: list) -> None:
    """No series can alarm before ``min_history_s`` of history lies before the detection
    horizon; the replay records when that was, and a burst that began earlier is counted
    as one no setting can catch in time."""
    from sentimon.config import MonitorSettings
    from sentimon.monitor.backtest import TopicReport, replay, summarize

    m = MonitorSettings(min_history_s=3600)  # the horizon is an hour too
    key = ("topic", "Stock Movement")
    run = replay(small[:600], settings=m, for_s=30, keys=[key])
    assert run.armed is not None
    # (to the baseline's slots: the first, partly observed, counts as observed)
    slot = m.baseline_slot_s
    assert 2 * 3600 - slot <= run.armed - run.start <= 2 * 3600 + 2 * slot
    bursts = [Burst("Stock Movement", t, t + 600, 10, 10)
              for t in (run.start + 3600, run.armed - 60, run.armed)]
    report = TopicReport("Stock Movement", "high", [], summarize([]), None, 0, bursts, run)
    assert report.unarmed == 2


def test_oracle_threshold_meets_its_false_alarm_rate() -> None:
    mu0 = np.full(5760, 0.02)
    h = oracle.calibrate(mu0, 0.2, alarms_per_day=0.5, days=300)
    lower = oracle.calibrate(mu0, 0.2, alarms_per_day=5.0, days=300)
    assert lower < h
    o = oracle.Oracle(start=T0, bucket_s=15, mu0=mu0, extra=0.2, threshold=h)
    rng = np.random.default_rng(1)
    quiet = rng.poisson(0.02, size=5760 * 20).astype(float)
    assert len(o.alarms(quiet)) / 20 < 1.5  # about 0.5 a day
    burst = quiet.copy()
    burst[1000:1040] += rng.poisson(0.2, size=40)
    assert any(T0 + 1000 * 15 <= t <= T0 + 1040 * 15 for t in o.alarms(burst))


def test_oracle_alerts_go_through_the_rule_like_the_monitors() -> None:
    """A crossing that falls back at once is an alarm but no alert; a sustained one fires
    ``for:`` after it crossed, once, and stays one alert while it holds."""
    mu0 = np.full(5760, 0.001)
    # A burst expected to add one negative a bucket: a bucket with one negative is +5.9
    # nats, one without -1, so a lone negative crosses 5.5 and falls back a bucket later.
    o = oracle.Oracle(start=T0, bucket_s=15, mu0=mu0, extra=1.0, threshold=5.5)
    blip = np.zeros(400)
    blip[100] = 1
    assert len(o.alarms(blip)) == 1
    assert o.alerts(blip, for_s=30, keep_s=600) == []
    assert o.alerts(blip, for_s=0, keep_s=600) == [T0 + 101 * 15]
    burst = np.zeros(400)
    burst[100:140] = 1  # a negative every bucket for 10 minutes
    assert len(o.alarms(burst)) > 1  # the reset CUSUM alarms again and again
    assert o.alerts(burst, for_s=30, keep_s=600) == [T0 + 101 * 15 + 30]


def test_mixture_oracle_threshold_meets_its_false_alarm_rate() -> None:
    """The size-blind oracle: simulated threshold within the Shiryaev-Roberts bound, its
    false alarms near the rate asked on fresh data, and a burst caught later than by the
    oracle that knows its size."""
    mu0 = np.full(5760, 0.02)
    rises = (1.5, 2.0, 4.0, 8.0, 16.0, 32.0)
    h = oracle.calibrate_mixture(mu0, rises, alarms_per_day=0.5, days=200)
    # log A for one series at 0.5 a day: the bound holds for any baseline, so it is higher.
    assert 5.0 < h <= math.log(5760 / 0.5) + 0.3
    blind = oracle.MixtureOracle(start=T0, bucket_s=15, mu0=mu0, rises=rises, threshold=h)
    rng = np.random.default_rng(2)
    quiet = rng.poisson(0.02, size=5760 * 20).astype(float)
    assert 0 < len(blind.alarms(quiet)) / 20 < 1.5  # about 0.5 a day
    known = oracle.Oracle(start=T0, bucket_s=15, mu0=mu0, extra=0.2,
                          threshold=oracle.calibrate(mu0, 0.2, alarms_per_day=0.5, days=200))
    burst = quiet.copy()
    burst[1000:1040] += rng.poisson(0.2, size=40)
    window = (T0 + 1000 * 15, T0 + 1060 * 15)
    t_blind = first_in(blind.alarms(burst), *window)
    t_known = first_in(known.alarms(burst), *window)
    assert t_blind is not None and t_known is not None and t_known <= t_blind
    # Unreset, the path is the monitor's window-limited statistic on the true baseline.
    windowed = blind.path(burst[:1200], reset=False)
    for b in (0, 239, 240, 1039):
        lo = max(0, b - blind.horizon + 1)
        assert windowed[b] == pytest.approx(log_sr(burst[lo:b + 1], mu0[lo:b + 1], rises=rises)[0])
    # Through the rule: one alert for the burst, ``for:`` or more after the first alarm.
    fired = [t for t in blind.alerts(burst, for_s=30, keep_s=600) if window[0] <= t <= window[1]]
    assert len(fired) == 1 and fired[0] >= t_blind + 30


@pytest.fixture(scope="module")
def bursty(small: list) -> tuple[list, list[Burst]]:
    """The small stream with bursts of 25 negative texts: alerts at every budget tried."""
    return scenario.inject(small, scenario.load_pool("bearish"), topic="Stock Movement",
                           extra=25, every_s=3 * 3600, warmup_s=4 * 3600)


def test_refire_gives_the_alerts_of_a_replay_at_another_budget(
        bursty: tuple[list, list[Burst]]) -> None:
    """One replay answers for every budget: re-firing at a shifted threshold gives the same
    episodes as replaying with the budget that shift stands for, lower and higher."""
    from sentimon.config import MonitorSettings
    from sentimon.monitor.backtest import refire, replay

    records, _ = bursty
    m = MonitorSettings(min_history_s=3600)
    base = replay(records, settings=m, for_s=30, keep_s=600)
    assert refire(base, {}, for_s=30, keep_s=600) == base.episodes
    for topics, tickers in ((0.25, 0.5), (4.0, 2.0), (0.01, 1.0)):
        at = replay(records, settings=m.model_copy(update={
            "false_alerts_per_day_topics": topics, "false_alerts_per_day_tickers": tickers}),
            for_s=30, keep_s=600)
        shifted = refire(base, {"topics": math.log(1 / topics), "tickers": math.log(1 / tickers)},
                         for_s=30, keep_s=600)
        assert shifted == at.episodes, (topics, tickers)
        assert at.episodes != base.episodes  # not vacuous: the budget changes the alerts
    with pytest.raises(ValueError, match="new replay"):
        refire(base, {"topics": base.min_shift - 0.1}, for_s=30, keep_s=600)
    old = replay(records[:200], settings=m, for_s=30, keep_s=600, legacy=True)
    with pytest.raises(ValueError, match="z statistic"):
        refire(old, {}, for_s=30, keep_s=600)


def test_fit_budgets_finds_the_largest_budget_that_holds_the_target(
        bursty: tuple[list, list[Burst]]) -> None:
    from sentimon.config import MonitorSettings
    from sentimon.monitor.backtest import false_alerts, fit_budgets, replay

    records, bursts = bursty
    m = MonitorSettings(min_history_s=3600)
    base = replay(records, settings=m, for_s=30, keep_s=600)
    configured = {"topics": 1.0, "tickers": 1.0}

    def topic_fa(budget: float) -> float:
        run = replay(records, settings=m.model_copy(
            update={"false_alerts_per_day_topics": budget}), for_s=30, keep_s=600)
        fa = false_alerts(run.episodes, bursts, grace_s=600)
        return (fa["topic"] + fa["market"]) / run.days

    # Stricter (1 a day) and looser (3 a day) than the configured budget gives here (2).
    for target in (1.0, 3.0):
        fit = fit_budgets(base, target=target, configured=configured, for_s=30, keep_s=600,
                          truth=bursts, grace_s=600)["topics"]
        assert fit.false_alerts_per_day <= target
        assert (fit.fitted < 1.0) == (fit.configured_false_alerts_per_day > target)
        # A replay at the fitted budget agrees; a budget a step (and the rounding) larger
        # does not hold the target: the fit is the largest, not just any small one.
        assert topic_fa(fit.fitted) <= target < topic_fa(fit.fitted * math.exp(0.05) * 1.1)
    # Without the truth the bursts count as false and no budget hides them: the fit says so.
    blind = fit_budgets(base, target=1.0, configured=configured, for_s=30, keep_s=600)
    assert blind["topics"].false_alerts_per_day > 1.0 == blind["topics"].target
    assert blind["topics"].holdout_false_alerts_per_day is None  # a one-day history


def test_fit_budgets_checks_a_fit_on_the_first_half_against_the_second() -> None:
    """A four-day history whose waves differ between its halves: the whole-history fit holds
    the target, and the holdout says what a fit on the first half gives on the second."""
    from sentimon.monitor.backtest import Replay, fit_budgets, refire

    bucket = 15.0
    days = 4
    times = [i * bucket for i in range(int(days * DAY_S / bucket))]
    margins: list[tuple[int, float]] = []
    # Excursions of 2 minutes: two in the first half (2.0, 5.0), three in the second.
    for day, peak in ((0.5, 2.0), (1.5, 5.0), (2.5, 1.0), (3.0, 3.0), (3.5, 6.0)):
        first = int(day * DAY_S / bucket)
        margins += [(i, peak) for i in range(first, first + 8)]
    out = Replay(start=0.0, end=days * DAY_S, bucket_s=bucket, episodes=[], eval_times=times,
                 margins={("topic", "A"): margins})
    assert len(refire(out, {}, for_s=30)) == 5
    fit = fit_budgets(out, target=0.5, configured={"topics": 1.0, "tickers": 1.0},
                      for_s=30)["topics"]
    # The whole history allows two alerts: thresholds above 3.0, below 5.0.
    assert fit.configured_false_alerts_per_day == pytest.approx(5 / 4, rel=1e-3)
    assert 3.0 < fit.shift <= 3.0 + 0.05 + math.log(1.1)
    assert fit.false_alerts_per_day == pytest.approx(2 / 4, rel=1e-3)
    # On the first half (one alert allowed) the fit sits above 2.0, where the second half
    # still has two (3.0 and 6.0): a day of waves more than the fit saw.
    assert fit.holdout_false_alerts_per_day == pytest.approx(2 / 2, rel=1e-3)
    assert not fit.at_limit
    # A target the history holds at every budget it can tell: the loosest, said to be a limit.
    loose = fit_budgets(out, target=5.0, configured={"topics": 1.0, "tickers": 1.0},
                        for_s=30)["topics"]
    assert loose.at_limit and loose.fitted == pytest.approx(20.0, rel=0.05)


def _write_scored(records: list, path: Path) -> None:
    from datetime import UTC, datetime

    with path.open("w") as fh:
        for r in records:
            p = r.p_negative
            fh.write(json.dumps({
                "id": r.id, "ts": datetime.fromtimestamp(r.ts, UTC).isoformat(),
                "kind": r.kind, "source": "scenario", "tickers": list(r.tickers),
                "topic": r.topic, "topic_prob": 0.9, "sentiment": r.sentiment,
                "sentiment_probs": {"negative": p, "neutral": 1 - p, "positive": 0.0},
                "score": r.score, "model": "scenario", "scored_at": "2026-01-01T00:00:00Z"}) + "\n")


def test_backtest_cli_end_to_end(small: list, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A scored-records file with a truth file, then injected bursts with the oracle and PNG."""
    from sentimon.cli import main

    # A one-day stream: alarms from an hour of history on, not the production day.
    monkeypatch.setenv("SENTIMON_MONITOR__MIN_HISTORY_S", "3600")

    records, bursts = scenario.inject(small, scenario.load_pool("bearish"),
                                      topic="Stock Movement", extra=25, every_s=4 * 3600,
                                      warmup_s=8 * 3600)
    stream, truth = tmp_path / "scored.jsonl", tmp_path / "truth.json"
    _write_scored(records, stream)
    truth.write_text(json.dumps([b.as_json() for b in bursts]))
    out = tmp_path / "truth-report.json"
    assert main(["backtest", str(stream), "--truth", str(truth), "--json-out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "false alerts a day" in printed and "truth:" in printed
    report = json.loads(out.read_text())
    assert report["truth"]["bursts"] == len(bursts)
    assert report["truth"]["caught"] >= len(bursts) - 1  # 25 negative texts in 10 minutes
    # The alerts themselves are printed and listed, those inside a truth surge marked.
    assert "alerts that would have fired" in printed
    explained = [a for a in report["alerts"] if a["explained"]]
    # (a market alert during a burst is explained by it too)
    assert "Stock Movement" in {a["name"] for a in explained} <= {"Stock Movement", ""}
    assert len(explained) >= report["truth"]["caught"]
    assert all(f"{a['fired']} .. " in printed for a in report["alerts"][:40])

    png, out2 = tmp_path / "sm.png", tmp_path / "inject.json"
    clean = tmp_path / "clean.jsonl"
    _write_scored(small, clean)
    assert main(["backtest", str(clean), "--inject", "Stock Movement", "--extra", "25",
                 "--every", "4h", "--warmup", "8h", "--png", str(png),
                 "--fit-false-alerts", "0.5", "--json-out", str(out2)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    doc = json.loads(out2.read_text())
    # The budgets fitted on the clean stream, as settings to copy, and the bursts at them.
    printed = capsys.readouterr().out
    for name in ("topics", "tickers"):
        fit = doc["fits"][name]
        assert f"SENTIMON_MONITOR__FALSE_ALERTS_PER_DAY_{name.upper()}={fit['fitted']:g}" in printed
        assert fit["false_alerts_per_day"] <= 0.5
    assert "at the fitted topic budget" in printed
    assert doc["fitted_pooled"]["bursts"] == doc["pooled"]["bursts"]
    assert doc["fitted_pooled"]["caught"] <= doc["pooled"]["caught"] or doc["fits"]["topics"][
        "shift"] < 0
    topics = doc["topics"]
    assert topics[0]["topic"] == "Stock Movement"
    s = topics[0]["summary"]
    assert s["oracle_caught"] is not None and s["caught"] >= 1
    assert topics[0]["oracle_threshold"] > 0
    assert topics[0]["began_before_armed"] == 0 and "began before the detector armed" not in printed


def test_backtest_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sentimon.cli import main

    assert main(["backtest", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["backtest", "--duration", "soon"]) == 2
    assert "not a duration" in capsys.readouterr().err
    bad = tmp_path / "truth.json"
    bad.write_text('[{"topic": "Macro"}]')
    with pytest.raises(SystemExit, match="truth"):
        main(["backtest", "--rate", "34", "--truth", str(bad)])


def test_backtest_cli_names_unreadable_texts_and_rows_without_a_time(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sentimon.cli import main

    no_text = tmp_path / "no_text.csv"
    no_text.write_text("ts,body\n2026-01-05T10:00:00Z,shares fall\n")
    with pytest.raises(SystemExit, match="no text column"):
        main(["backtest", str(no_text)])
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"ts": "2026-01-05T10:00:00Z", "text": "shares fall"}\n{oops\n')
    with pytest.raises(SystemExit, match=r"broken.jsonl:2: not JSON"):
        main(["backtest", str(broken)])
    # Rows a replay in event time cannot place are counted out loud, not dropped unseen.
    texts = tmp_path / "texts.csv"
    texts.write_text("ts,text\nyesterday-ish,banks slide\n2026-01-05T10:00:00Z,shares fall\n"
                     ",rates rise\n2026-01-05T10:01:00Z,oil drops\n")
    assert main(["backtest", str(texts), "--no-oracle"]) == 0
    assert "2 of 4 rows have no usable time" in capsys.readouterr().err


def test_backtest_cli_warns_about_dates_without_a_time(
        small: list, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A feed stamped with dates only (00:00:00 UTC) is named as such, not silently unwatched."""
    from dataclasses import replace

    from sentimon.cli import main

    dated = [replace(r, ts=float(r.ts // 86_400 * 86_400 + i // 40 * 86_400))
             for i, r in enumerate(small[:400])]
    stream = tmp_path / "dated.jsonl"
    _write_scored(dated, stream)
    assert main(["backtest", str(stream), "--no-oracle"]) == 0
    err = capsys.readouterr().err
    assert "100% of the records are stamped exactly 00:00:00 UTC" in err
    _write_scored(small[:400], stream)
    assert main(["backtest", str(stream), "--no-oracle"]) == 0
    assert "00:00:00" not in capsys.readouterr().err
