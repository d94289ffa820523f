"""Background server processes tracked by pid file, so ``down`` stops exactly what ``up`` started.

A pid alone is not an identity: pids are recycled. The record keeps the process's start time
in clock ticks since boot (``/proc/<pid>/stat``, field 22), which the wall clock cannot move;
psutil's ``create_time()`` is derived from the wall-clock boot time and shifts when a new
machine's clock jumps, which once made every running server look dead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


class ProcessStopError(RuntimeError):
    """A recorded process would not stop; its pid file is kept so a later ``down`` can retry."""


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None where /proc has no such field."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def _wait_for_exec(pid: int, *, timeout_s: float = 5.0) -> None:
    """Return once ``pid`` shows its own command line, not ours or an empty one.

    ``Popen`` returns when the child's close-on-exec pipe closes, which the kernel does before
    the new program's arguments are in place: for a moment /proc shows this process's command
    line or none. A record compared by command line in that moment would call its own server
    dead (seen once in CI, under load).
    """
    own = psutil.Process().cmdline()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            seen = psutil.Process(pid).cmdline()
        except psutil.Error:
            return  # exited or unreadable: alive() will say so
        if seen and seen != own:
            return
        time.sleep(0.005)


@dataclass(frozen=True)
class ProcessRecord:
    """What ``stack up`` wrote about one server it started."""

    name: str
    pid: int
    create_time: float  # wall-clock start, for people reading the file; not an identity
    cmdline: list[str]
    log: str
    url: str
    start_ticks: int | None = None  # the identity; None in files written before it existed

    def _is_ours(self, proc: psutil.Process) -> bool:
        if self.start_ticks is not None:
            ticks = start_ticks(self.pid)
            if ticks is not None:
                return ticks == self.start_ticks
        # No /proc (not Linux) or an old record: the command line is the next best identity.
        return proc.cmdline() == self.cmdline

    def alive(self) -> bool:
        """True while the recorded process (not a later one with its pid) runs."""
        try:
            proc = psutil.Process(self.pid)
            return proc.status() != psutil.STATUS_ZOMBIE and self._is_ours(proc)
        except psutil.Error:
            return False


class ProcessTable:
    """Pid files under ``<home>/run``: one JSON record per server."""

    def __init__(self, home: Path) -> None:
        self.dir = home / "run"

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def names(self) -> list[str]:
        """Every name with a pid file, running or not."""
        return sorted(p.stem for p in self.dir.glob("*.json")) if self.dir.is_dir() else []

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
        _wait_for_exec(proc.pid)
        rec = ProcessRecord(name=name, pid=proc.pid, create_time=psutil.Process(proc.pid).create_time(),
                            cmdline=cmd, log=str(log), url=url, start_ticks=start_ticks(proc.pid))
        # Write then rename: a reader never sees half a record.
        tmp = self.path(name).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(rec)))
        tmp.replace(self.path(name))
        return rec

    def stop(self, name: str, *, timeout_s: float = 20.0) -> bool:
        """SIGTERM the recorded process, SIGKILL after ``timeout_s``; True if one was running.

        The pid file goes only once its process is gone; if it will not die, the file stays and
        :class:`ProcessStopError` says so, so nothing that may still run is forgotten.
        """
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
            except (psutil.Error, OSError) as exc:
                raise ProcessStopError(
                    f"{name} (pid {rec.pid}) did not stop: {exc!r}; pid file kept at "
                    f"{self.path(name)}") from exc
            if rec.alive():
                raise ProcessStopError(f"{name} (pid {rec.pid}) survived SIGKILL; pid file kept "
                                       f"at {self.path(name)}")
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
