"""``sentimon report``: the PNG drawn from a real Prometheus scraping a real monitor."""

from __future__ import annotations

import json
import math
import socket
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from sentimon.cli import main
from sentimon.config import TopicSettings
from sentimon.monitor.report import ReportError, parse_duration, query_range, render_report
from tests.conftest import Observability
from tests.test_monitor_daemon import (
    ThreadMonitor,
    monitor_settings,
    produce,
    scored,
    wait_for,
    wait_records,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172_800), ("1w", 604_800), ("45", 45),
    ("1.5h", 5400),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1y", "-1h", "0m", "1 hour"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return int(port)


def test_unreachable_prometheus_is_a_clear_error(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(ReportError, match="unreachable"):
        render_report(prometheus_url=url, since_s=3600, out=tmp_path / "r.png")
    code = main(["report", "--prometheus-url", url, "--out", str(tmp_path / "r.png")])
    assert code == 1
    err = capsys.readouterr().err
    assert f"Prometheus at {url} is unreachable" in err
    assert not (tmp_path / "r.png").exists()


def test_bad_since_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--since", "soon"]) == 2
    assert "--since" in capsys.readouterr().err


def prom_query(url: str, query: str) -> list[dict[str, object]]:
    full = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(full, timeout=5) as resp:
        return list(json.load(resp)["data"]["result"])


@pytest.mark.integration
@pytest.mark.slow
def test_report_from_real_prometheus(observability: Observability, topics: TopicSettings,
                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    obs = observability
    settings = monitor_settings(obs.settings, topics, port=obs.settings.monitor.metrics_port,
                                min_volume=10)
    w = math.floor(time.time()) - 5
    base = [scored(f"b{i}", w - 100 - i, topic="Macro",
                   sentiment="negative" if i % 5 == 0 else "neutral") for i in range(100)]
    base += [scored(f"e{i}", w - i * 7, topic="Earnings", sentiment="positive", score=0.5)
             for i in range(40)]
    spike = [scored(f"s{i}", w - i, topic="Macro", sentiment="negative" if i % 6 else "neutral",
                    score=-0.5 if i % 6 else 0.0) for i in range(24)]
    produce(settings, [*base, *spike])

    with ThreadMonitor(settings) as mon:
        wait_records(mon.port, len(base) + len(spike))
        # Prometheus scrapes every second and evaluates the spike rule (pending for 10m).
        wait_for(lambda: bool(prom_query(
            obs.prometheus_url,
            'ALERTS{alertname="NegativeSentimentSpike",topic="Macro",alertstate="pending"}')),
            "the pending spike alert in Prometheus", timeout_s=60)
        time.sleep(3)  # a few more scrapes, so every line has several points
        out = tmp_path / "report.png"
        result = render_report(prometheus_url=obs.prometheus_url, since_s=120, out=out,
                               topics=["Macro", "Earnings", "Nope"])
        code = main(["report", "--prometheus-url", obs.prometheus_url, "--since", "2m",
                     "--out", str(tmp_path / "cli.png"), "--topics", "Macro"])

    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert result.bytes == len(data) > 20_000  # two panels of lines, not an empty frame
    assert result.topics == ["Earnings", "Macro"]
    assert result.skipped_topics == ["Nope"]
    assert result.series == 4  # negative share and mean score of each topic
    assert result.alert_points >= 1
    import matplotlib.image

    height, width = matplotlib.image.imread(out).shape[:2]
    assert (width, height) == (1200, 750)

    assert code == 0
    printed = capsys.readouterr().out
    assert "1 topics, 2 series" in printed
    assert (tmp_path / "cli.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.integration
def test_no_data_and_bad_query_are_clear_errors(observability: Observability,
                                                tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no sentimon_topic_\\* data for topics Nope"):
        render_report(prometheus_url=observability.prometheus_url, since_s=60,
                      out=tmp_path / "r.png", topics=["Nope"])
    now = time.time()
    with pytest.raises(ReportError, match="HTTP 400"):
        query_range(observability.prometheus_url, "sum(", start=now - 60, end=now, step=1)
