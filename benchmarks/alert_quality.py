"""Alert quality on the committed scenarios: the detector against the old statistic and the oracle.

For each stream volume (StockNet folded to N messages a minute) it replays the clean stream
(false alerts a day per family), then injects bursts into a busy, a medium and a rare topic,
one every 3 hours after a day of history, at each size (multiples of the topic's negative
share, and absolute numbers of extra negative texts), and reports recall, median and p90
delay, and the oracle's figures at the same false-alarm rate. With --legacy the z statistic
with its old rule (for: 10m) runs on the same bursts. Figures go to --json-out; the tables
in docs/alerts.md are printed with --markdown.

examples:
  python -m benchmarks.alert_quality --json-out benchmarks/results/alert_quality.json --markdown
  python -m benchmarks.alert_quality --rates 17 --legacy --other-evidence-rates 17
  python -m benchmarks.alert_quality --rates 17 --sizes 2x --topics "Stock Commentary" --legacy
"""

from __future__ import annotations

import sys
import time
from typing import Any

from benchmarks.common import (
    add_scenario_args,
    alert_setup,
    burst_size,
    comma_list,
    machine_info,
    script_parser,
    write_json,
)

DEFAULT_SIZES = "1.5x,2x,4x,10,20,40,80"


def main() -> int:
    p = script_parser("benchmarks.alert_quality", __doc__ or "")
    p.add_argument("--rates", default="5,17,34", help="messages a minute (default 5,17,34)")
    add_scenario_args(p, sizes=DEFAULT_SIZES)
    p.add_argument("--legacy", action="store_true",
                   help="also run the old z statistic (for: 10m) on the same bursts")
    p.add_argument("--legacy-rates", default="17", help="volumes for --legacy (default 17)")
    p.add_argument("--other-evidence-rates", default="",
                   help="volumes at which the detector also runs on another evidence than "
                   "monitor.evidence (the sum of P(negative), or argmax counts when "
                   "monitor.evidence is probability), e.g. 17")
    p.add_argument("--no-detector", action="store_true",
                   help="skip the default detector (e.g. only --legacy at more volumes)")
    p.add_argument("--fit-false-alerts", type=float, metavar="PER_DAY",
                   help="also report recall and delay at the budgets that give at most PER_DAY "
                   "false alerts a day on each clean stream (sentimon backtest "
                   "--fit-false-alerts); the oracle keeps the configured budget")
    p.add_argument("--markdown", action="store_true", help="print the docs tables")
    args = p.parse_args()

    from sentimon.monitor import scenario
    from sentimon.monitor.backtest import Injection, backtest, replay
    from sentimon.monitor.backtest_cli import report_json

    setup = alert_setup()
    settings, for_s, keep_s = setup.settings, setup.for_s, setup.keep_s
    temperature, bursts = setup.temperature, setup.bursts
    topics, sizes = comma_list(args.topics), comma_list(args.sizes)
    legacy_rates = {float(r) for r in args.legacy_rates.split(",")} if args.legacy else set()
    other_rates = {float(r) for r in args.other_evidence_rates.split(",") if r.strip()}
    other = "argmax" if settings.monitor.evidence == "probability" else "probability"
    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    for rate in [float(r) for r in args.rates.split(",")]:
        clean = setup.stream(rate)
        variants = [*([] if args.no_detector else ["detector"]),
                    *([other] if rate in other_rates else []),
                    *(["zscore"] if rate in legacy_rates else [])]
        for detector in variants:
            legacy = detector == "zscore"
            m = settings.monitor.model_copy(update={
                "evidence": other if detector == other else settings.monitor.evidence})
            f_s, k_s = (600.0, 0.0) if legacy else (for_s, keep_s)
            t = time.monotonic()
            base = replay(clean, settings=m, for_s=f_s, keep_s=k_s, legacy=legacy)
            print(f"[{time.monotonic() - started:6.0f}s] {rate:g}/min {detector}: clean replay "
                  f"{time.monotonic() - t:.0f}s, {len(base.episodes)} alerts", file=sys.stderr)
            for size in sizes:
                injections = [Injection(topic=topic, **burst_size(size)) for topic in topics]
                usable = []
                for inj in injections:
                    try:  # a multiple a topic's share cannot reach is skipped, and said so
                        scenario.inject(clean, bursts, topic=inj.topic, multiple=inj.multiple,
                                        extra=inj.extra, every_s=1e12)
                        usable.append(inj)
                    except ValueError as exc:
                        print(f"  skip {inj.topic} {size}: {exc}", file=sys.stderr)
                report = backtest(clean, settings=m, for_s=f_s, keep_s=k_s, legacy=legacy,
                                  injections=usable, burst_pool=bursts, oracle=not legacy,
                                  temperature=temperature, clean_replay=base,
                                  fit_false_alerts=None if legacy else args.fit_false_alerts)
                runs.append({**report_json(report), "rate": rate, "detector": detector,
                             "size": size})
                print(f"[{time.monotonic() - started:6.0f}s] {rate:g}/min {detector} {size}: "
                      f"{report.pooled.caught}/{report.pooled.bursts} caught", file=sys.stderr)
    doc = {"benchmark": "alert_quality", "machine": machine_info(),
           "settings": {"monitor": settings.monitor.model_dump(mode="json"), "for_s": for_s, "keep_s": keep_s,
                        "temperature": temperature},
           "runs": runs}
    write_json(args.json_out, doc)
    if args.markdown:
        print(markdown(runs))
    return 0


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value / 60:.1f}"


