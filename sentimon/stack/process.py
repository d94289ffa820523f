"""Background server processes tracked by pid file, so ``down`` stops exactly what ``up`` started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class ProcessRecord:
    """What ``stack up`` wrote about one server it started."""

    name: str
    pid: int
    create_time: float  # guards against a recycled pid belonging to another program
    cmdline: list[str]
    log: str
    url: str

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            return (
                abs(proc.create_time() - self.create_time) < 1.0
                and proc.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False


class ProcessTable:
    """Pid files under ``<home>/run``: one JSON record per server."""

    def __init__(self, home: Path) -> None:
        self.dir = home / "run"

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def get(self, name: str) -> ProcessRecord | None:
        try:
            return ProcessRecord(**json.loads(self.path(name).read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def running(self, name: str) -> ProcessRecord | None:
        rec = self.get(name)
        return rec if rec is not None and rec.alive() else None

    def start(self, name: str, cmd: list[str], *, log: Path, url: str,
              env: dict[str, str] | None = None, cwd: Path | None = None) -> ProcessRecord:
        """Start ``cmd`` detached from this terminal, output appended to ``log``."""
        self.dir.mkdir(parents=True, exist_ok=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, cwd=cwd,
                start_new_session=True,  # survives the CLI exiting and Ctrl-C in its terminal
            )
        rec = ProcessRecord(name=name, pid=proc.pid, create_time=psutil.Process(proc.pid).create_time(),
                            cmdline=cmd, log=str(log), url=url)
        self.path(name).write_text(json.dumps(asdict(rec)))
        return rec

    def stop(self, name: str, *, timeout_s: float = 20.0) -> bool:
        """SIGTERM the recorded process, SIGKILL after ``timeout_s``; True if one was running."""
        rec = self.get(name)
        if rec is None:
            return False
        was_alive = rec.alive()
        if was_alive:
            try:
                proc = psutil.Process(rec.pid)
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout_s)
                except psutil.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            except psutil.NoSuchProcess:
                pass
        self.path(name).unlink(missing_ok=True)
        return was_alive


def wait_until(check: object, *, timeout_s: float, interval_s: float = 0.25) -> bool:
    """Poll ``check()`` until it returns true or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():  # type: ignore[operator]
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
