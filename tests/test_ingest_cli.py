"""`sentimon score` options: --help teaches, overrides land in the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentimon.cli import build_parser, main
from sentimon.config import Settings
from sentimon.ingest.cli import with_score_args


def test_help_has_examples_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["score", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--device", "--max-batch", "--max-wait-ms", "--group-id", "--topics",
                   "--once", "--max-records", "--idle-exit-s", "examples:"):
        assert option in out


def test_overrides() -> None:
    args = build_parser().parse_args(
        ["score", "--device", "cpu", "--max-batch", "8", "--max-wait-ms", "0",
         "--group-id", "g2", "--topics", "a,b"])
    s = with_score_args(Settings(), args)
    assert s.model.device == "cpu"
    assert (s.scorer.max_batch, s.scorer.max_wait_ms, s.scorer.group_id) == (8, 0, "g2")
    assert s.scorer.max_batch_tokens == Settings().scorer.max_batch_tokens


def test_no_overrides_keeps_settings() -> None:
    base = Settings()
    assert with_score_args(base, build_parser().parse_args(["score"])) is base


@pytest.mark.parametrize("argv", [["score", "--max-batch", "0"], ["score", "--device", "tpu"],
                                  ["score", "--max-wait-ms", "-1"]])
def test_bad_values_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2


def test_missing_model_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SENTIMON_MODEL__DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("SENTIMON_HOME", str(tmp_path))
    assert main(["score", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "cannot load the model" in err and "nowhere" in err
