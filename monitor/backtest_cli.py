"""``sentimon backtest``: how the alerts would have done on a stream, beside the best possible.

Kept apart from the daemon's CLI because it is a tool for tuning, not part of the pipeline:
it loads a stream (the committed scenario, scored records, or texts scored here with the
released model), replays it through :mod:`sentimon.monitor.backtest` and prints recall,
delay and false alerts a day, with the oracle's figures beside them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sentimon.config import Settings

EPILOG = """\
examples:
  sentimon backtest                                   # committed StockNet stream, 17 msg/min: false alerts
  sentimon backtest --inject "Stock Commentary" --multiple 2 --duration 10m --every 3h
  sentimon backtest --rate 5 --inject Macro --extra 20 --png macro.png
  sentimon backtest scored.jsonl --truth bursts.json  # your own history, your own truth
  sentimon backtest texts.csv                         # texts with a ts column, scored here first
  sentimon backtest --detector zscore --for 10m --inject Earnings --multiple 4   # the old statistic
  sentimon backtest --shuffle                         # the same records with no real events: the budget
  SENTIMON_MONITOR__REPEAT_WINDOW_S=3600 sentimon backtest   # copies of a text counted once
  sentimon backtest history.jsonl --fit-false-alerts 1   # the budgets that give 1 a day on it

