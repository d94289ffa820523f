"""Backtests: replay a stream in event time through the real detector and the rules' ``for:``.

:func:`replay` feeds records, in event-time order, to the monitor's own
:class:`~sentimon.monitor.aggregate.Aggregator`, evaluates the detector at the end of every
bucket (Prometheus evaluates the rules once per scrape interval, 15 s, the bucket width),
and applies the spike rules' ``for:`` exactly as Prometheus does: a series turns pending at
the first evaluation where it alarms and fires once it has alarmed for ``for_s`` without a
break; it resolves once it has not alarmed for ``keep_s`` (``keep_firing_for:``), so a
statistic hovering at its threshold gives one alert, not a flapping series of them. No Prometheus is needed (a
test checks the same series give the same alerts under ``promtool test rules``).

:func:`score` matches the alerts against known bursts: a burst is caught when its topic's
alert fires between its start and ``grace_s`` after its end; every other alert start is a
false alert (market alerts during any burst are not: the market did turn).
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from sentimon.config import MonitorSettings
from sentimon.monitor.aggregate import MARKET, Aggregator
from sentimon.monitor.detector import threshold as log_threshold
from sentimon.monitor.records import ScoredRecord
from sentimon.monitor.scenario import DAY, Burst
from sentimon.monitor.windows import Key


@dataclass(frozen=True)
class Episode:
    """One alert of one series: when it fired and when it resolved (None: still firing)."""

    key: Key
    fired: float
    resolved: float | None


@dataclass
class Replay:
    """What a replay saw: alert episodes, and the evidence of the traced series."""

    start: float
    end: float
    bucket_s: float
    episodes: list[Episode]
    trace_times: list[float] = field(default_factory=list)
    trace: dict[Key, list[float]] = field(default_factory=dict)
    thresholds: dict[Key, list[float]] = field(default_factory=dict)
    flags: dict[Key, list[bool]] = field(default_factory=dict)  # the spike gauge, 1 or 0
    repeats: int = 0  # records the evidence left out as copies of a text (monitor.repeat_window_s)
    #: Every evaluation's time, and per series (evaluation index, evidence - threshold) where
    #: the evidence came within ``MARGIN_FLOOR`` of its threshold: enough to re-fire the
    #: rules at any higher threshold (:func:`refire`) without replaying.
    eval_times: list[float] = field(default_factory=list)
    margins: dict[Key, list[tuple[int, float]]] = field(default_factory=dict)
    #: The lowest shift of every threshold that :func:`refire` can apply exactly.
    min_shift: float = -math.inf
    legacy: bool = False  # the z statistic: no evidence against a threshold to shift
    #: The first evaluation at which a series had a baseline: no alert can fire before it
    #: (``monitor.min_history_s`` of history before the detection horizon). None: never.
    armed: float | None = None

    @property
    def days(self) -> float:
        return max((self.end - self.start) / DAY, 1e-9)


#: How far below its threshold (nats) a series' evidence is still recorded for :func:`refire`:
#: a budget up to e**3 (20) times the configured one.
MARGIN_FLOOR = 3.0


class AlertRule:
    """Prometheus' alert state machine for one series (``for:``, ``keep_firing_for:``)."""

    __slots__ = ("fired", "for_s", "keep_s", "keep_since", "pending")

    def __init__(self, for_s: float, keep_s: float = 0.0) -> None:
        self.for_s = for_s
        self.keep_s = keep_s
        self.pending: float | None = None
        self.fired: float | None = None
        self.keep_since: float | None = None

    def step(self, t: float, active: bool) -> tuple[float, float] | None:
        """Advance to evaluation time ``t``; returns (fired, resolved) when an alert ends."""
        if active:
            self.keep_since = None
            if self.pending is None:
                self.pending = t
            if self.fired is None and t - self.pending >= self.for_s:
                self.fired = t
            return None
        if self.fired is not None and self.keep_s > 0:
            if self.keep_since is None:
                self.keep_since = t
            if t - self.keep_since < self.keep_s:
                return None
        ended = (self.fired, t) if self.fired is not None else None
        self.pending = self.fired = self.keep_since = None
        return ended


