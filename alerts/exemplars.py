"""Fetching a spike's exemplars from the monitor, for notifications people can act on.

The spike rules cannot put texts into annotations (Prometheus only has numbers), so when a
firing ``NegativeSentimentSpike`` or ``TickerNegativeSpike`` arrives without an
``exemplars`` annotation, ``sentimon notify`` asks the monitor
(``GET <notify.monitor_url>/exemplars?topic=T`` or ``?ticker=S``, served by
:mod:`sentimon.monitor.daemon`) for the series' most negative recent texts, the tickers its
negative records mention most and its figures now.

A notification is never lost or held up for this: the fetches of one webhook request run in
parallel and are all given up after ``timeout_s``; a failure is logged, counted in
``sentimon_notify_exemplar_fetches_total{result}`` and noted in the record
(``exemplars_error``), and the notification goes out without texts.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from sentimon.alerts import message

log = logging.getLogger(__name__)

#: Spike alerts and the label that names their series (as in ``alerts.render.SPIKE_ALERTS``).
SPIKE_ALERTS = {"NegativeSentimentSpike": "topic", "TickerNegativeSpike": "ticker"}
#: Seconds the notifier waits for the monitor, for all the alerts of one request together.
TIMEOUT_S = 2.0
#: ``result`` values of the fetch counter.
RESULTS = ("ok", "not_found", "error", "timeout")
#: Largest answer read from the monitor (5 texts of 280 characters are a few kB).
MAX_ANSWER_BYTES = 256_000
#: The monitor's figures, and the annotation (``message.FIGURES``) each one fills when absent.
FIGURE_NAMES = {"negative_share": "negative_share", "baseline_share": "baseline_share",
                "volume": "volume", "observed": "observed_negatives",
                "expected": "expected_negatives", "evidence": "evidence",
                "threshold": "threshold"}


class FetchMetrics:
    """``sentimon_notify_exemplar_fetches_total{result}`` in the receiver's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.fetches = Counter(
            "sentimon_notify_exemplar_fetches", "Exemplar requests to the monitor for firing "
            "spike alerts, by result (ok, not_found, error, timeout).",
            ["result"], registry=registry)
        for result in RESULTS:
            self.fetches.labels(result=result)


@dataclass(frozen=True)
class Fetched:
    """What the monitor said about one series, or why it said nothing (``error``)."""

    url: str
    body: Mapping[str, Any] | None = None
    error: str | None = None


def series_of(alert: Mapping[str, Any]) -> tuple[str, str] | None:
    """(``topic`` or ``ticker``, name) of a firing spike alert that lacks exemplars; else None."""
    labels: Mapping[str, Any] = alert.get("labels") or {}
    annotations: Mapping[str, Any] = alert.get("annotations") or {}
    family = SPIKE_ALERTS.get(str(labels.get("alertname", "")))
    if family is None or str(alert.get("status", "")).lower() != "firing":
        return None
    if annotations.get("exemplars") or not labels.get(family):
        return None
    return family, str(labels[family])


