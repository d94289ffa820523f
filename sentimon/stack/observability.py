"""Prometheus and Alertmanager (Debian packages) configured for the sentimon daemons."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from sentimon.config import Settings
from sentimon.stack.kafka_broker import StackError

PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")


def find_binary(names: tuple[str, ...]) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise StackError(f"{names[0]} not found: run scripts/setup.sh (Debian package {names[0]})")


def http_ok(url: str, *, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def prometheus_url(settings: Settings) -> str:
    return f"http://{settings.stack.host}:{settings.stack.prometheus_port}"


def alertmanager_url(settings: Settings) -> str:
    return f"http://{settings.stack.host}:{settings.stack.alertmanager_port}"


def _reachable(url: str) -> str:
    # A wildcard bind is reached over loopback; a link to 0.0.0.0 opens nothing.
    return url.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:")


def render_prometheus(settings: Settings, *, rule_files: list[str]) -> dict[str, Any]:
    """Prometheus config: scrape the sentimon daemons, load the rules, alert to Alertmanager."""
    interval = settings.stack.scrape_interval

    def job(name: str, host: str, port: int) -> dict[str, Any]:
        return {"job_name": name, "static_configs": [{"targets": [f"{host}:{port}"]}]}

    return {
        "global": {
            "scrape_interval": interval,
            "evaluation_interval": interval,
            "external_labels": {"stack": "sentimon"},
        },
        "rule_files": rule_files,
        "alerting": {
            "alertmanagers": [
                {"static_configs": [
                    {"targets": [f"{settings.stack.host}:{settings.stack.alertmanager_port}"]}
                ]}
            ]
        },
        "scrape_configs": [
            job("prometheus", settings.stack.host, settings.stack.prometheus_port),
            job("sentimon-scorer", settings.scorer.metrics_host, settings.scorer.metrics_port),
            job("sentimon-monitor", settings.monitor.metrics_host, settings.monitor.metrics_port),
            job("sentimon-notify", settings.notify.host, settings.notify.port),
        ],
    }


def write_prometheus_config(settings: Settings, conf_dir: Path) -> Path:
    """Render rules and the main config into ``conf_dir``; return the config path."""
    from sentimon.alerts.render import render_rules

    rules_dir = conf_dir / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    for old in rules_dir.glob("*.yml"):
        old.unlink()
    (rules_dir / "sentimon.yml").write_text(render_rules(settings))
    config = render_prometheus(settings, rule_files=[str(rules_dir / "*.yml")])
    path = conf_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_alertmanager_config(settings: Settings, conf_dir: Path) -> Path:
    from sentimon.deploy.render import render_alertmanager

    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / "alertmanager.yml"
    # It may hold the notify shared secret: readable by its owner only.
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(render_alertmanager(settings))
    return path


def prometheus_command(settings: Settings, config: Path, data_dir: Path) -> list[str]:
    return [
        find_binary(PROMETHEUS_BINARIES),
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address={settings.stack.host}:{settings.stack.prometheus_port}",
        "--web.enable-lifecycle",  # lets `stack up` reload rules without a restart
        # Alerts' generatorURL links point here, not at the machine's host name.
        f"--web.external-url={_reachable(prometheus_url(settings))}",
        "--storage.tsdb.retention.time=15d",
    ]


def alertmanager_command(settings: Settings, config: Path, data_dir: Path) -> list[str]:
    return [
        find_binary(ALERTMANAGER_BINARIES),
        f"--config.file={config}",
        f"--storage.path={data_dir}",
        f"--web.listen-address={settings.stack.host}:{settings.stack.alertmanager_port}",
        # A single embedded instance: no HA gossip port at all.
        "--cluster.listen-address=",
        f"--web.external-url={_reachable(alertmanager_url(settings))}",
    ]
