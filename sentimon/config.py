"""One typed configuration for every sentimon process.

Values come, highest priority first, from: keyword arguments, ``SENTIMON_*`` environment
variables, a YAML file (``--config`` or ``SENTIMON_CONFIG``), then the defaults below, which
point at the embedded stack on 127.0.0.1. Nested fields use ``__`` in their variable name:
``kafka.bootstrap_servers`` is ``SENTIMON_KAFKA__BOOTSTRAP_SERVERS``. Every field's
description names its variable; ``sentimon config --env`` prints the full list.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "SENTIMON_"
CONFIG_ENV = "SENTIMON_CONFIG"


class ConfigError(ValueError):
    """Raised when the configuration cannot be loaded; the message names the bad field."""


def default_home() -> Path:
    """The state directory: ``$XDG_STATE_HOME/sentimon`` or ``~/.local/state/sentimon``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sentimon"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class KafkaSettings(_Section):
    """Kafka client settings shared by every daemon (SENTIMON_KAFKA__*)."""

    bootstrap_servers: str = Field(
        "127.0.0.1:19092",
        description="Comma-separated host:port list (SENTIMON_KAFKA__BOOTSTRAP_SERVERS).",
    )
    client_id: str = Field("sentimon", description="Client id prefix (SENTIMON_KAFKA__CLIENT_ID).")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Security protocol (SENTIMON_KAFKA__SECURITY_PROTOCOL)."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (SENTIMON_KAFKA__SASL_MECHANISM)."
    )
    sasl_username: str | None = Field(
        None, description="SASL user name (SENTIMON_KAFKA__SASL_USERNAME)."
    )
    sasl_password: SecretStr | None = Field(
        None, description="SASL password, never logged (SENTIMON_KAFKA__SASL_PASSWORD)."
    )
    ssl_cafile: Path | None = Field(
        None, description="CA bundle for SSL (SENTIMON_KAFKA__SSL_CAFILE)."
    )
    ssl_certfile: Path | None = Field(
        None, description="Client certificate for mutual TLS (SENTIMON_KAFKA__SSL_CERTFILE)."
    )
    ssl_keyfile: Path | None = Field(
        None, description="Client private key for mutual TLS (SENTIMON_KAFKA__SSL_KEYFILE)."
    )
    ssl_check_hostname: bool = Field(
        True, description="Verify the broker host name (SENTIMON_KAFKA__SSL_CHECK_HOSTNAME)."
    )
    request_timeout_ms: int = Field(
        30_000, gt=0, description="Client request timeout (SENTIMON_KAFKA__REQUEST_TIMEOUT_MS)."
    )

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism is None:
                raise ValueError("sasl_mechanism is required when security_protocol is SASL_*")
            if not self.sasl_username or self.sasl_password is None:
                raise ValueError("sasl_username and sasl_password are required for SASL")
        return self


class TopicSettings(_Section):
    """Kafka topic names and layout (SENTIMON_TOPICS__*)."""

    news: str = Field("sentimon.news", description="News input topic (SENTIMON_TOPICS__NEWS).")
    comments: str = Field(
        "sentimon.comments", description="Comments input topic (SENTIMON_TOPICS__COMMENTS)."
    )
    scored: str = Field(
        "sentimon.scored", description="Scored output topic (SENTIMON_TOPICS__SCORED)."
    )
    dlq: str = Field("sentimon.dlq", description="Dead-letter topic (SENTIMON_TOPICS__DLQ).")
    partitions: int = Field(
        6, ge=1, description="Partitions for topics sentimon creates (SENTIMON_TOPICS__PARTITIONS)."
    )
    replication_factor: int = Field(
        1, ge=1, description="Replication factor (SENTIMON_TOPICS__REPLICATION_FACTOR)."
    )

    @property
    def inputs(self) -> list[str]:
        return [self.news, self.comments]


Component = Literal["kafka", "prometheus", "alertmanager"]
ALL_COMPONENTS: tuple[Component, ...] = ("kafka", "prometheus", "alertmanager")