def replay(records: Iterable[ScoredRecord], *, settings: MonitorSettings, for_s: float,
           keep_s: float = 0.0, keys: Sequence[Key] | None = None, legacy: bool = False,
           trace: Sequence[Key] = (), skip_quiet: bool = True) -> Replay:
    """Replay ``records`` (sorted by event time) and return the alerts that would have fired.

    ``for_s`` and ``keep_s`` are the rules' ``for:`` and ``keep_firing_for:``.

    ``keys`` limits the evaluated series (all of them by default); ``legacy`` evaluates the
    z statistic of the short-window share instead of the detector; ``trace`` records the
    evidence of those series at every evaluation (for plots; a skipped quiet stretch shows
    as one NaN).

    ``skip_quiet`` leaves out what cannot alarm: a series without a record in the detection
    horizon (every term of its statistic is then at most 1, so ``log R <= log(horizon
    buckets)``, below every threshold), and the evaluations of a whole stretch without
    records once no rule is pending or firing. The alerts are the same, and a long sparse
    history (years of a few headlines a day) replays in seconds.
    """
    agg = Aggregator.from_settings(settings)
    bucket_s = agg.windows.bucket_s
    horizon_b = math.ceil(agg.detector.horizon_s / bucket_s)
    # Buckets after the last record until nothing can be pending or firing any more.
    settle_b = horizon_b + math.ceil((for_s + keep_s) / bucket_s) + 2
    # A series without a record in the horizon cannot alarm while every threshold exceeds
    # log(horizon buckets); thresholds only grow with the series, so one series bounds them.
    cfg = agg.detector
    lowest = min(log_threshold(false_alerts_per_day=f, n_series=1, bucket_s=bucket_s)
                 for f in (cfg.false_alerts_per_day_topics, cfg.false_alerts_per_day_tickers))
    skip = skip_quiet and not legacy and lowest > math.log(horizon_b)
    rules: dict[Key, AlertRule] = {}
    episodes: list[Episode] = []
    out = Replay(start=math.nan, end=math.nan, bucket_s=bucket_s, episodes=episodes,
                 legacy=legacy)
    # Thresholds shifted below log(horizon) would let a series without records alarm, and
    # the skipped stretches would then matter.
    out.min_shift = max(-MARGIN_FLOOR, math.log(horizon_b) - lowest) if skip else -MARGIN_FLOOR
    for key in trace:
        out.trace[key] = []
        out.thresholds[key] = []
        out.flags[key] = []

    def evaluate(t: float) -> None:
        if legacy:
            wanted = list(agg.windows) if keys is None else keys
            active = {k: agg.legacy(k).spike for k in wanted}
            if trace:
                out.trace_times.append(t)
                for k in trace:
                    z = agg.legacy(k)
                    out.trace[k].append(z.z)
                    out.thresholds[k].append(agg.rule.spike_z)
                    out.flags[k].append(z.spike)
        else:
            evaluated: Sequence[Key] | None = keys
            if skip:
                recent = agg.history.recent_series()
                evaluated = [k for k in (agg.history.series() if keys is None else keys)
                             if k in recent]
            found = agg.detect(evaluated)
            active = {k: d.alarm for k, d in found.items()}
            if out.armed is None and any(d.has_baseline for d in found.values()):
                out.armed = t
            index = len(out.eval_times)
            for k, d in found.items():
                margin = d.evidence - d.threshold
                if d.has_baseline and margin >= -MARGIN_FLOOR:
                    out.margins.setdefault(k, []).append((index, margin))
            if trace:
                out.trace_times.append(t)
                for k in trace:
                    d = found.get(k) or agg.detect([k])[k]
                    out.trace[k].append(d.evidence if d.has_baseline else math.nan)
                    out.thresholds[k].append(d.threshold)
                    out.flags[k].append(d.alarm)
        out.eval_times.append(t)
        for k in set(active) | set(rules):
            rule = rules.get(k)
            if rule is None:
                rule = rules[k] = AlertRule(for_s, keep_s)
            ended = rule.step(t, active.get(k, False))
            if ended is not None:
                episodes.append(Episode(k, *ended))

    def can_skip(quiet_buckets: int) -> bool:
        return skip and quiet_buckets > settle_b and not any(
            r.pending is not None or r.fired is not None for r in rules.values())

    current: int | None = None
    last = 0  # bucket of the last record
    for rec in records:
        b = math.floor(rec.ts / bucket_s)
        if current is None:
            current = b
            out.start = rec.ts
        while b > current:
            if b - current > 1 and can_skip(current - last):
                if trace:
                    out.trace_times.append((current + 1) * bucket_s)
                    for k in trace:
                        out.trace[k].append(math.nan)
                        out.thresholds[k].append(math.nan)
                        out.flags[k].append(False)
                current = b - 1
                agg.advance_to(current * bucket_s)
                continue
            evaluate((current + 1) * bucket_s)
            current += 1
            agg.advance_to(current * bucket_s)
        agg.add(rec)
        last = b
        out.end = rec.ts
    if current is not None:
        evaluate((current + 1) * bucket_s)
    out.repeats = agg.repeated
    for k, rule in rules.items():
        if rule.fired is not None:
            episodes.append(Episode(k, rule.fired, None))
    episodes.sort(key=lambda e: (e.fired, e.key))
    return out


