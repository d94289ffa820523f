"""Process identity by pid file survives wall-clock jumps and never forgets a live process."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from sentimon.stack.process import ProcessTable, _wait_for_exec, start_ticks

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _rewrite(table: ProcessTable, name: str, **changes: object) -> None:
    rec = table.get(name)
    assert rec is not None
    table.path(name).write_text(json.dumps(dataclasses.asdict(dataclasses.replace(rec, **changes))))


@pytest.fixture
def table(tmp_path: Path) -> ProcessTable:
    return ProcessTable(tmp_path)


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize("jump_s", [39.0, -3600.0])
def test_clock_jump_keeps_process_alive_and_stoppable(table: ProcessTable, tmp_path: Path,
                                                      jump_s: float) -> None:
    rec = table.start("server", SLEEPER, log=tmp_path / "server.log", url="-")
    try:
        # After a jump, psutil's create_time() (wall-clock boot time + ticks) no longer matches
        # what was recorded; shifting the recorded value is the same mismatch.
        _rewrite(table, "server", create_time=rec.create_time - jump_s)
        assert table.running("server") is not None
        assert table.stop("server", timeout_s=5) is True
        assert _gone(rec.pid)
        assert not table.path("server").exists()
    finally:
        if not _gone(rec.pid):
            psutil.Process(rec.pid).kill()


def test_recycled_pid_is_not_ours_and_is_left_alone(table: ProcessTable, tmp_path: Path) -> None:
    rec = table.start("server", SLEEPER, log=tmp_path / "server.log", url="-")
    try:
        assert rec.start_ticks == start_ticks(rec.pid)
        # Another program now holds this pid: a different start and command line.
        _rewrite(table, "server", start_ticks=(rec.start_ticks or 0) + 1, cmdline=["other"])
        assert table.running("server") is None
        assert table.stop("server") is False
        assert not _gone(rec.pid), "a process that is not ours was signalled"
        assert not table.path("server").exists()
    finally:
        psutil.Process(rec.pid).kill()


def test_record_without_start_ticks_falls_back_to_command_line(table: ProcessTable,
                                                               tmp_path: Path) -> None:
    rec = table.start("server", SLEEPER, log=tmp_path / "server.log", url="-")
    try:
        _rewrite(table, "server", start_ticks=None, create_time=0.0)
        assert table.running("server") is not None
        assert table.stop("server", timeout_s=5) is True
        assert _gone(rec.pid)
    finally:
        if not _gone(rec.pid):
            psutil.Process(rec.pid).kill()


def test_record_is_written_after_the_child_shows_its_own_command_line() -> None:
    # A forked child shows this process's command line until it execs; Popen can return inside
    # that window's tail, and a record compared by command line then would call it dead.
    pid = os.fork()
    if pid == 0:  # child: linger as a copy of pytest, then become the sleeper
        time.sleep(0.3)
        os.execv(SLEEPER[0], SLEEPER)
    try:
        assert psutil.Process(pid).cmdline() == psutil.Process().cmdline()
        _wait_for_exec(pid)
        assert psutil.Process(pid).cmdline() == SLEEPER
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def test_start_ticks_reads_names_with_spaces_and_parentheses(tmp_path: Path) -> None:
    assert start_ticks(psutil.Process().pid) == start_ticks(psutil.Process().pid)
    assert isinstance(start_ticks(psutil.Process().pid), int)
    assert start_ticks(2**22 + 12345) is None


def test_stack_down_stops_every_recorded_process(tmp_path: Path) -> None:
    from sentimon.config import Settings
    from sentimon.stack.manager import Stack

    stack = Stack(Settings(home=tmp_path))
    recs = [stack.table.start(name, SLEEPER, log=tmp_path / f"{name}.log", url="-")
            for name in ("monitor", "kafka-7", "prometheus")]
    try:
        stopped = stack.down()
        assert stopped == ["monitor", "kafka-7", "prometheus"]
        assert all(_gone(r.pid) for r in recs)
        assert stack.table.names() == []
    finally:
        for r in recs:
            if not _gone(r.pid):
                psutil.Process(r.pid).kill()
