"""Render the shipped Prometheus rules with the values that come from configuration.

The rules live as plain YAML in ``alerts/rules/sentimon.yml`` (checked and unit-tested by
promtool as they are). Three things in them are deployment choices, not code: how long a
spike must hold before it fires (``alerts.spike_for``), how long it keeps firing once the
evidence drops (``alerts.spike_keep_firing_for``) and where the dashboard lives
(``alerts.dashboard_url``). :func:`render_rules` sets exactly those.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sentimon.config import ConfigError, Settings

RULES_FILE = Path(__file__).parent / "rules" / "sentimon.yml"

#: Alerts whose ``for:`` comes from ``alerts.spike_for``, with the label their link selects.
SPIKE_ALERTS = {"NegativeSentimentSpike": "topic", "TickerNegativeSpike": "ticker"}

# Prometheus' duration syntax (model.ParseDuration): units in descending order, e.g. 1h30m.
_DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")


def check_duration(value: str, *, field: str, allow_zero: bool = False) -> str:
    """Return ``value`` if Prometheus accepts it as a duration, else raise :class:`ConfigError`.

    ``allow_zero`` admits ``0s`` (a ``for:`` of zero fires at the first evaluation).
    """
    if (not value or not _DURATION.match(value)
            or not (re.search(r"[1-9]", value) or (allow_zero and re.search(r"\d", value)))):
        kind = "non-negative" if allow_zero else "positive"
        raise ConfigError(
            f"{field} must be a {kind} Prometheus duration such as 30s, 10m or 1h30m "
            f"(got {value!r})"
        )
    return value


def dashboard_link(base_url: str, *, label: str) -> str:
    """The dashboard URL with the alert's topic/ticker selected (URL-encoded) as a variable."""
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}var-{label}={{{{ $labels.{label} | urlquery }}}}"


def load_rules(path: Path = RULES_FILE) -> dict[str, Any]:
    """The shipped rules file as a dict."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "groups" not in data:
        raise ConfigError(f"{path} is not a Prometheus rules file (no 'groups')")
    return data


def render_rules(settings: Settings, *, source: Path = RULES_FILE) -> str:
    """The rules YAML with the spike alerts' ``for:``, ``keep_firing_for:`` and dashboard link."""
    spike_for = check_duration(settings.alerts.spike_for, field="alerts.spike_for",
                               allow_zero=True)
    keep_for = check_duration(settings.alerts.spike_keep_firing_for,
                              field="alerts.spike_keep_firing_for")
    data = load_rules(source)
    seen = set()
    for group in data["groups"]:
        for rule in group.get("rules", []):
            label = SPIKE_ALERTS.get(rule.get("alert", ""))
            if label is None:
                continue
            rule["for"] = spike_for
            rule["keep_firing_for"] = keep_for
            rule.setdefault("annotations", {})["dashboard_url"] = dashboard_link(
                settings.alerts.dashboard_url, label=label
            )
            seen.add(rule["alert"])
    missing = set(SPIKE_ALERTS) - seen
    if missing:
        raise ConfigError(f"{source} lacks the alerts {sorted(missing)}")
    header = f"# Rendered by sentimon.alerts.render from {source.name}; edit that file instead.\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
