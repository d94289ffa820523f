"""Where the detector's delay goes: the oracle, step by step, down to the monitor.

On the committed scenario's injected bursts (``benchmarks.alert_quality``'s), four detectors
on the same records, each adding one thing the monitor cannot know or chooses to do:

1. the oracle: a CUSUM that knows the topic's true baseline and the burst's size, its
   threshold simulated to the per-series false-alarm rate (``monitor/oracle.py``);
2. size unknown: the monitor's statistic (the Shiryaev-Roberts mixture over the same
   multiples) on the true baseline and the negative labels, threshold simulated the same way;
3. bound threshold: the same, thresholded at the monitor's ``log A`` (the bound that holds
   without simulation, for every baseline);
4. the monitor: its own baseline (estimated from the stream, shrunk toward the market), its
   evidence (``monitor.evidence``), dispersion and volume factor, through the rule's ``for:``.

Every step's alerts go through the same rule (``for:``, ``keep_firing_for:``), on its
statistic evaluated at each bucket end without a reset, as the monitor's are.

Caught bursts and median delay per step: the step that costs the most is where to look.

examples:
  python -m benchmarks.delay_budget --json-out benchmarks/results/delay_budget_17.json
  python -m benchmarks.delay_budget --topics Earnings --sizes 10 --rate 17
"""

from __future__ import annotations

import math
import statistics
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

DEFAULT_SIZES = "4x,10,20"
STEPS = ("oracle", "size unknown", "bound threshold", "monitor")


def main() -> int:
    p = script_parser("benchmarks.delay_budget", __doc__ or "")
    p.add_argument("--rate", type=float, default=17.0, help="messages a minute (default 17)")
    add_scenario_args(p, sizes=DEFAULT_SIZES)
    args = p.parse_args()

    from sentimon.monitor import oracle, scenario
    from sentimon.monitor.aggregate import DetectorConfig
    from sentimon.monitor.backtest import first_in, match, replay, volume_bands
    from sentimon.monitor.detector import threshold

    setup = alert_setup()
    m = setup.settings.monitor
    for_s, keep_s, temperature, pool = setup.for_s, setup.keep_s, setup.temperature, setup.bursts
    clean = setup.stream(args.rate)
    bucket_s = m.short_window_s / 60
    n_topics = len(volume_bands(clean))
    per_series = m.false_alerts_per_day_topics / (n_topics + 1)
    log_a = threshold(false_alerts_per_day=m.false_alerts_per_day_topics,
                      n_series=n_topics + 1, bucket_s=bucket_s)
    rises = DetectorConfig().rises
    horizon = math.ceil(m.detection_horizon_s / bucket_s)
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    for size in comma_list(args.sizes):
        kw = burst_size(size)
        for topic in comma_list(args.topics):
            try:
                records, bursts = scenario.inject(clean, pool, topic=topic, temperature=temperature,
                                                  **kw)
            except ValueError as exc:
                print(f"skip {topic} {size}: {exc}", file=sys.stderr)
                continue
            key = ("topic", topic)
            run = replay(records, settings=m, for_s=for_s, keep_s=keep_s, keys=[key])
            counts = oracle.negatives_per_bucket(records, topic, start=run.start,
                                                 end=run.end + bucket_s, bucket_s=bucket_s)
            known = oracle.build(clean, bursts, topic=topic, start=run.start, bucket_s=bucket_s,
                                 alarms_per_day=per_series)
            h = oracle.calibrate_mixture(known.mu0, rises, alarms_per_day=per_series)
            blind = oracle.MixtureOracle(start=run.start, bucket_s=bucket_s, mu0=known.mu0,
                                         rises=rises, threshold=h, horizon=horizon)
            bound = oracle.MixtureOracle(start=run.start, bucket_s=bucket_s, mu0=known.mu0,
                                         rises=rises, threshold=log_a, horizon=horizon)
            times: dict[str, list[float | None]] = {}
            for step, det in (("oracle", known), ("size unknown", blind),
                              ("bound threshold", bound)):
                # Every step goes through the same rule as the monitor's alerts.
                fired = det.alerts(counts, for_s=for_s, keep_s=keep_s)
                times[step] = [first_in(fired, b.start, b.end + 600) for b in bursts]
            times["monitor"] = match(run.episodes, bursts, grace_s=600)
            row: dict[str, Any] = {"size": size, "topic": topic, "bursts": len(bursts),
                                   "thresholds": {"oracle": known.threshold, "size unknown": h,
                                                  "bound threshold": log_a}}
            for step in STEPS:
                delays = [t - b.start for t, b in zip(times[step], bursts, strict=True)
                          if t is not None]
                row[step] = {"caught": len(delays), "delays_s": delays,
                             "median_s": statistics.median(delays) if delays else None}
            rows.append(row)
            print(f"[{time.monotonic() - started:5.0f}s] {size:>4} {topic}: " + ", ".join(
                f"{s} {row[s]['caught']}/{len(bursts)} {_min(row[s]['median_s'])}" for s in STEPS),
                file=sys.stderr, flush=True)
    print(markdown(rows))
    write_json(args.json_out, {"benchmark": "delay_budget", "machine": machine_info(),
                               "rate": args.rate, "for_s": for_s, "per_series_per_day": per_series,
                               "rises": list(rises), "rows": rows})
    return 0


def _min(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def markdown(rows: list[dict[str, Any]]) -> str:
    """One line per size and topic, and one for the topics pooled: caught and median delay."""
    out = ["| size | topic | " + " | ".join(STEPS) + " |", "| --- | --- |" + " --- |" * len(STEPS)]
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    for size in sizes:
        group = [r for r in rows if r["size"] == size]
        for r in group:
            cells = [f"{r[s]['caught']}/{r['bursts']}, {_min(r[s]['median_s'])}" for s in STEPS]
            out.append(f"| {size} | {_cell(r['topic'])} | " + " | ".join(cells) + " |")
        if len(group) > 1:
            bursts = sum(r["bursts"] for r in group)
            cells = []
            for s in STEPS:
                delays = [d for r in group for d in r[s]["delays_s"]]
                median = statistics.median(delays) if delays else None
                cells.append(f"**{len(delays)}/{bursts}, {_min(median)}**")
            out.append(f"| {size} | all | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


if __name__ == "__main__":
    raise SystemExit(main())
