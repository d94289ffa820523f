"""Notification content: figures, tickers, exemplars, encoded links, Slack blocks."""

from __future__ import annotations

import json

from sentimon.alerts.message import (
    MAX_ALERTS_PER_MESSAGE,
    exemplars,
    figures,
    figures_line,
    links,
    report_url,
    slack_message,
    tickers,
)
from sentimon.alerts.notify import notification_record

ALERT = {
    "status": "firing",
    "labels": {"alertname": "NegativeSentimentSpike", "topic": "Stock Movement"},
    "annotations": {
        "summary": "Negative sentiment spike on topic Stock Movement: <b> & co",
        "negative_share": "0.6700", "baseline_share": "0.3400", "volume": "212.0000",
        "zscore": "13.8000", "tickers": "tsla, AAPL,,TSLA",
        "exemplars": json.dumps([
            {"text": "Tesla recalls 2m cars", "source": "news", "ts": "2026-12-01T20:35:00Z",
             "tickers": ["TSLA"]},
            {"source": "no text: left out"},
        ]),
        "dashboard_url": "http://g/d/t?var-topic=Stock+Movement",
    },
    "startsAt": "2026-12-01T20:35:30Z",
    "generatorURL": "http://127.0.0.1:19090/graph?g0.expr=x",
}


def test_figures_read_numbers_and_skip_the_unknown() -> None:
    assert figures(ALERT["annotations"]) == {
        "negative_share": 0.67, "baseline_share": 0.34, "volume": 212.0, "zscore": 13.8}
    assert figures({"negative_share": "", "volume": "NaN", "zscore": "n/a"}) == {}


def test_figures_line() -> None:
    assert figures_line(figures(ALERT["annotations"])) == (
        "negative share 67% vs baseline 34%, 212 records in the short window, z=13.8")
    assert figures_line({}) == ""
    detector = {"observed_negatives": "48", "expected_negatives": "6.04", "evidence": "21.7",
                "threshold": "9.2", "negative_share": "0.8"}
    assert figures_line(figures(detector)) == (
        "negative share 80%, 48 negative records where 6.0 were expected, "
        "evidence 21.7 (threshold 9.2)")


def test_tickers_label_first_then_annotation_without_repeats() -> None:
    assert tickers({"ticker": "TSLA"}, {"tickers": "aapl, tsla"}) == ["TSLA", "AAPL"]
    assert tickers(ALERT["labels"], ALERT["annotations"]) == ["TSLA", "AAPL"]


def test_exemplars_keep_only_texts_and_survive_bad_json() -> None:
    assert exemplars(ALERT["annotations"]) == [{
        "text": "Tesla recalls 2m cars", "source": "news", "ts": "2026-12-01T20:35:00Z",
        "tickers": ["TSLA"]}]
    assert exemplars({"exemplars": "{not json"}) == []
    assert exemplars({"exemplars": '{"text": "not a list"}'}) == []


def test_links_are_encoded() -> None:
    assert report_url("http://h:1/", "Energy | Oil") == (
        "http://h:1/report.png?topic=Energy%20%7C%20Oil&since=3h")
    assert links(ALERT, base_url="http://h:1") == {
        "report": "http://h:1/report.png?topic=Stock%20Movement&since=3h",
        "dashboard": "http://g/d/t?var-topic=Stock+Movement",
        "prometheus": "http://127.0.0.1:19090/graph?g0.expr=x",
        "page": "http://h:1/",
    }
    assert links({"labels": {"ticker": "TSLA"}}, base_url=None) == {}


def test_slack_blocks_read_as_a_story() -> None:
    from datetime import UTC, datetime

    record = notification_record(ALERT, {"alerts": [ALERT]}, received_at=datetime.now(UTC),
                                 base_url="http://h:1")
    msg = slack_message([record])
    assert msg["text"] == record["text"]
    kinds = [b["type"] for b in msg["blocks"]]
    assert kinds == ["header", "section", "section", "section", "context"]
    header, summary, facts, quote, context = msg["blocks"]
    assert header["text"]["text"] == "FIRING NegativeSentimentSpike: Stock Movement"
    assert "&lt;b&gt; &amp; co" in summary["text"]["text"]  # Slack's control characters
    fields = [f["text"] for f in facts["fields"]]
    assert fields[:3] == ["*Negative share*\n67% (baseline 34%)",
                          "*Records (short window)*\n212", "*z-score*\n13.8"]
    assert "*Tickers*\n$TSLA, $AAPL" in fields
    assert quote["text"]["text"].startswith(">Tesla recalls 2m cars\n_news")
    assert "<http://h:1/report.png?topic=Stock%20Movement&since=3h|Report PNG>" in (
        context["elements"][0]["text"])


def test_slack_message_stays_within_slacks_block_limit() -> None:
    from datetime import UTC, datetime

    record = notification_record(ALERT, {"alerts": [ALERT]}, received_at=datetime.now(UTC))
    msg = slack_message([record] * 30)
    assert len(msg["blocks"]) <= 50
    assert msg["blocks"][-1]["elements"][0]["text"] == (
        f"and {30 - MAX_ALERTS_PER_MESSAGE} more alert(s) in this group")
    assert msg["text"].count("\n") == 29  # the fallback text still lists every alert
