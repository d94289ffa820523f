"""RepeatFilter: the first line of a kind passes, repeats within the interval are counted."""

from __future__ import annotations

import logging

from sentimon.kafka.logfilter import RepeatFilter


def _record(name: str, msg: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_repeats_are_held_back_and_counted() -> None:
    now = [0.0]
    f = RepeatFilter(interval_s=30, clock=lambda: now[0])
    assert f.filter(_record("kafka.conn", "error %s on node %d", "X", 1))
    passed = [f.filter(_record("kafka.conn", "error %s on node %d", "X", i)) for i in range(300)]
    assert not any(passed)
    # Another kind (message template or level) is its own.
    assert f.filter(_record("kafka.conn", "other %s", 1))
    assert f.filter(_record("kafka.conn", "error %s on node %d", "X", 1, level=logging.ERROR))
    now[0] = 30.0
    rec = _record("kafka.conn", "error %s on node %d", "X", 1)
    assert f.filter(rec) and rec.suppressed == 300  # type: ignore[attr-defined]


def test_other_loggers_pass_untouched() -> None:
    f = RepeatFilter(clock=lambda: 0.0)
    for _ in range(3):
        assert f.filter(_record("sentimon.ingest.scorer", "scorer giving up"))
        assert f.filter(_record("kafkaesque", "not a kafka logger"))


def test_install_and_remove_on_handlers() -> None:
    handler = logging.Handler()
    f = RepeatFilter(clock=lambda: 0.0)
    installed = f.install([handler])
    assert f in handler.filters
    f.remove(installed)
    assert f not in handler.filters
