"""The ``sentimon`` command: options checked by the settings model, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentimon.cli import main, with_options
from sentimon.config import ConfigError, Settings


def test_with_options_keeps_what_is_not_given() -> None:
    settings = Settings()
    assert with_options(settings, "notify", port=None) is settings
    changed = with_options(settings, "notify", port=29102, host=None)
    assert changed.notify.port == 29102 and changed.notify.host == settings.notify.host
    assert settings.notify.port == 19102  # the original is untouched


@pytest.mark.parametrize(("options", "message"), [
    ({"port": 70000}, "--port: Input should be less than 65536 (got 70000)"),
    ({"port": -1}, "--port: Input should be greater than or equal to 0 (got -1)"),
    ({"history": 0}, "--history: Input should be greater than or equal to 1 (got 0)"),
])
def test_with_options_refuses_what_the_config_would(options: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        with_options(Settings(), "notify", **options)
    assert str(err.value) == message


def test_bad_flag_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify", "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err == "sentimon: --port: Input should be less than 65536 (got 70000)\n"


def test_every_flag_says_its_default_and_meaning() -> None:
    """Each option of the commands this test lists has help text, and names a default
    unless it is a switch or the default is nothing."""
    import argparse

    from sentimon.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("", "notify", "doctor", "demo", "stack up", "stack status"):
        if not command:
            check_options(parser, "sentimon")
            continue
        p = sub.choices[command.split()[0]]
        if " " in command:
            inner = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
            p = inner.choices[command.split()[1]]
        check_options(p, command)


def check_options(parser: object, command: str) -> None:
    import argparse

    for action in parser._actions:  # type: ignore[attr-defined]
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        assert action.help, f"{command} {action.option_strings[0]} has no help"
        if not isinstance(action, argparse._StoreTrueAction):
            assert "default" in action.help, f"{command} {action.option_strings[0]}: {action.help}"


def test_daemon_flags_are_checked_by_the_settings_model(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad daemon flag is a one-line error naming it, before anything starts."""
    assert main(["monitor", "--metrics-port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "sentimon: --metrics-port: Input should be less than 65536 (got 70000)"
    assert "Traceback" not in err


def test_a_missing_path_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-model"
    assert main(["calibrate", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sentimon calibrate: ") and str(missing) in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["export", str(missing), "--out", str(tmp_path / "out")]) == 2
    assert f"No such file or directory: {missing}" in capsys.readouterr().err
    # Asked for, the traceback is there.
    with pytest.raises(FileNotFoundError):
        main(["--log-level", "DEBUG", "calibrate", str(missing)])
