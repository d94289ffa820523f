"""``sentimon stack``: start, inspect and stop the embedded Kafka, Prometheus and Alertmanager.

State lives under ``SENTIMON_HOME``: ``run/`` (pid records), ``logs/``, ``kafka/``,
``prometheus/``, ``alertmanager/``. ``up`` is idempotent: a server that already answers is
left alone. ``down`` stops exactly the processes ``up`` recorded.
"""

from __future__ import annotations

import logging
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sentimon.config import Settings
from sentimon.kafka.admin import ensure_pipeline_topics, wait_for_broker
from sentimon.stack import observability as obs
from sentimon.stack.kafka_broker import BrokerSpec, KafkaBroker, StackError, resolve_jars
from sentimon.stack.process import ProcessTable, wait_until

log = logging.getLogger(__name__)

COMPONENTS = ("kafka", "prometheus", "alertmanager")
# Daemons that `sentimon demo` starts in the background; `down` stops them before the servers.
DAEMONS = ("scorer", "monitor", "notify")


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    running: bool
    pid: int | None
    url: str
    answering: bool
    log: str | None
    kind: str = "server"  # or "daemon" (scorer, monitor, notify)


class Stack:
    """The embedded default stack for one ``SENTIMON_HOME``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.home
        self.table = ProcessTable(self.home)

    # -- paths -----------------------------------------------------------------------------
    def log_path(self, name: str) -> Path:
        return self.home / "logs" / f"{name}.log"

    def broker(self) -> KafkaBroker:
        st = self.settings.stack
        spec = BrokerSpec(
            data_dir=self.home / "kafka", host=st.host, port=st.kafka_port,
            controller_port=st.kafka_controller_port, heap=st.kafka_heap,
        )
        return KafkaBroker(spec, self.table)

    # -- lifecycle ---------------------------------------------------------------------------
    def up(self, components: list[str] | None = None, *, timeout_s: float = 90.0) -> None:
        """Start what is not running yet and wait until each server answers."""
        wanted = [c for c in COMPONENTS if c in (components or self.settings.stack.components)]
        self.home.mkdir(parents=True, exist_ok=True)
        # Alertmanager first: Prometheus sends to it as soon as rules evaluate.
        for name in sorted(wanted, key=("alertmanager", "prometheus", "kafka").index):
            getattr(self, f"_up_{name}")(timeout_s)

    def _up_kafka(self, timeout_s: float) -> None:
        if self.table.running("kafka") is None:
            libs = resolve_jars()
            broker = self.broker()
            broker.prepare(libs)
            rec = broker.start(libs, self.log_path("kafka"))
            log.info("kafka starting", extra={"pid": rec.pid, "bootstrap": broker.spec.bootstrap})
        self._await("kafka", lambda: wait_for_broker(self.settings.kafka, timeout_s=2.0), timeout_s)
        ensure_pipeline_topics(self.settings.kafka, self.settings.topics)

    def _up_prometheus(self, timeout_s: float) -> None:
        conf = obs.write_prometheus_config(self.settings, self.home / "prometheus")
        url = obs.prometheus_url(self.settings)
        if self.table.running("prometheus") is None:
            cmd = obs.prometheus_command(self.settings, conf, self.home / "prometheus" / "data")
            self.table.start("prometheus", cmd, log=self.log_path("prometheus"), url=url)
        elif obs.http_ok(url + "/-/ready"):
            _post(url + "/-/reload")  # pick up changed rules or ports on a second `up`
        self._await("prometheus", lambda: obs.http_ok(url + "/-/ready"), timeout_s)

    def _up_alertmanager(self, timeout_s: float) -> None:
        conf = obs.write_alertmanager_config(self.settings, self.home / "alertmanager")
        url = obs.alertmanager_url(self.settings)
        if self.table.running("alertmanager") is None:
            cmd = obs.alertmanager_command(self.settings, conf, self.home / "alertmanager" / "data")
            self.table.start("alertmanager", cmd, log=self.log_path("alertmanager"), url=url)
        elif obs.http_ok(url + "/-/ready"):
            _post(url + "/-/reload")
        self._await("alertmanager", lambda: obs.http_ok(url + "/-/ready"), timeout_s)

    def _await(self, name: str, check: object, timeout_s: float) -> None:
        def ready() -> bool:
            if self.table.running(name) is None:
                raise StackError(f"{name} exited during start-up; see {self.log_path(name)}:\n"
                                 + _tail(self.log_path(name)))
            return bool(check())  # type: ignore[operator]

        if not wait_until(ready, timeout_s=timeout_s, interval_s=0.5):
            raise StackError(f"{name} did not answer within {timeout_s:.0f}s; see "
                             f"{self.log_path(name)}:\n" + _tail(self.log_path(name)))

    def down(self, components: list[str] | None = None) -> list[str]:
        """Stop what ``up`` started; return the names that were running."""
        if components:
            order = [name for name in reversed(COMPONENTS) if name in components]
        else:
            # Every pid file, not just the names known here: whatever ``up``, the demo or an
            # earlier version recorded is stopped, daemons before the servers they talk to.
            recorded = self.table.names()
            order = [*DAEMONS, *[n for n in recorded if n not in DAEMONS + COMPONENTS],
                     *reversed(COMPONENTS)]
        return [name for name in order if self.table.stop(name)]

    def status(self) -> list[ComponentStatus]:
        """Servers, then daemons: recorded pid, URL, and whether it answers (ready)."""
        out = []
        for name in COMPONENTS:
            rec = self.table.running(name)
            if name == "kafka":
                url = f"kafka://{self.settings.kafka.bootstrap_servers}"
                answering = rec is not None and wait_for_broker(self.settings.kafka, timeout_s=0)
            else:
                url = (obs.prometheus_url if name == "prometheus" else obs.alertmanager_url)(
                    self.settings)
                answering = obs.http_ok(url + "/-/ready")
            out.append(ComponentStatus(name=name, running=rec is not None,
                                       pid=rec.pid if rec else None, url=url,
                                       answering=answering, log=str(self.log_path(name))))
        return out + daemon_status(self.settings)


def daemon_url(settings: Settings, name: str) -> str:
    """Base URL of a daemon's /metrics, /healthz and /readyz."""
    host, port = {
        "scorer": (settings.scorer.metrics_host, settings.scorer.metrics_port),
        "monitor": (settings.monitor.metrics_host, settings.monitor.metrics_port),
        "notify": (settings.notify.host, settings.notify.port),
    }[name]
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"  # a wildcard bind is reached over loopback
    return f"http://{host}:{port}"


def daemon_status(settings: Settings, *, timeout_s: float = 2.0) -> list[ComponentStatus]:
    """The scorer, monitor and notify daemons: recorded pid (if started by `sentimon demo`),
    URL and whether ``/readyz`` answers 200 (a daemon started elsewhere counts too)."""
    table = ProcessTable(settings.home)
    out = []
    for name in DAEMONS:
        rec = table.running(name)
        url = daemon_url(settings, name)
        out.append(ComponentStatus(
            name=name, running=rec is not None, pid=rec.pid if rec else None, url=url,
            answering=obs.http_ok(url + "/readyz", timeout_s=timeout_s),
            log=str(settings.home / "logs" / f"{name}.log"), kind="daemon",
        ))
    return out


def _post(url: str) -> None:
    req = urllib.request.Request(url, method="POST", data=b"")
    try:
        urllib.request.urlopen(req, timeout=5).close()
    except OSError as exc:
        log.warning("reload failed", extra={"url": url, "error": repr(exc)})


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