A stream file is JSONL of scored records (the sentimon.scored format), or CSV/JSONL of
texts with `text` and `ts` columns (scored with the released model; `tickers` optional).
A truth file is a JSON list of {"topic": ..., "start": ISO-8601, "end": ISO-8601}.
The detector's settings come from the configuration (monitor.*, alerts.spike_for,
alerts.spike_keep_firing_for), so a backtest tells what the running monitor would do.
"""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "backtest",
        help="replay a stream through the real detector and rules: recall, delay, false alerts",
        description="Replay a stream in event time through the monitor's detector and the "
        "alert rules' for:/keep_firing_for:, and report the alerts that would have fired. "
        "With --inject (bursts of real negative texts) or --truth, report recall and "
        "detection delay per topic and volume band, and the same for the oracle (a CUSUM "
        "that knows the true rates) at the same false-alarm rate.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("stream", nargs="?", type=Path, metavar="FILE",
                   help="scored records (JSONL) or texts (CSV/JSONL); default: the committed "
                   "StockNet scenario at --rate")
    p.add_argument("--rate", type=float, default=17.0, metavar="MSG_PER_MIN",
                   help="messages a minute for the committed scenario (default 17; 5 and 34 "
                   "are the documented low and high volumes)")
    p.add_argument("--truth", type=Path, metavar="FILE", help="known surges (JSON list)")
    p.add_argument("--inject", action="append", metavar="TOPIC",
                   help="inject bursts into this topic (repeatable, or comma-separated)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--multiple", type=float, metavar="M",
                      help="each burst multiplies the topic's negative share by M (default 2)")
    size.add_argument("--extra", type=int, metavar="N", help="each burst adds N negative texts")
    p.add_argument("--duration", default="10m", metavar="DUR", help="burst length (default 10m)")
    p.add_argument("--every", default="3h", metavar="DUR", help="one burst every DUR (default 3h)")
    p.add_argument("--warmup", default="1d", metavar="DUR",
                   help="no burst before this much stream (default 1d: a baseline to learn)")
    p.add_argument("--seed", type=int, default=7, help="burst texts and times (default 7)")
    p.add_argument("--detector", choices=["detector", "zscore"], default="detector",
                   help="'detector' (default) or 'zscore', the statistic before it")
    p.add_argument("--for", dest="for_", metavar="DUR",
                   help="the rule's for: (default alerts.spike_for)")
    p.add_argument("--keep-firing-for", metavar="DUR",
                   help="the rule's keep_firing_for: (default alerts.spike_keep_firing_for)")
    p.add_argument("--grace", metavar="DUR",
                   help="an alert up to DUR after a burst's end still counts as caught "
                   "(default: the burst's length)")
    p.add_argument("--shuffle", action="store_true",
                   help="replay the stream's null twin: record contents permuted among records "
                   "at the same hour of day on other days (same mix and daily rhythm, no real "
                   "events), to check that the false-alert budget holds on your own history")
    p.add_argument("--fit-false-alerts", type=float, metavar="PER_DAY",
                   help="find the budgets (monitor.false_alerts_per_day_topics and _tickers) "
                   "that give at most PER_DAY false alerts a day on this stream, and report "
                   "recall and delay at them too. The configured budget is a bound for records "
                   "that are independent given their baseline; retweet waves and bots exceed it. "
                   "A fit holds on the history it saw; the report says how well a fit on the "
                   "first half holds on the second")
    p.add_argument("--no-oracle", action="store_true", help="skip the oracle (faster)")
    p.add_argument("--png", type=Path, metavar="FILE",
                   help="plot the first injected topic's evidence, bursts and alerts")
    p.add_argument("--json-out", type=Path, metavar="FILE", help="write every figure as JSON")
    p.set_defaults(func=run)


#: Above this share of records at exactly midnight UTC, the stream's times look like dates.
DATE_ONLY_SHARE = 0.5


def _load_stream(path: Path, settings: Settings) -> list[Any]:
    """Scored records as they are, or texts scored with the released model."""
    from sentimon.monitor.records import MalformedRecord, parse_scored

    first = ""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                first = line
                break
    if path.suffix in (".jsonl", ".ndjson") and '"sentiment"' in first and '"topic"' in first:
        out = []
        with path.open("rb") as raw:
            for n, data in enumerate(raw, 1):
                if not data.strip():
                    continue
                try:
                    out.append(parse_scored(data))
                except MalformedRecord as exc:
                    raise SystemExit(f"sentimon backtest: {path}:{n}: {exc}") from None
        return sorted(out, key=lambda r: r.ts)
    return _score_texts(path, settings)


def _score_texts(path: Path, settings: Settings) -> list[Any]:
    from sentimon.ingest import replay
    from sentimon.ingest.cashtags import merge_tickers
    from sentimon.model.inference import SentimentModel
    from sentimon.monitor.records import ScoredRecord, text_key

    try:
        loaded = replay.load_items(path, kind="comment")
    except replay.ReplayError as exc:
        raise SystemExit(f"sentimon backtest: {exc}") from None
    items = [i for i in loaded if i.ts is not None]
    if not items:
        raise SystemExit(f"sentimon backtest: {path}: no rows with both text and a time "
                         f"(columns {', '.join(replay.TS_COLUMNS)})")
    if len(items) < len(loaded):
        # A replay in event time cannot place them; say so rather than drop them unseen.
        print(f"sentimon backtest: warning: {len(loaded) - len(items)} of {len(loaded)} rows have "
              "no usable time (empty or unparseable) and are left out", file=sys.stderr)
    model = SentimentModel.from_settings(settings)
    texts = [str(i.value.get("text", "")) for i in items]
    print(f"scoring {len(texts)} texts with {model.name} {model.version} ({model.variant})",
          file=sys.stderr)
    preds = model.predict(texts)
    out = []
    for n, (item, pred) in enumerate(zip(items, preds, strict=True)):
        assert item.ts is not None
        given = item.value.get("tickers") or []
        tickers = merge_tickers(given if isinstance(given, list) else str(given).split(";"),
                                texts[n])
        out.append(ScoredRecord(
            id=str(item.value.get("id", n)), ts=item.ts.timestamp(),
            kind=str(item.value.get("kind", "comment")), topic=pred.topic,
            sentiment=pred.sentiment, score=pred.score, tickers=tuple(tickers),
            p_negative=pred.sentiment_probs["negative"], text_key=text_key(texts[n])))
    return out


def _truth(path: Path) -> list[Any]:
    from sentimon.monitor.scenario import Burst, parse_iso

    try:
        rows = json.loads(path.read_text())
        return [Burst(topic=str(r["topic"]), start=parse_iso(r["start"]), end=parse_iso(r["end"]),
                      texts=int(r.get("texts", 0)), negatives=int(r.get("negatives", 0)))
                for r in rows]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"sentimon backtest: --truth {path}: {exc} (expected a JSON list of "
                         '{"topic": ..., "start": ISO-8601, "end": ISO-8601})') from None


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}s"


def _fmt_r(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


#: Alerts listed in the printed report; --json-out has every one.
MAX_LISTED_ALERTS = 40


def _alerts(report: Any) -> list[dict[str, Any]]:
    """The clean (or --truth) stream's alerts, each marked explained by a truth burst or not."""
    from sentimon.monitor.scenario import iso

    if report.clean is None:
        return []
    return [{"series": e.key[0], "name": e.key[1], "fired": iso(e.fired),
             "resolved": None if e.resolved is None else iso(e.resolved),
             "minutes": None if e.resolved is None else round((e.resolved - e.fired) / 60, 1),
             "explained": explained}
            for e, explained in zip(report.clean.episodes, report.explained, strict=True)]