class StackSettings(_Section):
    """The embedded default stack started by ``sentimon stack up`` (SENTIMON_STACK__*)."""

    host: str = Field("127.0.0.1", description="Bind address of every server (SENTIMON_STACK__HOST).")
    kafka_port: int = Field(19092, gt=0, lt=65536, description="Broker port (SENTIMON_STACK__KAFKA_PORT).")
    kafka_controller_port: int = Field(
        19093, gt=0, lt=65536, description="KRaft controller port (SENTIMON_STACK__KAFKA_CONTROLLER_PORT)."
    )
    kafka_heap: str = Field("512m", description="Broker JVM heap, -Xmx (SENTIMON_STACK__KAFKA_HEAP).")
    prometheus_port: int = Field(
        19090, gt=0, lt=65536, description="Prometheus port (SENTIMON_STACK__PROMETHEUS_PORT)."
    )
    alertmanager_port: int = Field(
        19094, gt=0, lt=65536, description="Alertmanager port (SENTIMON_STACK__ALERTMANAGER_PORT)."
    )
    scrape_interval: str = Field(
        "15s", description="Prometheus scrape/evaluation interval (SENTIMON_STACK__SCRAPE_INTERVAL)."
    )
    components: list[Component] = Field(
        default_factory=lambda: list(ALL_COMPONENTS),
        description="Servers `stack up` starts (SENTIMON_STACK__COMPONENTS, JSON list).",
    )


class ModelSettings(_Section):
    """Model location and inference options (SENTIMON_MODEL__*)."""

    dir: Path | None = Field(
        None, description="Released model directory; default the packaged release (SENTIMON_MODEL__DIR)."
    )
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="Execution provider choice (SENTIMON_MODEL__DEVICE)."
    )
    variant: Literal["auto", "fp32", "int8", "fp16"] = Field(
        "auto", description="ONNX variant; auto = fp16 on CUDA, int8 on CPU (SENTIMON_MODEL__VARIANT)."
    )
    max_length: int = Field(
        128, ge=8, le=512, description="Token truncation length (SENTIMON_MODEL__MAX_LENGTH)."
    )
    threads: int = Field(
        0, ge=0, description="CPU intra-op threads, 0 = all cores (SENTIMON_MODEL__THREADS)."
    )
    thread_spinning: bool = Field(
        False, description="Let ONNX Runtime's CPU threads spin-wait for the next run: a few ms less per "
        "run, but on a stream of small batches up to 80 % more CPU per message, taken from the broker "
        "and the other daemons on the same cores (SENTIMON_MODEL__THREAD_SPINNING).",
    )


class ScorerSettings(_Section):
    """``sentimon score`` daemon (SENTIMON_SCORER__*)."""

    group_id: str = Field("sentimon-scorer", description="Consumer group (SENTIMON_SCORER__GROUP_ID).")
    max_batch: int = Field(256, ge=1, description="Max records per batch (SENTIMON_SCORER__MAX_BATCH).")
    max_batch_tokens: int = Field(
        16_384, ge=1, description="Max tokens per batch (SENTIMON_SCORER__MAX_BATCH_TOKENS)."
    )
    max_wait_ms: int = Field(
        50, ge=0, description="Max wait to fill a batch (SENTIMON_SCORER__MAX_WAIT_MS)."
    )
    model_batch: int = Field(
        0, ge=0, description="Texts per ONNX Runtime run; a micro-batch is sorted by length and "
        "split into runs of this size. 0 = auto: 64 on CPU (less padding, a third of the memory), "
        "the whole micro-batch on CUDA (SENTIMON_SCORER__MODEL_BATCH).",
    )
    max_message_bytes: int = Field(
        1_000_000, ge=1, description="Larger records are dead-lettered unparsed (SENTIMON_SCORER__MAX_MESSAGE_BYTES)."
    )
    length_buckets: bool = Field(
        True, description="On CPU, cut each micro-batch into runs of similar token length, as many "
        "as pay for their fixed cost (at most model_batch texts each); false = length-sorted runs "
        "of exactly model_batch (SENTIMON_SCORER__LENGTH_BUCKETS).",
    )
    cache_entries: int = Field(
        50_000, ge=0, description="Predictions kept per distinct normalised text, least recently "
        "used out first; a repeated text (retweet, syndicated headline) is not scored again. "
        "0 = off (SENTIMON_SCORER__CACHE_ENTRIES).",
    )
    metrics_host: str = Field("127.0.0.1", description="Metrics bind address (SENTIMON_SCORER__METRICS_HOST).")
    metrics_port: int = Field(
        19100, ge=0, lt=65536, description="Metrics/health port, 0 = off (SENTIMON_SCORER__METRICS_PORT)."
    )
    output_timeout_s: float = Field(
        120.0, gt=0, description="Longest wait for an output topic's metadata and for the broker to "
        "acknowledge a batch's output; past it the scorer exits 1 naming the topic, without "
        "committing (SENTIMON_SCORER__OUTPUT_TIMEOUT_S).",
    )
    stall_s: float = Field(
        60.0, gt=0, description="/readyz answers 503 once the main loop has not completed an "
        "iteration for this long (a stuck batch) (SENTIMON_SCORER__STALL_S).",
    )


