"""Shared pieces of the benchmarks: real texts, the machine's description, timing, tables, JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NEWS_SHARE = 0.25
"""Share of news headlines among the benchmark texts; the rest are StockNet tweets."""
PACKAGES = ("onnxruntime-gpu", "onnxruntime", "tokenizers", "numpy", "torch", "transformers", "kafka-python")


@dataclass(frozen=True, slots=True)
class Text:
    """One real text and what an input message about it carries."""

    kind: str  # "comment" (a tweet) or "news" (a headline)
    text: str
    tickers: tuple[str, ...]
    source: str


def script_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The parser of ``python -m <module>``: the docstring's first paragraph is the description,
    its ``examples:`` part the epilog, so ``--help`` and the docstring never drift apart."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=doc.split("\n\n")[0],
        epilog=doc[doc.index("examples:"):],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def data_dir(arg: Path | None) -> Path:
    """``--data-dir``, else ``$SENTIMON_DATA_DIR``, else ``../shared/data`` beside the repository."""
    path = arg or Path(os.environ.get("SENTIMON_DATA_DIR", str(REPO.parent / "shared" / "data")))
    if not path.is_dir():
        raise SystemExit(f"data not found at {path}; pass --data-dir or set SENTIMON_DATA_DIR")
    return path


def load_texts(data: Path, n: int, *, seed: int = 13) -> list[Text]:
    """``n`` real texts, 3/4 English StockNet tweets and 1/4 news headlines, in a seeded random order."""
    import pandas as pd

    tweets = pd.read_csv(data / "stocknet_tweets" / "stocknet_tweets.csv", dtype=str,
                         keep_default_na=False, usecols=["lang", "tickers", "text"])
    tweets = tweets[tweets["lang"] == "en"]
    news = pd.read_csv(data / "news_headlines_2017_2020" / "headlines_normalized.csv", dtype=str,
                       keep_default_na=False, usecols=["source", "text"])
    pool_tweets = [
        Text("comment", t.strip(), tuple(x for x in k.split(";") if x), "stocknet")
        for t, k in zip(tweets["text"], tweets["tickers"], strict=True) if t.strip()
    ]
    pool_news = [Text("news", t.strip(), (), s or "headlines")
                 for t, s in zip(news["text"], news["source"], strict=True) if t.strip()]
    n_news = round(n * NEWS_SHARE)
    n_tweets = n - n_news
    if n_tweets > len(pool_tweets) or n_news > len(pool_news):
        raise SystemExit(f"--n {n} is more than the data holds ({len(pool_tweets)} tweets, "
                         f"{len(pool_news)} headlines at a {NEWS_SHARE:.0%} news share)")
    rng = random.Random(seed)
    out = rng.sample(pool_tweets, n_tweets) + rng.sample(pool_news, n_news)
    rng.shuffle(out)
    return out


def _lscpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor() or "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _git_commit() -> str:
    """HEAD's short hash, with ``+dirty`` when tracked files differ from it (figures of a tree
    that no commit holds must not pass for that commit's)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "unknown"
    return (head + ("+dirty" if dirty else "")) if head else "unknown"


def busy_processes() -> list[str]:
    """Other heavy work on this machine that would distort timings (a training run)."""
    import psutil

    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if proc.info["pid"] != me and "sentimon" in cmd and " train" in cmd:
            found.append(f"{proc.info['pid']}: {cmd[:120]}")
    return found