def _alert_lines(report: Any) -> list[str]:
    alerts = _alerts(report)
    if not alerts:
        return ["alerts that would have fired: none"]
    lines = [f"alerts that would have fired ({len(alerts)}; 'truth' = inside a --truth surge):"]
    for a in alerts[:MAX_LISTED_ALERTS]:
        until = a["resolved"] or "still firing"
        who = a["name"] or "(market)"
        lines.append(f"  {a['fired']} .. {until}  {a['series']:<6} {who}"
                     + ("  truth" if a["explained"] else ""))
    if len(alerts) > MAX_LISTED_ALERTS:
        lines.append(f"  ... {len(alerts) - MAX_LISTED_ALERTS} more (--json-out lists all)")
    return lines


def format_report(report: Any, *, header: str) -> str:
    """The backtest's figures as a table for people."""
    lines = [header,
             f"stream: {report.records:,} records over {report.days:.2f} days "
             f"({report.rate_per_min:.3g} messages a minute)"]
    fa = report.false_alerts_per_day()
    lines.append("false alerts a day: " + ", ".join(
        f"{k} {v:.2f} ({report.false_alerts[k]})" for k, v in fa.items()))
    lines.extend(_alert_lines(report))
    lines.extend(_fit_lines(report))
    if report.truth is not None:
        t = report.truth
        lines.append(f"truth: {t.caught}/{t.bursts} caught, delay median "
                     f"{_fmt_s(t.delay_median_s)}, p90 {_fmt_s(t.delay_p90_s)}")
    if report.topics:
        lines.append("")
        lines.append(f"{'topic':<28}{'band':<8}{'bursts':>7}{'caught':>7}{'delay p50':>10}"
                     f"{'p90':>7}{'oracle':>8}{'o. p50':>8}{'recall/o':>9}{'delay/o':>8}{'FA':>4}")
        rows = [(t.topic, t.band, t.summary, t.false_alerts) for t in report.topics]
        rows += [(f"[{band}]", "", s, 0) for band, s in report.bands.items()]
        rows.append(("[all]", "", report.pooled, sum(t.false_alerts for t in report.topics)))
        for name, band, s, n_fa in rows:
            oracle = "-" if s.oracle_caught is None else str(s.oracle_caught)
            lines.append(
                f"{name[:27]:<28}{band:<8}{s.bursts:>7}{s.caught:>7}{_fmt_s(s.delay_median_s):>10}"
                f"{_fmt_s(s.delay_p90_s):>7}{oracle:>8}{_fmt_s(s.oracle_delay_median_s):>8}"
                f"{_fmt_r(s.recall_ratio):>9}{_fmt_r(s.delay_ratio):>8}{n_fa:>4}")
        lines.append("delays run from a burst's first record to the alert firing (rule for: "
                     "included); the oracle's alerts pass the same rule")
        early = [t for t in report.topics if t.unarmed]
        if early:
            run = early[0].replay
            assert run is not None
            when = ("never did" if run.armed is None
                    else f"{(run.armed - run.start) / 3600:.1f} h into the stream")
            n = sum(t.unarmed for t in early)
            lines.append(
                f"note: {n} burst{'s' if n > 1 else ''} began before the detector armed "
                f"({when}: it needs monitor.min_history_s of history before the detection "
                "horizon); no setting catches those in time, while the oracle, given the "
                "baseline, can. A later --warmup leaves them out")
        if report.fitted is not None:
            lines.append("")
            lines.append(f"at the fitted topic budget "
                         f"({report.fits['topics'].fitted:g} a day; the oracle as above):")
            fitted = [(t.topic, t.fitted_summary) for t in report.topics]
            for name, f in [*fitted, ("[all]", report.fitted)]:
                if f is not None:
                    lines.append(f"  {name[:27]:<28}{f.caught:>3}/{f.bursts} caught, delay p50 "
                                 f"{_fmt_s(f.delay_median_s)}, p90 {_fmt_s(f.delay_p90_s)}, "
                                 f"recall/o {_fmt_r(f.recall_ratio)}, delay/o "
                                 f"{_fmt_r(f.delay_ratio)}")
    return "\n".join(lines)