def markdown(runs: list[dict[str, Any]]) -> str:
    """Tables: false alerts a day per volume; recall and delay per size, ours beside the oracle."""
    out = ["| volume | detector | false topic alerts/day | false ticker alerts/day | "
           "false market alerts/day |", "| --- | --- | --- | --- | --- |"]
    seen = set()
    for r in runs:
        key = (r["rate"], r["detector"])
        if key in seen:
            continue
        seen.add(key)
        fa = r["false_alerts_per_day"]
        out.append(f"| {r['rate']:g}/min | {r['detector']} | {fa['topic']:.2f} | "
                   f"{fa['ticker']:.2f} | {fa['market']:.2f} |")
        fits = r.get("fits") or {}
        if fits:
            t, k = fits["topics"], fits["tickers"]
            out.append(f"| | fitted budgets: topics {t['fitted']:g}, tickers {k['fitted']:g} "
                       f"(configured {t['configured']:g}, {k['configured']:g}) | "
                       f"{t['false_alerts_per_day']:.2f} (with market) | "
                       f"{k['false_alerts_per_day']:.2f} | |")
    out += ["", "| volume | size | detector | caught | median delay (min) | p90 (min) | "
            "oracle caught | oracle median (min) | recall / oracle | delay / oracle |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        s = r["pooled"]
        ratio = "-" if s["recall_ratio"] is None else f"{s['recall_ratio']:.2f}"
        dratio = "-" if s["delay_ratio"] is None else f"{s['delay_ratio']:.2f}"
        oracle = "-" if s["oracle_caught"] is None else f"{s['oracle_caught']}/{s['bursts']}"
        out.append(f"| {r['rate']:g}/min | {r['size']} | {r['detector']} | "
                   f"{s['caught']}/{s['bursts']} | {_s(s['delay_median_s'])} | "
                   f"{_s(s['delay_p90_s'])} | {oracle} | {_s(s['oracle_delay_median_s'])} | "
                   f"{ratio} | {dratio} |")
        f = r.get("fitted_pooled")
        if f is not None:
            out.append(f"| | | at the fitted budget | {f['caught']}/{f['bursts']} | "
                       f"{_s(f['delay_median_s'])} | {_s(f['delay_p90_s'])} | {oracle} | "
                       f"{_s(s['oracle_delay_median_s'])} | {_r(f['recall_ratio'])} | "
                       f"{_r(f['delay_ratio'])} |")
    return "\n".join(out)


def _r(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
