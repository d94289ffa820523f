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
SLACK_RECEIVER = "sentimon-slack"

#: A monitor that cannot be scraped: its own spike figures cannot be trusted.
MONITOR_BROKEN = ("MonitorDown",)
#: Alerts it inhibits, on the same monitor instance only (``equal: [instance]``). A silent
#: source or a dead scorer inhibits nothing: missing records can only lower the detector's
#: evidence (fewer negatives than the baseline expects), never raise a false surge, and
#: muting every topic would hide a real surge in the data still flowing.
SPIKES = ("NegativeSentimentSpike", "TickerNegativeSpike")


def notify_url(settings: Settings) -> str:
    """Where Alertmanager posts: the ``sentimon notify`` receiver of these settings."""
    host = settings.notify.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"  # a wildcard bind is reached over loopback
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.notify.port}/alertmanager"


def notify_base_url(settings: Settings) -> str:
    """Where people reach ``sentimon notify`` (its page and report PNGs)."""
    if settings.notify.external_url:
        return settings.notify.external_url.rstrip("/")
    return notify_url(settings).removesuffix("/alertmanager")


def slack_receiver(settings: Settings) -> dict[str, Any] | None:
    """Alertmanager's own Slack receiver for ``alerts.slack_url``, or None when unset.

    Alertmanager retries a failed post (5xx, network) with backoff until the next group
    interval and counts it in ``alertmanager_notifications_failed_total{integration="slack"}``.
    """
    a = settings.alerts
    if a.slack_url is None:
        return None
    base = notify_base_url(settings)
    slack: dict[str, Any] = {
        "api_url": a.slack_url.get_secret_value(),
        "send_resolved": True,
        "title": '{{ .Status | toUpper }}: {{ .CommonLabels.alertname }} '
                 "{{ .CommonLabels.topic }}{{ .CommonLabels.ticker }}",
        "title_link": base + "/",
        "text": (
            "{{ range .Alerts }}*{{ .Status | toUpper }}* {{ .Annotations.summary }}\n"
            "{{ with .Labels.topic }}<" + base + "/report.png?topic={{ . | urlquery }}"
            "&since=3h|report PNG> · {{ end }}"
            "{{ with .Annotations.dashboard_url }}<{{ . }}|dashboard> · {{ end }}"
            "<{{ .GeneratorURL }}|Prometheus>\n{{ end }}"
        ),
    }
    if a.slack_channel:
        slack["channel"] = a.slack_channel
    return {"name": SLACK_RECEIVER, "slack_configs": [slack]}


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
    receivers: list[dict[str, Any]] = [{"name": RECEIVER, "webhook_configs": [webhook]}]
    route: dict[str, Any] = {"receiver": RECEIVER}
    slack = slack_receiver(settings)
    if slack is not None:
        receivers.append(slack)
        # Every alert to both: `continue` lets the second route match after the first.
        route["routes"] = [{"receiver": RECEIVER, "continue": True},
                           {"receiver": SLACK_RECEIVER}]
    return {
        "route": {
            **route,
            # One notification per alert and topic (or ticker): a spike on two topics is
            # two stories, while several scorer instances down are one.
            "group_by": ["alertname", "topic", "ticker"],
            "group_wait": check_duration(a.group_wait, field="alerts.group_wait"),
            "group_interval": check_duration(a.group_interval, field="alerts.group_interval"),
            "repeat_interval": check_duration(a.repeat_interval, field="alerts.repeat_interval"),
        },
        "inhibit_rules": [
            {
                "source_matchers": [f'alertname=~"{"|".join(MONITOR_BROKEN)}"'],
                "target_matchers": [f'alertname=~"{"|".join(SPIKES)}"'],
                "equal": ["instance"],
            }
        ],
        "receivers": receivers,
    }


def render_alertmanager(settings: Settings) -> str:
    """Alertmanager YAML: grouping, timings from ``alerts.*``, inhibition, the notify webhook
    and, with ``alerts.slack_url``, a Slack receiver.

    ``notify.secret`` (the webhook's Bearer credential) and ``alerts.slack_url`` are written
    into the file, so the caller must write it readable by its owner only.
    """
    header = "# Rendered by sentimon.deploy.render.render_alertmanager; see docs/alerts.md.\n"
    return header + yaml.safe_dump(alertmanager_config(settings), sort_keys=False,
                                   allow_unicode=True)


def render_grafana_datasource(settings: Settings, *, prometheus_url: str | None = None) -> str:
    """Grafana data-source provisioning pointing at the stack's Prometheus.

    The dashboards refer to the data source by its uid ``sentimon-prometheus``.
    """
    from sentimon.deploy.grafana.dashboards import datasource_provisioning

    url = prometheus_url or f"http://{settings.stack.host}:{settings.stack.prometheus_port}"
    doc = datasource_provisioning(url, time_interval=settings.stack.scrape_interval)
    return yaml.safe_dump(doc, sort_keys=False)