#: Which budget a series' threshold comes from: topics and the market share one.
BUDGET_OF = {"topic": "topics", "market": "topics", "ticker": "tickers"}


def refire(out: Replay, shift: Mapping[str, float], *, for_s: float, keep_s: float = 0.0,
           budgets: Iterable[str] | None = None) -> list[Episode]:
    """The alerts ``out`` would have had with every threshold raised by ``shift`` nats.

    ``shift`` maps a budget ("topics", "tickers") to the nats added to its series'
    thresholds: ``log(F / F')`` for a budget ``F'`` instead of the replay's ``F``, since
    ``log A`` falls by the log of the budget. Exact (the same alerts as a replay at ``F'``)
    for shifts down to ``out.min_shift``; the detector's evidence does not depend on its
    threshold, so one replay answers for every budget. ``budgets`` limits the answer to
    the series of those budgets (all by default).
    """
    if out.legacy:
        raise ValueError("a replay of the z statistic has no threshold to shift")
    if any(s < out.min_shift for s in shift.values()):
        raise ValueError(f"a shift below {out.min_shift:.2f} nats needs a new replay")
    times = out.eval_times
    wanted = set(BUDGET_OF.values()) if budgets is None else set(budgets)
    episodes: list[Episode] = []
    for key, margins in out.margins.items():
        if BUDGET_OF[key[0]] not in wanted:
            continue
        s = shift.get(BUDGET_OF[key[0]], 0.0)
        active = [i for i, m in margins if m >= s]
        on = set(active)
        rule = AlertRule(for_s, keep_s)
        j = 0
        while j < len(active):
            i = active[j]
            while i < len(times):
                ended = rule.step(times[i], i in on)
                i += 1
                if ended is not None:
                    episodes.append(Episode(key, *ended))
                if rule.pending is None and rule.fired is None:
                    break
            j = bisect.bisect_left(active, i)
        if rule.fired is not None:
            episodes.append(Episode(key, rule.fired, None))
    episodes.sort(key=lambda e: (e.fired, e.key))
    return episodes


@dataclass(frozen=True)
class BudgetFit:
    """The false-alert budget that holds a target on one history, for one family of series."""

    budget: str  # "topics" or "tickers"
    target: float  # false alerts a day asked for
    configured: float  # monitor.false_alerts_per_day_<budget> of the replay
    fitted: float  # the budget to configure instead
    shift: float  # nats added to the family's thresholds
    false_alerts_per_day: float  # on the history at the fitted budget
    configured_false_alerts_per_day: float  # on the history at the configured budget
    #: Fitted on the history's first half alone, its second half gives this many a day:
    #: how well a fit carries to data it has not seen (real streams' waves come and go).
    holdout_false_alerts_per_day: float | None = None
    #: The fit stopped at the loosest budget the replay can tell (``MARGIN_FLOOR`` nats
    #: below the configured thresholds): any larger budget may hold as well.
    at_limit: bool = False


