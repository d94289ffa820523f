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
from sentimon.monitor.report import (
    ReportData,
    ReportError,
    alert_spans,
    draw,
    parse_duration,
    query_range,
    render_report,
    time_format,
)
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
                                min_volume=10, detection_horizon_s=20, baseline_slot_s=10,
                                min_history_s=30)
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
        # Prometheus scrapes every second and evaluates the spike rule (pending, then firing).
        wait_for(lambda: bool(prom_query(
            obs.prometheus_url, 'ALERTS{alertname="NegativeSentimentSpike",topic="Macro"}')),
            "the spike alert in Prometheus", timeout_s=60)
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


# --- drawing a recorded series ----------------------------------------------------------------

def recorded(*, alerting: str = "Stock Movement") -> ReportData:
    """Ten minutes of four topics every 2 s: a thin first minute, then a burst on one topic."""
    start, step = 1_764_600_000.0, 2.0
    times = [start + i * step for i in range(300)]
    neg, mean, volume = {}, {}, {}
    for k, topic in enumerate(["Macro", "Earnings", alerting, "Energy | Oil"]):
        shares = [0.2 + 0.05 * k + (0.5 if i % 2 else -0.15) * (i < 30)
                  + (min(0.6, (i - 200) / 100) if topic == alerting and i > 200 else 0.0)
                  for i in range(300)]
        neg[topic] = list(zip(times, shares, strict=True))
        mean[topic] = [(t, 0.1 - v) for t, v in neg[topic]]
        volume[topic] = [(t, min(90.0, i * 1.0)) for i, t in enumerate(times)]
    alerts = {alerting: [(t, "pending") for t in times[215:235]]
              + [(t, "firing") for t in times[235:]]}
    return ReportData(start=start, end=times[-1], step=step, negative=neg, mean=mean,
                      volume=volume, alerts=alerts)


def colour_share(path: Path, rgb: tuple[int, int, int], *, tol: int = 12) -> float:
    import numpy as np
    from matplotlib.image import imread

    pixels = (imread(path)[:, :, :3] * 255).astype(int)
    return float((np.abs(pixels - np.array(rgb)).max(axis=2) <= tol).mean())


def test_alert_spans_split_states_and_gaps() -> None:
    points = [(0.0, "pending"), (2.0, "pending"), (4.0, "firing"), (6.0, "firing"),
              (20.0, "firing")]
    assert alert_spans(points, step=2.0) == [
        (0.0, 2.0, "pending"), (4.0, 6.0, "firing"), (20.0, 20.0, "firing")]


@pytest.mark.parametrize(("span", "pattern"), [(300, "%H:%M:%S"), (6 * 3600, "%H:%M"),
                                               (5 * 86400, "%m-%d %H:%M")])
def test_time_ticks_are_whole_times(span: float, pattern: str) -> None:
    assert time_format(span) == pattern


def test_draw_highlights_only_the_alerting_topic(tmp_path: Path) -> None:
    out = tmp_path / "r.png"
    result = draw(recorded(), out=out, min_volume=30)
    assert result.topics == ["Earnings", "Energy | Oil", "Macro", "Stock Movement"]
    assert result.series == 8 and result.alert_points == 85
    blue, orange, grey = (31, 119, 180), (255, 127, 14), (184, 184, 184)
    # The alerting topic has the first colour and is clearly drawn; no second colour is used
    # (the other three are grey context).
    assert colour_share(out, blue) > 0.004
    assert colour_share(out, grey) > 0.004
    assert colour_share(out, orange) == 0.0
    # Naming another topic highlights it too, in the next colour.
    out2 = tmp_path / "r2.png"
    draw(recorded(), out=out2, highlight=["Macro"])
    assert colour_share(out2, orange) > 0.002


def test_draw_without_any_alert_says_so(tmp_path: Path) -> None:
    data = recorded()
    data.alerts.clear()
    result = draw(data, out=tmp_path / "r.png", topics=["Macro", "Nope"])
    assert result.alert_points == 0 and result.topics == ["Macro"]
    assert result.skipped_topics == ["Nope"]
    with pytest.raises(ReportError, match="no sentimon_topic_"):
        draw(data, out=tmp_path / "none.png", topics=["Nope"])


def test_draw_a_recorded_demo_run(tmp_path: Path) -> None:
    """Series recorded from the Prometheus of a real demo run: the three alerting topics in
    the first three colours (the named one first), the rest grey, every alert sample counted."""
    import json

    raw = json.loads((Path(__file__).parent / "data" / "report_demo_run.json").read_text())
    start = 1_764_600_000.0

    def shift(series: dict[str, list[list[float]]]) -> dict[str, list[tuple[float, float]]]:
        return {k: [(start + t, v) for t, v in pts] for k, pts in series.items()}

    data = ReportData(
        start=start, end=start + raw["end"], step=raw["step"], negative=shift(raw["negative"]),
        mean=shift(raw["mean"]), volume=shift(raw["volume"]),
        alerts={k: [(start + t, s) for t, s in v] for k, v in raw["alerts"].items()})
    out = tmp_path / "demo.png"
    result = draw(data, out=out, highlight=["Stock Movement"], min_volume=20)
    assert result.alert_points == 102 + 97 + 10
    assert result.series == 12
    blue, orange, green = (31, 119, 180), (255, 127, 14), (44, 160, 44)
    for colour in (blue, orange, green):  # Stock Movement, then Financials and Markets
        assert colour_share(out, colour) > 0.001, colour
    assert colour_share(out, (214, 39, 40)) == 0.0  # no fourth colour: the others are grey


def test_parse_duration_zero_only_when_allowed() -> None:
    assert parse_duration("0s", allow_zero=True) == 0.0
    with pytest.raises(ValueError):
        parse_duration("0s")
    with pytest.raises(ValueError):
        parse_duration("-5s", allow_zero=True)