class ExemplarFetcher:
    """Asks the monitor at ``monitor_url`` for the exemplars of firing spike alerts."""

    def __init__(self, monitor_url: str, *, metrics: FetchMetrics,
                 timeout_s: float = TIMEOUT_S, workers: int = 4) -> None:
        self.monitor_url = monitor_url.rstrip("/")
        self.timeout_s = timeout_s
        self._metrics = metrics
        # Threads of their own: a monitor that does not answer holds these, never the request
        # past timeout_s (their socket timeout ends them soon after).
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="exemplars")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def url(self, family: str, name: str) -> str:
        query = urllib.parse.urlencode({family: name}, quote_via=urllib.parse.quote)
        return f"{self.monitor_url}/exemplars?{query}"

    def fetch_all(self, alerts: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Fetched]:
        """One answer per distinct series of ``alerts`` that wants exemplars, within timeout_s.

        Each series is counted and (on failure) logged once, here: a fetch still running when
        the wait ends is a ``timeout``, whatever it does afterwards.
        """
        wanted = list(dict.fromkeys(k for k in map(series_of, alerts) if k is not None))
        if not wanted:
            return {}
        futures = {self._pool.submit(self._fetch, *key): key for key in wanted}
        done, _ = concurrent.futures.wait(futures, timeout=self.timeout_s)
        out: dict[tuple[str, str], Fetched] = {}
        for future, key in futures.items():
            if future in done:
                result, fetched = future.result()  # _fetch never raises
            else:
                future.cancel()
                result, fetched = "timeout", Fetched(self.url(*key), error=self._late())
            self._metrics.fetches.labels(result=result).inc()
            if fetched.error is not None:
                log.warning("exemplars: cannot fetch from the monitor; notifying without", extra={
                    "url": fetched.url, "result": result, "error": fetched.error})
            out[key] = fetched
        return out

    def _late(self) -> str:
        return f"no answer within {self.timeout_s:g} s"

    def _fetch(self, family: str, name: str) -> tuple[str, Fetched]:
        """(result label, what came back) for one series; never raises."""
        url = self.url(family, name)
        try:
            req = urllib.request.Request(url, headers={"Accept": "application/json"})
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                body = json.loads(resp.read(MAX_ANSWER_BYTES))
            if not isinstance(body, dict) or not isinstance(body.get("texts", []), list):
                raise ValueError("the answer is not an exemplars object")
        except urllib.error.HTTPError as exc:
            return ("not_found" if exc.code == 404 else "error"), Fetched(
                url, error=f"HTTP {exc.code}")
        except (TimeoutError, urllib.error.URLError) as exc:
            # The socket's own timeout can end a fetch just before fetch_all stops waiting:
            # the same outcome, counted the same way.
            if isinstance(exc, TimeoutError) or isinstance(exc.reason, TimeoutError):
                return "timeout", Fetched(url, error=self._late())
            return "error", Fetched(url, error=f"{type(exc).__name__}: {exc}"[:300])
        except Exception as exc:  # refused, cut off, not JSON; never break a notification
            return "error", Fetched(url, error=f"{type(exc).__name__}: {exc}"[:300])
        return "ok", Fetched(url, body=body)


def enrich(record: dict[str, Any], fetched: Fetched) -> None:
    """Put what the monitor said into a notification record (in place).

    ``exemplars`` (the texts, most negative first), ``tickers`` (the alert's own first, then
    the most mentioned), ``ticker_mentions`` ([symbol, count]), the figures the annotations
    lack, and ``exemplars_source`` (URL, span) or ``exemplars_error``.
    """
    if fetched.body is None:
        record["exemplars_error"] = fetched.error or "no answer"
        return
    body = fetched.body
    texts = [t for t in body.get("texts") or [] if isinstance(t, dict)]
    record["exemplars"] = message.exemplars({"exemplars": texts})
    for shown, raw in zip(record["exemplars"], texts, strict=False):
        p = raw.get("p_negative")
        if isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p):
            shown["p_negative"] = float(p)
    mentions = [[str(m[0]), int(m[1])] for m in body.get("tickers") or []
                if isinstance(m, list) and len(m) == 2 and isinstance(m[1], int)]
    record["ticker_mentions"] = mentions
    record["tickers"] = list(dict.fromkeys([*record.get("tickers", []),
                                            *(m[0] for m in mentions)]))
    figures = dict(record.get("figures") or {})
    for key, name in FIGURE_NAMES.items():
        value = body.get(key)
        if name not in figures and isinstance(value, int | float) and not isinstance(value, bool) \
                and math.isfinite(value):
            figures[name] = float(value)
    record["figures"] = figures
    record["exemplars_source"] = {"url": fetched.url, "since": body.get("since"),
                                  "watermark": body.get("watermark")}