def fit_budgets(out: Replay, *, target: float, configured: Mapping[str, float], for_s: float,
                keep_s: float = 0.0, truth: Sequence[Burst] = (), grace_s: float = 600.0,
                step: float = 0.05, max_shift: float = 12.0) -> dict[str, BudgetFit]:
    """Per budget, the largest one that gives at most ``target`` false alerts a day on ``out``.

    The configured budget is a bound for streams whose records are independent given their
    baseline; real streams with retweet waves and bots exceed it. Fitting it on a clean
    history (one without the surges to be caught, or with them in ``truth``) gives the
    setting that holds the rate people asked for on that history. Thresholds rise in steps
    of ``step`` nats from the lowest the replay allows; the fitted budget is rounded down to
    two significant figures. Where even ``max_shift`` nats do not hold the target, the fit
    says so by its ``false_alerts_per_day`` above ``target``: alerts that strong are surges.
    A fit is in-sample; ``holdout_false_alerts_per_day`` (a fit on the first half, counted on
    the second; histories of two days or more) tells how far it carries. The halves split
    the replay's time, so the first holds the warm-up before series can alarm.
    """
    fits: dict[str, BudgetFit] = {}
    families = {"topics": ("topic", "market"), "tickers": ("ticker",)}
    middle = out.start + (out.end - out.start) / 2
    whole, first, second = (out.start, math.inf), (out.start, middle), (middle, math.inf)

    def rate(budget: str, s: float, span: tuple[float, float] = whole) -> float:
        episodes = [e for e in refire(out, {budget: s}, for_s=for_s, keep_s=keep_s,
                                      budgets=[budget])
                    if span[0] <= e.fired < span[1]]
        fa = false_alerts(episodes, truth, grace_s=grace_s)
        days = (min(span[1], out.end) - span[0]) / DAY
        return sum(fa[f] for f in families[budget]) / max(days, 1e-9)

    floor = max(out.min_shift, -MARGIN_FLOOR)

    def lowest(budget: str, span: tuple[float, float]) -> float:
        s = floor
        while s < max_shift and rate(budget, s, span) > target:
            s += step
        return s

    for budget in families:
        best = lowest(budget, whole)
        fitted = _round_down(configured[budget] * math.exp(-best))
        s = math.log(configured[budget] / fitted)
        holdout = rate(budget, lowest(budget, first), second) if out.days >= 2 else None
        fits[budget] = BudgetFit(budget, target, configured[budget], fitted, s, rate(budget, s),
                                 rate(budget, 0.0), holdout, at_limit=best <= floor)
    return fits


def _round_down(x: float, digits: int = 2) -> float:
    scale = 10 ** (math.floor(math.log10(x)) - digits + 1)
    return math.floor(x / scale + 1e-9) * scale


@dataclass(frozen=True)
class BurstResult:
    burst: Burst
    detected: float | None  # when the alert fired (event time), None if missed
    oracle: float | None = None

    @property
    def delay(self) -> float | None:
        return None if self.detected is None else self.detected - self.burst.start

    @property
    def oracle_delay(self) -> float | None:
        return None if self.oracle is None else self.oracle - self.burst.start


def first_in(times: Iterable[float], start: float, end: float) -> float | None:
    inside = [t for t in times if start <= t <= end]
    return min(inside) if inside else None


def match(episodes: Sequence[Episode], bursts: Sequence[Burst], *,
          grace_s: float) -> list[float | None]:
    """For each burst, when its topic's alert fired within [start, end + grace]."""
    return [first_in((e.fired for e in episodes if e.key == ("topic", b.topic)),
                     b.start, b.end + grace_s) for b in bursts]


def explains(episodes: Sequence[Episode], bursts: Sequence[Burst], *,
             grace_s: float) -> list[bool]:
    """Per alert: whether it started inside a burst of its topic (or the market's)."""
    return [any(b.start <= e.fired <= b.end + grace_s and e.key in (("topic", b.topic), MARKET)
                for b in bursts) for e in episodes]