class MonitorSettings(_Section):
    """``sentimon monitor`` daemon (SENTIMON_MONITOR__*)."""

    group_id: str = Field("sentimon-monitor", description="Consumer group (SENTIMON_MONITOR__GROUP_ID).")
    short_window_s: int = Field(
        900, ge=1, description="Short sliding window in seconds (SENTIMON_MONITOR__SHORT_WINDOW_S)."
    )
    baseline_window_s: int = Field(
        86_400, ge=1, description="Baseline window in seconds (SENTIMON_MONITOR__BASELINE_WINDOW_S)."
    )
    watchlist: list[str] = Field(
        default_factory=lambda: ["AAPL", "MSFT", "AMZN", "GOOG", "FB", "BAC", "JPM", "TSLA"],
        description="Tickers with their own series, JSON list (SENTIMON_MONITOR__WATCHLIST).",
    )
    min_volume: int = Field(
        30, ge=1, description="Legacy z statistic (shown, not alerted on): min short-window volume "
        "(SENTIMON_MONITOR__MIN_VOLUME)."
    )
    min_lift: float = Field(
        0.15, ge=0, description="Legacy z statistic: min rise of negative share over baseline "
        "(SENTIMON_MONITOR__MIN_LIFT)."
    )
    min_baseline_volume: int = Field(
        30, ge=0, description="Legacy z statistic: min baseline-window volume (short window "
        "excluded) (SENTIMON_MONITOR__MIN_BASELINE_VOLUME).",
    )
    spike_z: float = Field(
        3.0, gt=0, description="Legacy z statistic: min z-score of the short-window negative share "
        "against the baseline share (SENTIMON_MONITOR__SPIKE_Z).",
    )
    false_alerts_per_day_topics: float = Field(
        1.0, gt=0, description="False spike alerts a day allowed over all topic series and the "
        "market together; the detector's threshold derives from it "
        "(SENTIMON_MONITOR__FALSE_ALERTS_PER_DAY_TOPICS).",
    )
    false_alerts_per_day_tickers: float = Field(
        1.0, gt=0, description="False spike alerts a day allowed over all watchlist tickers "
        "together (SENTIMON_MONITOR__FALSE_ALERTS_PER_DAY_TICKERS).",
    )
    detection_horizon_s: int = Field(
        3_600, ge=1, description="How far back a surge may have begun for the detector; older "
        "changes are the baseline's (SENTIMON_MONITOR__DETECTION_HORIZON_S).",
    )
    history_s: int = Field(
        7 * 86_400, ge=60, description="History the baselines learn from (time of day, rate, "
        "share); read back from the scored topic on start (SENTIMON_MONITOR__HISTORY_S).",
    )
    baseline_half_life_s: int = Field(
        86_400, ge=1, description="Age at which history counts half in the baselines, so they "
        "follow a level that moves over days (SENTIMON_MONITOR__BASELINE_HALF_LIFE_S).",
    )
    min_history_s: int = Field(
        86_400, ge=1, description="Observed history needed before any series can alarm: a "
        "full day, so the baselines have seen every hour (a fresh install is silent for its "
        "first day; restarts re-read the history) (SENTIMON_MONITOR__MIN_HISTORY_S).",
    )
    baseline_slot_s: int = Field(
        900, ge=1, description="Resolution of the baseline history in seconds "
        "(SENTIMON_MONITOR__BASELINE_SLOT_S).",
    )
    evidence: Literal["scores", "probability", "argmax"] = Field(
        "scores", description="What the detector counts: records weighted by how much more "
        "often their P(negative) occurs in a surge than in the series' baseline ('scores', "
        "the likelihood ratio of the records' P(negative) profile), the sum of P(negative) "
        "('probability') or the negative labels ('argmax') (SENTIMON_MONITOR__EVIDENCE).",
    )
    repeat_window_s: float = Field(
        0.0, ge=0, description="When > 0, the detector's evidence counts each distinct text "
        "(normalised, lowercased) once per series in each aligned window of this much event time "
        "(3600: an hour): retweets, syndicated copies and repeated bot lines count as one voice. "
        "The rolling figures count every record. 0 (the default) counts every record "
        "(SENTIMON_MONITOR__REPEAT_WINDOW_S; docs/monitor.md, 'Copies of a text').",
    )
    live_idle_s: float = Field(
        30.0, gt=0, description="On a live stream (newest event within the detection horizon "
        "of the wall clock), advance the watermark with the wall clock after this many seconds without "
        "records, so evidence decays and alerts resolve (SENTIMON_MONITOR__LIVE_IDLE_S).",
    )
    dedup_capacity: int = Field(
        1_000_000, ge=1, description="Ids remembered for de-duplication (SENTIMON_MONITOR__DEDUP_CAPACITY)."
    )
    metrics_host: str = Field("127.0.0.1", description="Metrics bind address (SENTIMON_MONITOR__METRICS_HOST).")
    metrics_port: int = Field(
        19101, ge=0, lt=65536, description="Metrics/health port (SENTIMON_MONITOR__METRICS_PORT)."
    )