def _fit_lines(report: Any) -> list[str]:
    if not report.fits:
        return []
    lines = ["budgets fitted on this stream (false alerts a day; 'holdout': fitted on the first "
             "half alone, counted on the second: how far a fit carries):"]
    for name, fit in report.fits.items():
        env = f"SENTIMON_MONITOR__FALSE_ALERTS_PER_DAY_{name.upper()}"
        holdout = ("" if fit.holdout_false_alerts_per_day is None
                   else f"; holdout {fit.holdout_false_alerts_per_day:.2f}")
        lines.append(f"  {env}={fit.fitted:g}  ({name}: {fit.configured:g} gives "
                     f"{fit.configured_false_alerts_per_day:.2f} a day here, {fit.fitted:g} "
                     f"gives {fit.false_alerts_per_day:.2f}; thresholds {fit.shift:+.2f} nats"
                     f"{holdout})" + (" or larger: the replay tells no further" if fit.at_limit
                                      else ""))
        if fit.false_alerts_per_day > fit.target:
            lines.append(f"  (no budget gives {fit.target:g} a day: the {name}' remaining alerts "
                         "are strong surges; are they in --truth?)")
    return lines


def report_json(report: Any) -> dict[str, Any]:
    def summary(s: Any) -> dict[str, Any]:
        return {**asdict(s), "recall": s.recall, "oracle_recall": s.oracle_recall,
                "recall_ratio": s.recall_ratio}

    return {
        "detector": report.detector, "records": report.records, "days": report.days,
        "rate_per_min": report.rate_per_min, "false_alerts": report.false_alerts,
        "false_alerts_per_day": report.false_alerts_per_day(), "alerts": _alerts(report),
        "truth": summary(report.truth) if report.truth is not None else None,
        "topics": [{
            "topic": t.topic, "band": t.band, "summary": summary(t.summary),
            "oracle_threshold": t.oracle_threshold, "false_alerts": t.false_alerts,
            "bursts": [{**b.burst.as_json(), "detected_after_s": b.delay,
                        "oracle_after_s": b.oracle_delay} for b in t.results],
            "fitted_after_s": [b.delay for b in t.fitted] if t.fitted else None,
            "began_before_armed": t.unarmed,
            "armed": t.replay.armed if t.replay is not None else None,
        } for t in report.topics],
        "bands": {k: summary(v) for k, v in report.bands.items()},
        "pooled": summary(report.pooled),
        "fits": {k: asdict(v) for k, v in report.fits.items()},
        "fitted": {t.topic: summary(t.fitted_summary) for t in report.topics if t.fitted},
        "fitted_pooled": summary(report.fitted) if report.fitted is not None else None,
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sentimon.monitor import scenario
    from sentimon.monitor.backtest import Injection, backtest, plot
    from sentimon.monitor.report import parse_duration

    try:
        for_s = parse_duration(args.for_ or settings.alerts.spike_for, allow_zero=True)
        keep_s = parse_duration(args.keep_firing_for or settings.alerts.spike_keep_firing_for)
        duration_s, every_s = parse_duration(args.duration), parse_duration(args.every)
        warmup_s = parse_duration(args.warmup)
        grace_s = parse_duration(args.grace) if args.grace else None
    except ValueError as exc:
        print(f"sentimon backtest: {exc}", file=sys.stderr)
        return 2
    legacy = args.detector == "zscore"
    if args.fit_false_alerts is not None and (legacy or args.fit_false_alerts < 0):
        print("sentimon backtest: --fit-false-alerts needs the detector (not zscore) and a "
              "rate of zero or more a day", file=sys.stderr)
        return 2
    if legacy and args.keep_firing_for is None:
        keep_s = 0.0  # the old rule had none
    topics = [t.strip() for group in args.inject or [] for t in group.split(",") if t.strip()]
    temperature = scenario.sentiment_temperature()
    if args.stream is None:
        clean = scenario.fold(scenario.load_pool("stocknet"), rate_per_min=args.rate,
                              temperature=temperature)
        source = f"committed StockNet scenario at {args.rate:g} msg/min"
    else:
        if not args.stream.exists():
            print(f"sentimon backtest: {args.stream}: no such file", file=sys.stderr)
            return 2
        clean = _load_stream(args.stream, settings)
        source = str(args.stream)
    if not clean:
        print("sentimon backtest: the stream is empty", file=sys.stderr)
        return 2
    midnight = sum(1 for r in clean if r.ts % 86_400 == 0) / len(clean)
    if midnight > DATE_ONLY_SHARE:
        print(f"sentimon backtest: warning: {midnight:.0%} of the records are stamped exactly "
              "00:00:00 UTC, a date without a time of day. The detector watches minutes, so "
              "a day's records arriving in one instant are a burst each midnight and a feed "
              "silent in between (its hours count as outages): give records the time they "
              "were published, or expect few alerts.", file=sys.stderr)
    if args.shuffle:
        clean = scenario.null_twin(clean, seed=args.seed)
        source += ", shuffled (null twin)"
    known = {r.topic for r in clean}
    unknown = [t for t in topics if t not in known]
    if unknown:
        print(f"sentimon backtest: --inject: no records of {', '.join(map(repr, unknown))} in the "
              f"stream; topics: {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    multiple = args.multiple if args.multiple is not None or args.extra is not None else 2.0
    injections = [Injection(topic=t, multiple=multiple if args.extra is None else None,
                            extra=args.extra, duration_s=duration_s, every_s=every_s,
                            warmup_s=warmup_s, seed=args.seed) for t in topics]
    try:
        report = backtest(
            clean, settings=settings.monitor, for_s=for_s, keep_s=keep_s, legacy=legacy,
            injections=injections,
            burst_pool=scenario.load_pool("bearish") if injections else None,
            truth=_truth(args.truth) if args.truth else (), grace_s=grace_s,
            oracle=not args.no_oracle, temperature=temperature,
            fit_false_alerts=args.fit_false_alerts,
            progress=lambda line: print(line, file=sys.stderr))
    except (ValueError, FileNotFoundError) as exc:
        print(f"sentimon backtest: {exc}", file=sys.stderr)
        return 2
    size = (f"{args.extra} extra texts" if args.extra is not None else f"{multiple:g}x the share")
    header = (f"backtest of {source}: {report.detector}"
              + ("" if legacy else f" (evidence from {settings.monitor.evidence})")
              + f", for: {for_s:g}s, keep_firing_for: {keep_s:g}s"
              + (f"; bursts of {size} for {duration_s:g}s every {every_s:g}s" if topics else ""))
    print(format_report(report, header=header))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"source": source, "header": header,
                                             **report_json(report)}, indent=2) + "\n")
    if args.png:
        if not report.topics or report.topics[0].replay is None:
            print("sentimon backtest: --png needs --inject", file=sys.stderr)
            return 2
        first = report.topics[0]
        assert first.replay is not None
        plot(first.replay, ("topic", first.topic), first.bursts, str(args.png),
             title=f"{first.topic}: evidence against threshold ({size} bursts)")
        print(f"wrote {args.png}")
    return 0