def false_alerts(episodes: Sequence[Episode], bursts: Sequence[Burst], *,
                 grace_s: float) -> dict[str, int]:
    """Alert starts per family that no burst explains."""
    out = {"topic": 0, "ticker": 0, "market": 0}
    for e, explained in zip(episodes, explains(episodes, bursts, grace_s=grace_s), strict=True):
        if not explained:
            out[e.key[0]] = out.get(e.key[0], 0) + 1
    return out


@dataclass(frozen=True)
class Summary:
    """Recall and delay of one detector on one set of bursts, beside the oracle's."""

    bursts: int
    caught: int
    delay_median_s: float | None
    delay_p90_s: float | None
    oracle_caught: int | None = None
    oracle_delay_median_s: float | None = None
    both_caught: int = 0
    delay_ratio: float | None = None  # median of ours / median of oracle's, where both caught

    @property
    def recall(self) -> float:
        return self.caught / self.bursts if self.bursts else math.nan

    @property
    def oracle_recall(self) -> float | None:
        if self.oracle_caught is None or not self.bursts:
            return None
        return self.oracle_caught / self.bursts

    @property
    def recall_ratio(self) -> float | None:
        if not self.oracle_caught:
            return None
        return self.caught / self.oracle_caught


def _p90(values: list[float]) -> float | None:
    return float(np.percentile(values, 90)) if values else None


def summarize(results: Sequence[BurstResult]) -> Summary:
    delays = [r.delay for r in results if r.delay is not None]
    has_oracle = any(r.oracle is not None for r in results) or not results
    oracle_delays = [r.oracle_delay for r in results if r.oracle_delay is not None]
    both = [(r.delay, r.oracle_delay) for r in results
            if r.delay is not None and r.oracle_delay is not None]
    ratio = None
    if both:
        ours = statistics.median(d for d, _ in both)
        theirs = statistics.median(o for _, o in both)
        ratio = ours / theirs if theirs > 0 else None
    return Summary(
        bursts=len(results), caught=len(delays),
        delay_median_s=statistics.median(delays) if delays else None,
        delay_p90_s=_p90(delays),
        oracle_caught=len(oracle_delays) if has_oracle else None,
        oracle_delay_median_s=statistics.median(oracle_delays) if oracle_delays else None,
        both_caught=len(both), delay_ratio=ratio,
    )


#: A topic's volume band by its share of the stream's records.
BANDS = (("high", 0.05), ("medium", 0.01), ("low", 0.0))