class NotifySettings(_Section):
    """``sentimon notify`` Alertmanager webhook receiver (SENTIMON_NOTIFY__*)."""

    host: str = Field("127.0.0.1", description="Bind address (SENTIMON_NOTIFY__HOST).")
    port: int = Field(19102, ge=0, lt=65536, description="Port (SENTIMON_NOTIFY__PORT).")
    secret: SecretStr | None = Field(
        None, description="Shared secret expected as a Bearer token (SENTIMON_NOTIFY__SECRET)."
    )
    jsonl_path: Path | None = Field(
        None,
        description="Where notifications are appended; default HOME/notifications.jsonl "
        "(SENTIMON_NOTIFY__JSONL_PATH).",
    )
    forward_url: str | None = Field(
        None, description="Slack-compatible webhook to forward to (SENTIMON_NOTIFY__FORWARD_URL)."
    )
    max_body_bytes: int = Field(
        1_000_000, ge=1, description="Larger requests are refused (SENTIMON_NOTIFY__MAX_BODY_BYTES)."
    )
    forward_attempts: int = Field(
        6, ge=1, description="Tries per forwarded message before it is given up, logged and counted "
        "(SENTIMON_NOTIFY__FORWARD_ATTEMPTS).",
    )
    forward_backoff_s: float = Field(
        1.0, gt=0, description="Wait after the first failed try; doubles after each, at most 60 s "
        "(SENTIMON_NOTIFY__FORWARD_BACKOFF_S).",
    )
    external_url: str | None = Field(
        None, description="Base URL people open to reach this receiver (links in notifications); "
        "default http://host:port (SENTIMON_NOTIFY__EXTERNAL_URL).",
    )
    prometheus_url: str | None = Field(
        None, description="Prometheus the topic report PNGs are drawn from; default the stack's "
        "(SENTIMON_NOTIFY__PROMETHEUS_URL).",
    )
    history: int = Field(
        200, ge=1, description="Recent alerts kept for the page at / (SENTIMON_NOTIFY__HISTORY)."
    )
    monitor_url: str | None = Field(
        None, description="Monitor asked for the texts, tickers and figures of a firing spike "
        "(GET /exemplars); default http://monitor.metrics_host:monitor.metrics_port, empty "
        "string: do not ask (SENTIMON_NOTIFY__MONITOR_URL).",
    )


