"""Render the Alertmanager configuration (and Grafana's data source) from :class:`Settings`.

The stack (``sentimon stack up``) writes what these functions return next to its data; a
hand-run Alertmanager can start from ``deploy/alertmanager.example.yml`` instead, which shows
where e-mail and Slack receivers go.
"""

from __future__ import annotations

from typing import Any

import yaml

from sentimon.alerts.render import check_duration
from sentimon.config import Settings

RECEIVER = "sentimon-notify"

#: Alerts that mean "the sentiment figures cannot be trusted right now".
PIPELINE_BROKEN = ("ScorerDown", "MonitorDown", "NoDataFromSource")
#: Alerts those inhibit: a spike computed from stale or missing data is noise.
SPIKES = ("NegativeSentimentSpike", "TickerNegativeSpike")


def notify_url(settings: Settings) -> str:
    """Where Alertmanager posts: the ``sentimon notify`` receiver of these settings."""
    host = settings.notify.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"  # a wildcard bind is reached over loopback
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.notify.port}/alertmanager"


def alertmanager_config(settings: Settings) -> dict[str, Any]:
    """The Alertmanager configuration as a dict (see :func:`render_alertmanager`)."""
    a = settings.alerts
    webhook: dict[str, Any] = {
        "url": notify_url(settings),
        "send_resolved": True,
        "max_alerts": 0,
    }
    if settings.notify.secret is not None:
        webhook["http_config"] = {
            "authorization": {
                "type": "Bearer",
                "credentials": settings.notify.secret.get_secret_value(),
            }
        }
    return {
        "route": {
            "receiver": RECEIVER,
            # One notification per alert and topic (or ticker): a spike on two topics is
            # two stories, while several scorer instances down are one.
            "group_by": ["alertname", "topic", "ticker"],
            "group_wait": check_duration(a.group_wait, field="alerts.group_wait"),
            "group_interval": check_duration(a.group_interval, field="alerts.group_interval"),
            "repeat_interval": check_duration(a.repeat_interval, field="alerts.repeat_interval"),
        },
        "inhibit_rules": [
            {
                "source_matchers": [f'alertname=~"{"|".join(PIPELINE_BROKEN)}"'],
                "target_matchers": [f'alertname=~"{"|".join(SPIKES)}"'],
            }
        ],
        "receivers": [{"name": RECEIVER, "webhook_configs": [webhook]}],
    }


def render_alertmanager(settings: Settings) -> str:
    """Alertmanager YAML: grouping, timings from ``alerts.*``, inhibition, the notify webhook.

    When ``notify.secret`` is set it is written into the file as the webhook's Bearer
    credential, so the caller must write the file readable by its owner only.
    """
    header = "# Rendered by sentimon.deploy.render.render_alertmanager; see docs/alerts.md.\n"
    return header + yaml.safe_dump(alertmanager_config(settings), sort_keys=False)


def render_grafana_datasource(settings: Settings, *, prometheus_url: str | None = None) -> str:
    """Grafana data-source provisioning pointing at the stack's Prometheus.

    The dashboards refer to the data source by its uid ``sentimon-prometheus``.
    """
    from sentimon.deploy.grafana.dashboards import datasource_provisioning

    url = prometheus_url or f"http://{settings.stack.host}:{settings.stack.prometheus_port}"
    doc = datasource_provisioning(url, time_interval=settings.stack.scrape_interval)
    return yaml.safe_dump(doc, sort_keys=False)
