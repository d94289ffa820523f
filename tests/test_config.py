"""Configuration: defaults, file, environment, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentimon.config import ConfigError, env_reference, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("SENTIMON_"):
            monkeypatch.delenv(key)


def test_defaults_point_at_the_embedded_stack() -> None:
    s = load_settings()
    assert s.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert s.stack.host == "127.0.0.1"
    assert s.scorer.metrics_host == "127.0.0.1" and s.notify.host == "127.0.0.1"
    assert s.topics.inputs == ["sentimon.news", "sentimon.comments"]


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "sentimon.yaml"
    cfg.write_text("kafka:\n  bootstrap_servers: file:1\nscorer:\n  max_batch: 7\n")
    monkeypatch.setenv("SENTIMON_KAFKA__BOOTSTRAP_SERVERS", "env:2")
    s = load_settings(cfg)
    assert s.kafka.bootstrap_servers == "env:2"  # env wins over the file
    assert s.scorer.max_batch == 7  # the file wins over the default


def test_bad_value_names_field_and_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTIMON_SCORER__MAX_BATCH", "lots")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "scorer.max_batch" in str(err.value)
    assert "SENTIMON_SCORER__MAX_BATCH" in str(err.value)


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scorer:\n  max_bach: 7\n")
    with pytest.raises(ConfigError, match=r"scorer\.max_bach"):
        load_settings(cfg)


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kafka: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)


def test_sasl_needs_credentials_and_never_echoes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTIMON_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SENTIMON_KAFKA__SASL_PASSWORD", "hunter2")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "sasl_mechanism" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_secrets_are_masked_in_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTIMON_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SENTIMON_KAFKA__SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("SENTIMON_KAFKA__SASL_USERNAME", "alice")
    monkeypatch.setenv("SENTIMON_KAFKA__SASL_PASSWORD", "hunter2")
    s = load_settings()
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump(mode="json"))
    assert s.kafka.sasl_password is not None
    assert s.kafka.sasl_password.get_secret_value() == "hunter2"


def test_every_field_documents_its_variable() -> None:
    rows = env_reference()
    assert len(rows) > 40
    for var, _default, desc in rows:
        assert var.startswith("SENTIMON_")
        assert f"({var}" in desc, f"{var} missing from its description: {desc!r}"


def test_to_env_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sentimon.config import Settings, to_env

    original = Settings(home=tmp_path, monitor={"watchlist": ["AAPL"], "min_lift": 0.2},  # type: ignore[arg-type]
                        kafka={"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",  # type: ignore[arg-type]
                               "sasl_username": "u", "sasl_password": "p"})
    for var, value in to_env(original).items():
        monkeypatch.setenv(var, value)
    copy = load_settings()
    assert copy.model_dump(mode="python") == original.model_dump(mode="python")
    assert copy.kafka.sasl_password is not None and copy.kafka.sasl_password.get_secret_value() == "p"