class AlertSettings(_Section):
    """Values rendered into the Prometheus rules (SENTIMON_ALERTS__*)."""

    spike_for: str = Field(
        "30s", description="`for:` of spike alerts; short, since the detector controls false "
        "alarms; 0s fires at the first evaluation that alarms (SENTIMON_ALERTS__SPIKE_FOR).")
    spike_keep_firing_for: str = Field(
        "10m", description="`keep_firing_for:` of spike alerts: one alert while the evidence "
        "hovers at its threshold (SENTIMON_ALERTS__SPIKE_KEEP_FIRING_FOR).")
    dashboard_url: str = Field(
        "http://127.0.0.1:3000/d/sentimon-topics",
        description="Dashboard link in alert annotations (SENTIMON_ALERTS__DASHBOARD_URL).",
    )
    group_wait: str = Field("30s", description="Alertmanager group_wait (SENTIMON_ALERTS__GROUP_WAIT).")
    group_interval: str = Field(
        "5m", description="Alertmanager group_interval (SENTIMON_ALERTS__GROUP_INTERVAL)."
    )
    repeat_interval: str = Field(
        "4h", description="Alertmanager repeat_interval (SENTIMON_ALERTS__REPEAT_INTERVAL)."
    )
    slack_url: SecretStr | None = Field(
        None, description="Slack incoming webhook that Alertmanager itself posts every alert to, "
        "retrying failures; kept out of logs (SENTIMON_ALERTS__SLACK_URL).",
    )
    slack_channel: str | None = Field(
        None, description="Channel override for slack_url, e.g. #markets (SENTIMON_ALERTS__SLACK_CHANNEL)."
    )


class Settings(BaseSettings):
    """Everything a sentimon process needs to know. See the module docstring for sources."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(
        default_factory=default_home,
        description="State directory: stack data, logs, pid files (SENTIMON_HOME).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level (SENTIMON_LOG_LEVEL)."
    )
    log_json: bool = Field(False, description="One JSON object per log line (SENTIMON_LOG_JSON).")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    scorer: ScorerSettings = Field(default_factory=ScorerSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    def notifications_path(self) -> Path:
        return self.notify.jsonl_path or self.home / "notifications.jsonl"


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the file named by ``SENTIMON_CONFIG`` (set by ``--config`` too)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ is overridden

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(CONFIG_ENV)
        if not path:
            return {}
        return read_yaml(Path(path))


def read_yaml(path: Path) -> dict[str, Any]:
    """Load a config file, with errors that name the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings`, turning validation errors into one readable :class:`ConfigError`."""
    if config_file is not None:
        os.environ[CONFIG_ENV] = str(config_file)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            env = ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
            got = err.get("input")
            # Never echo secrets, nor whole sections (they may hold a password).
            hidden = isinstance(got, dict) or any(w in loc for w in ("password", "secret"))
            shown = "" if hidden else f" (got {got!r})"
            lines.append(f"  {loc or 'settings'} ({env}): {err['msg']}{shown}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None


def env_reference() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every field, for docs and ``sentimon config --env``."""
    rows: list[tuple[str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            ann = field.annotation
            var = prefix + name.upper()
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, var + "__")
                continue
            default = field.get_default(call_default_factory=True)
            rows.append((var, "" if default is None else str(default), field.description or ""))

    walk(Settings, ENV_PREFIX)
    return rows


def to_env(settings: Settings) -> dict[str, str]:
    """``settings`` as ``SENTIMON_*`` variables, so a child process sees exactly the same values.

    Secrets are written in clear: the result is for a child's environment, never for a log.
    """
    env: dict[str, str] = {}

    def walk(model: BaseModel, prefix: str) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            var = prefix + name.upper()
            if isinstance(value, BaseModel):
                walk(value, var + "__")
            elif value is None:
                continue
            elif isinstance(value, SecretStr):
                env[var] = value.get_secret_value()
            elif isinstance(value, list | dict):
                env[var] = json.dumps(value)
            elif isinstance(value, bool):
                env[var] = "true" if value else "false"
            else:
                env[var] = str(value)

    walk(settings, ENV_PREFIX)
    return env