def volume_bands(records: Sequence[ScoredRecord]) -> dict[str, str]:
    """Each topic's volume band: high (>= 5 % of the records), medium (>= 1 %) or low."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r.topic] = counts.get(r.topic, 0) + 1
    total = max(1, len(records))
    return {t: next(name for name, floor in BANDS if n / total >= floor)
            for t, n in counts.items()}


def plot(out: Replay, key: Key, bursts: Sequence[Burst], path: str, *,
         title: str = "") -> None:
    """Evidence against threshold for ``key``, bursts shaded, alerts marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    def num(t: float) -> float:
        return float(mdates.date2num(datetime.fromtimestamp(t, UTC)))

    times = [num(t) for t in out.trace_times]
    fig, ax = plt.subplots(figsize=(12, 4), dpi=110)
    ax.plot(times, out.trace[key], lw=0.8, color="#1f4e79", label="evidence (log R)")
    ax.plot(times, out.thresholds[key], lw=1.0, color="#c00000", ls="--", label="threshold")
    for i, b in enumerate(bursts):
        ax.axvspan(num(b.start), num(b.end),
                   color="#f4b183", alpha=0.5, lw=0, label="injected burst" if i == 0 else None)
    ax.set_ylim(bottom=-2)
    fired = [e.fired for e in out.episodes if e.key == key]
    if fired:
        # Along the top edge, where the evidence curve does not hide them.
        top = ax.get_ylim()[1]
        ax.scatter([num(t) for t in fired], [top * 0.97] * len(fired), marker="v",
                   color="#c00000", zorder=3, label="alert fired", clip_on=False)
    ax.set_ylabel("log R (nats)")
    ax.set_title(title or f"{key[0]} {key[1]}: detector evidence", loc="left")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%a %H:%M"))
    ax.legend(loc="upper left", ncols=4, fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@dataclass(frozen=True)
class Injection:
    """Bursts to add to a clean stream (see :func:`sentimon.monitor.scenario.inject`)."""

    topic: str
    multiple: float | None = None
    extra: int | None = None
    duration_s: float = 600.0
    every_s: float = 3 * 3600.0
    warmup_s: float = DAY
    seed: int = 7


@dataclass
class TopicReport:
    topic: str
    band: str
    results: list[BurstResult]
    summary: Summary
    oracle_threshold: float | None
    false_alerts: int  # on this topic outside its bursts, in the injected replay
    bursts: list[Burst] = field(default_factory=list)
    replay: Replay | None = None  # with the topic's evidence traced, for plots
    #: The same bursts at the budgets fitted on the clean stream (Report.fits); the oracle's
    #: times stay those of the configured budget.
    fitted: list[BurstResult] = field(default_factory=list)

    @property
    def unarmed(self) -> int:
        """Bursts that began before the detector armed (too little history): caught late or
        not at all whatever the settings, while the oracle, which is given the baseline,
        can catch them."""
        if self.replay is None or self.replay.legacy:
            return 0
        armed = self.replay.armed
        return sum(1 for b in self.bursts if armed is None or b.start < armed)

    @property
    def fitted_summary(self) -> Summary | None:
        return summarize(self.fitted) if self.fitted else None


@dataclass
class Report:
    """Everything ``sentimon backtest`` prints."""

    detector: str
    records: int
    days: float
    rate_per_min: float
    false_alerts: dict[str, int]
    topics: list[TopicReport]
    pooled: Summary
    bands: dict[str, Summary]
    truth: Summary | None = None
    clean: Replay | None = None
    explained: list[bool] = field(default_factory=list)  # per clean alert: inside a truth surge
    fits: dict[str, BudgetFit] = field(default_factory=dict)
    fitted: Summary | None = None  # every injected topic pooled, at the fitted budgets

    def false_alerts_per_day(self) -> dict[str, float]:
        return {k: v / self.days for k, v in self.false_alerts.items()}


def backtest(clean: Sequence[ScoredRecord], *, settings: MonitorSettings, for_s: float,
             keep_s: float = 0.0, legacy: bool = False,
             injections: Sequence[Injection] = (), burst_pool: pd.DataFrame | None = None,
             truth: Sequence[Burst] = (), grace_s: float | None = None, oracle: bool = True,
             temperature: float = 1.0, clean_replay: Replay | None = None,
             fit_false_alerts: float | None = None, progress: object = None) -> Report:
    """Replay ``clean`` for false alerts (and ``truth``), then each injection for recall.

    ``clean_replay`` reuses an earlier replay of ``clean`` with the same settings (a grid of
    injections on one stream); ``progress`` is called with a line of text after each replay.
    ``fit_false_alerts`` fits the budgets that give at most that many false alerts a day on
    ``clean`` (:func:`fit_budgets`) and reports recall and delay at them too.
    """
    from sentimon.monitor import oracle as oracle_mod
    from sentimon.monitor.scenario import inject

    say = progress if callable(progress) else (lambda _line: None)
    bucket_s = settings.short_window_s / 60
    base = clean_replay or replay(clean, settings=settings, for_s=for_s, keep_s=keep_s,
                                  legacy=legacy)
    grace = grace_s if grace_s is not None else (
        max((b.end - b.start for b in truth), default=600.0))
    fa = false_alerts(base.episodes, truth, grace_s=grace)
    copies = f" ({base.repeats} copies of a text counted once)" if base.repeats else ""
    say(f"clean stream: {len(clean)} records{copies} over {base.days:.2f} days, "
        f"{sum(fa.values())} unexplained alerts")
    truth_summary = None
    if truth:
        detected = match(base.episodes, truth, grace_s=grace)
        truth_summary = summarize([BurstResult(b, d) for b, d in zip(truth, detected, strict=True)])
    fits: dict[str, BudgetFit] = {}
    if fit_false_alerts is not None and not legacy:
        fits = fit_budgets(base, target=fit_false_alerts, for_s=for_s, keep_s=keep_s,
                           truth=truth, grace_s=grace, configured={
                               "topics": settings.false_alerts_per_day_topics,
                               "tickers": settings.false_alerts_per_day_tickers})
    bands = volume_bands(clean)
    n_topics = len(bands)
    per_series = settings.false_alerts_per_day_topics / (n_topics + 1)
    reports: list[TopicReport] = []
    if injections and burst_pool is None:
        raise ValueError("injections need a burst pool (scenario.load_pool('bearish'))")
    for inj in injections:
        assert burst_pool is not None
        records, bursts = inject(
            clean, burst_pool, topic=inj.topic, multiple=inj.multiple, extra=inj.extra,
            duration_s=inj.duration_s, every_s=inj.every_s, warmup_s=inj.warmup_s,
            temperature=temperature, seed=inj.seed)
        copied = [b for b in bursts if 0 < b.distinct < b.texts]
        if copied:
            say(f"{inj.topic}: {len(copied)} of {len(bursts)} bursts repeat texts (as few as "
                f"{min(b.distinct for b in copied)} distinct in a burst of "
                f"{max(b.texts for b in copied)}): the pool has too few texts the model puts in "
                "this topic, and monitor.repeat_window_s counts copies once")
        g = grace_s if grace_s is not None else inj.duration_s
        key = ("topic", inj.topic)
        run = replay(records, settings=settings, for_s=for_s, keep_s=keep_s, keys=[key],
                     legacy=legacy, trace=[key])
        detected = match(run.episodes, bursts, grace_s=g)
        oracle_times: list[float | None] = [None] * len(bursts)
        threshold = None
        if oracle and bursts:
            o = oracle_mod.build(clean, bursts, topic=inj.topic, start=run.start,
                                 bucket_s=bucket_s, alarms_per_day=per_series)
            counts = oracle_mod.negatives_per_bucket(records, inj.topic, start=run.start,
                                                     end=run.end + bucket_s, bucket_s=bucket_s)
            # The oracle's alerts go through the same rule as the monitor's.
            fired = o.alerts(counts, for_s=for_s, keep_s=keep_s)
            oracle_times = [first_in(fired, b.start, b.end + g) for b in bursts]
            threshold = o.threshold
        results = [BurstResult(b, d, o_t)
                   for b, d, o_t in zip(bursts, detected, oracle_times, strict=True)]
        own_fa = false_alerts(run.episodes, bursts, grace_s=g)["topic"]
        summary = summarize(results)
        fitted: list[BurstResult] = []
        if "topics" in fits:
            at_fit = match(refire(run, {"topics": fits["topics"].shift}, for_s=for_s,
                                  keep_s=keep_s), bursts, grace_s=g)
            fitted = [BurstResult(b, d, o_t)
                      for b, d, o_t in zip(bursts, at_fit, oracle_times, strict=True)]
        reports.append(TopicReport(inj.topic, bands.get(inj.topic, "low"), results, summary,
                                   threshold, own_fa, bursts, run, fitted))
        say(f"{inj.topic}: {summary.caught}/{summary.bursts} caught"
            + (f", oracle {summary.oracle_caught}" if summary.oracle_caught is not None else ""))
    pooled = summarize([r for t in reports for r in t.results])
    by_band = {band: summarize([r for t in reports if t.band == band for r in t.results])
               for band in ("high", "medium", "low") if any(t.band == band for t in reports)}
    span = max(base.days, 1e-9)
    return Report(detector="zscore" if legacy else "detector", records=len(clean), days=span,
                  rate_per_min=len(clean) / (span * 1440), false_alerts=fa, topics=reports,
                  pooled=pooled, bands=by_band, truth=truth_summary, clean=base,
                  explained=explains(base.episodes, truth, grace_s=grace), fits=fits,
                  fitted=summarize([r for t in reports for r in t.fitted]) if fits else None)