def machine_info() -> dict[str, Any]:
    """What a reader needs to compare figures: CPU, cores, memory, versions, load at the start."""
    import psutil

    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return {
        "utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": _lscpu_model(),
        "nproc": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "busy": busy_processes(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": _git_commit(),
        "command": " ".join([Path(sys.executable).name, "-m", *_module_argv()]),
    }


def _module_argv() -> list[str]:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = spec.name if spec is not None else sys.argv[0]
    return [name, *sys.argv[1:]]


def print_machine(info: dict[str, Any]) -> None:
    print(f"machine: {info['cpu_model']}, {info['nproc']} cores, {info['memory_gib']} GiB, "
          f"load {info['load_average_1m']} at start; python {info['python']}; "
          + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    for line in info["busy"]:
        print(f"WARNING: other heavy work is running, timings are not representative: {line}")


def timed(fn: Callable[[], Any], *, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn``."""
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """``{"p50": ..., ...}`` of ``values`` (linear interpolation); empty input gives NaN."""
    import numpy as np

    if not values:
        return {f"p{q:g}": float("nan") for q in qs}
    arr = np.asarray(values, dtype=float)
    return {f"p{q:g}": float(np.percentile(arr, q)) for q in qs}


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return "-" if value is None else str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A plain-text table of ``rows``; ``columns`` are ``(key, header)`` pairs."""
    cells = [[header for _, header in columns]]
    cells += [[fmt(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if n else c.ljust(w) for n, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: Path | None, doc: dict[str, Any]) -> None:
    if "machine" in doc:
        # Other work during the run shows here, when it was absent at the start.
        doc["machine"]["load_average_1m_end"] = round(os.getloadavg()[0], 2)
        doc["machine"]["busy_end"] = busy_processes()
        print(f"load average at the end: {doc['machine']['load_average_1m_end']}")
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {path}")


#: The topics the alert benchmarks inject into: a busy, a medium and a rare one.
SCENARIO_TOPICS = "Stock Commentary,Earnings,Fed | Central Banks"


def add_scenario_args(p: argparse.ArgumentParser, *, sizes: str) -> None:
    """``--topics``, ``--sizes`` and ``--json-out``, as every alert benchmark takes them."""
    p.add_argument("--topics", default=SCENARIO_TOPICS,
                   help=f"topics to inject into, comma-separated (default {SCENARIO_TOPICS!r})")
    p.add_argument("--sizes", default=sizes,
                   help=f"burst sizes: Mx multiplies the topic's negative share by M, N adds N "
                   f"texts (default {sizes})")
    p.add_argument("--json-out", type=Path, help="write all figures as JSON")


def comma_list(text: str) -> list[str]:
    """The non-empty items of a comma-separated option, stripped."""
    return [x.strip() for x in text.split(",") if x.strip()]


def burst_size(text: str) -> dict[str, Any]:
    """A burst size as ``scenario.inject`` keywords: ``Mx`` multiplies the topic's negative
    share by M, ``N`` adds N texts."""
    return {"multiple": float(text[:-1])} if text.endswith("x") else {"extra": int(text)}


@dataclass(frozen=True)
class AlertSetup:
    """What the alert benchmarks share: the settings, the rule's timing, the scenario pools."""

    settings: Any  # sentimon.config.Settings
    for_s: float
    keep_s: float
    temperature: float
    stocknet: Any  # the StockNet pool (pandas DataFrame)
    bursts: Any  # the Bearish burst pool

    def stream(self, rate_per_min: float) -> list[Any]:
        """The clean StockNet stream folded to ``rate_per_min`` messages a minute."""
        from sentimon.monitor import scenario

        return scenario.fold(self.stocknet, rate_per_min=rate_per_min,
                             temperature=self.temperature)


def alert_setup() -> AlertSetup:
    """Settings from the configuration (``SENTIMON_*`` applies) and the committed scenarios."""
    from sentimon.config import Settings
    from sentimon.monitor import scenario
    from sentimon.monitor.report import parse_duration

    settings = Settings()
    return AlertSetup(
        settings=settings,
        for_s=parse_duration(settings.alerts.spike_for, allow_zero=True),
        keep_s=parse_duration(settings.alerts.spike_keep_firing_for),
        temperature=scenario.sentiment_temperature(),
        stocknet=scenario.load_pool("stocknet"), bursts=scenario.load_pool("bearish"))
