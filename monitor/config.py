"""Service configuration: a YAML file, ``SHIFTWATCH_*`` environment variables and flags.

Precedence, highest first: command-line flags, environment variables, the
YAML file, defaults. Nested fields use ``__`` in environment variables, e.g.
``SHIFTWATCH_KAFKA__BOOTSTRAP_SERVERS``. Secrets (SASL and TLS key passwords)
come from environment variables or files only and are never logged.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import YamlConfigSettingsSource as _YamlSource

from monitor.config_errors import ENV_PREFIX, REMOVED, ConfigError, config_fix
from monitor.scale.settings import ScaleSettings

__all__ = [
    "AlertingSettings",
    "ConfigError",
    "HistorySettings",
    "KafkaSettings",
    "LimitsSettings",
    "Settings",
    "StateSettings",
    "load_settings",
]


def _check_files(settings: BaseModel, *names: str) -> None:
    """Refuse a configured path that is not a readable file, naming its field."""
    for name in names:
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            raise ValueError(f"{name} {path} is not a readable file")


def _secret(value: SecretStr | None, file: Path | None) -> str | None:
    """A secret from its file (preferred) or its environment variable; None if neither."""
    if file is not None:
        return file.read_text(encoding="utf-8").strip()
    return value.get_secret_value() if value is not None else None


class KafkaSettings(BaseModel):
    """Where events come from, and how to connect."""

    model_config = ConfigDict(extra="forbid")

    client: Literal["kafka-python", "confluent"] = Field(
        default="kafka-python",
        description=(
            "the consumer and dead-letter producer: kafka-python, or confluent-kafka "
            "(librdkafka, about 5x the consume rate; pip install 'shiftwatch[confluent]')"
        ),
    )
    bootstrap_servers: str = "localhost:9092"
    topics: list[str] = Field(
        default_factory=lambda: ["shiftwatch.events"],
        min_length=1,
        description="one topic carrying every kind, or one per kind: every event names its kind",
    )
    group_id: str = Field(default="shiftwatch", min_length=1)
    client_id: str = "shiftwatch"
    dead_letter_topic: str = Field(default="shiftwatch.dead-letter", min_length=1)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    max_poll_records: int = Field(default=5000, ge=1, le=100_000)
    poll_timeout_ms: int = Field(default=500, ge=1, le=60_000)
    max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    fetch_max_bytes: int = Field(default=52_428_800, ge=1024)
    #: How long the broker may hold a fetch waiting for fetch_min_bytes (Kafka's default is 500).
    fetch_max_wait_ms: int = Field(default=100, ge=0, le=60_000)
    fetch_min_bytes: int = Field(default=1, ge=1)
    max_partition_fetch_bytes: int = Field(default=10_485_760, ge=1024)
    request_timeout_ms: int = Field(default=30_000, ge=1000)
    #: How long a client waits for its first broker connection before giving up; the
    #: service then logs one line and retries with backoff (up to 30 s between tries).
    bootstrap_timeout_ms: int = Field(default=5_000, ge=100)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None
    #: OAUTHBEARER: a file holding the bearer token, read at each authentication
    #: (e.g. a projected Kubernetes service-account token, rotated in place).
    sasl_oauth_token_file: Path | None = None

    @field_validator("client")
    @classmethod
    def _client_installed(cls, client: str) -> str:
        if client == "confluent" and importlib.util.find_spec("confluent_kafka") is None:
            raise ValueError(
                "confluent needs the confluent-kafka package: "
                "pip install 'shiftwatch[confluent]' (or set kafka.client: kafka-python)"
            )
        return client

    @model_validator(mode="after")
    def _security_consistent(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL")
        if sasl and self.sasl_mechanism is None:
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism "
                "(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)"
            )
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            if not self.sasl_username:
                raise ValueError(f"sasl_mechanism {self.sasl_mechanism} needs sasl_username")
            if self.sasl_password is None and self.sasl_password_file is None:
                raise ValueError(
                    f"sasl_mechanism {self.sasl_mechanism} needs a password: set "
                    f"{ENV_PREFIX}KAFKA__SASL_PASSWORD or kafka.sasl_password_file"
                )
        if self.sasl_mechanism == "OAUTHBEARER" and self.sasl_oauth_token_file is None:
            raise ValueError(
                "sasl_mechanism OAUTHBEARER needs kafka.sasl_oauth_token_file (a file holding the "
                f"bearer token) or {ENV_PREFIX}KAFKA__SASL_OAUTH_TOKEN_FILE"
            )
        _check_files(
            self,
            "sasl_oauth_token_file",
            "sasl_password_file",
            "ssl_cafile",
            "ssl_certfile",
            "ssl_keyfile",
        )
        return self

    def client_config(self) -> dict[str, Any]:
        """Connection settings common to consumers and producers, in kafka-python's names."""
        cfg: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
            "bootstrap_timeout_ms": self.bootstrap_timeout_ms,
        }
        if self.security_protocol.endswith("SSL"):
            cfg["ssl_check_hostname"] = self.ssl_check_hostname
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                path = getattr(self, name)
                if path is not None:
                    cfg[name] = str(path)
            if self.ssl_password is not None:
                cfg["ssl_password"] = self.ssl_password.get_secret_value()
        if self.sasl_mechanism is not None:
            cfg["sasl_mechanism"] = self.sasl_mechanism
            if self.sasl_username is not None:
                cfg["sasl_plain_username"] = self.sasl_username
            password = _secret(self.sasl_password, self.sasl_password_file)
            if password is not None:
                cfg["sasl_plain_password"] = password
            if self.sasl_oauth_token_file is not None:
                from monitor.sources.oauth import FileTokenProvider

                cfg["sasl_oauth_token_provider"] = FileTokenProvider(self.sasl_oauth_token_file)
        return cfg


class LimitsSettings(BaseModel):
    """Memory bounds of the routing state, validation caps, and event-time idleness."""

    model_config = ConfigDict(extra="forbid")

    dedupe_window: int = Field(
        default=1_000_000, ge=1, description="event ids remembered to drop duplicates"
    )
    join_capacity: int = Field(
        default=500_000, ge=1, description="inferences kept for actions and outcomes to join"
    )
    join_ttl_seconds: float = Field(
        default=14 * 86400.0, gt=0, description="event-time age after which an inference is dropped"
    )
    segment_cap: int = Field(
        default=20, ge=1, le=1000, description="values per segment key; later ones fold into other"
    )
    max_future_seconds: float = Field(
        default=300.0,
        gt=0,
        description="events stamped further ahead of this host's clock are dead-lettered",
    )
    max_message_bytes: int = Field(
        default=1 << 20, ge=1024, le=64 << 20, description="larger messages are dead-lettered"
    )
    idle_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=86400,
        description=(
            "wall-clock seconds without data after which a partition with no backlog stops "
            "holding a model's event time back"
        ),
    )
    allowed_lateness_seconds: float = Field(
        default=0.0,
        ge=0,
        le=86400,
        description=(
            "event-time seconds an event may trail the newest one on its partition and "
            "still count (bounded out-of-orderness); judging waits this much longer"
        ),
    )
    stale_after_seconds: float = Field(
        default=600.0,
        gt=0,
        le=30 * 86400,
        description=(
            "event-time seconds a candidate's newest inference may trail its model's newest "
            "before the candidate is exported as stale (it stopped getting traffic)"
        ),
    )


class AlertingSettings(BaseModel):
    """Where alerts are delivered, through the durable outbox."""

    model_config = ConfigDict(extra="forbid")

    outbox_path: Path = Field(
        default=Path("shiftwatch-outbox.sqlite3"),
        description="SQLite file of the outbox; on a persistent volume, so a restart loses nothing",
    )
    alertmanager_urls: list[str] = Field(
        default_factory=list, description="Alertmanager base URLs (every replica of an HA set)"
    )
    alertmanager_resend_seconds: float = Field(default=60.0, gt=0)
    generator_base_url: str | None = Field(
        default=None,
        description=(
            "shiftwatch's HTTP address as Alertmanager's users reach it; each alert's "
            "generatorURL is that candidate's /verdict under it"
        ),
    )
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_secret_file: Path | None = None
    kafka_topic: str | None = Field(default=None, min_length=1)
    max_backoff_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _secret_for_webhook(self) -> AlertingSettings:
        given = [self.webhook_url, self.generator_base_url]
        for url in [*self.alertmanager_urls, *(u for u in given if u)]:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        if self.webhook_url and self.webhook_secret is None and self.webhook_secret_file is None:
            raise ValueError(
                "webhook_url needs a signing secret: set "
                f"{ENV_PREFIX}ALERTING__WEBHOOK_SECRET or alerting.webhook_secret_file"
            )
        _check_files(self, "webhook_secret_file")
        return self

    def secret(self) -> bytes:
        """The webhook's signing secret (from the environment or the file)."""
        return (_secret(self.webhook_secret, self.webhook_secret_file) or "").encode()


#: What ``state.changelog_topic`` (the changelog scale-out mode, removed) says at start.
CHANGELOG_TOPIC_REMOVED = (
    "removed in 0.4.0 — the changelog scale-out mode is replaced by the two-stage tier on "
    "Quix Streams: run `shiftwatch run --engine quix --stage ingest` and `--stage judge` "
    "replicas (scale.*, docs/scale.md)"
)


class StateSettings(BaseModel):
    """Checkpoints of every detector in SQLite (:mod:`monitor.state`), signed.

    ``changelog_secret`` and ``changelog_secret_file`` are the old names of
    ``secret`` and ``secret_file``, still accepted. ``changelog_topic`` (the
    changelog scale-out mode of 0.3 and earlier) is refused at start, naming
    the two-stage tier that replaces it.
    """

    model_config = ConfigDict(extra="forbid")

    path: Path | None = Field(
        default=None,
        description="SQLite file of checkpoints, on a persistent volume; none: no checkpoints",
    )
    checkpoint_seconds: float = Field(default=10.0, gt=0)
    #: Kept only to refuse it with the replacement (an unknown key would say less).
    changelog_topic: str | None = Field(
        default=None,
        description="removed in 0.4.0: use the two-stage tier (scale.engine quix)",
        json_schema_extra={"deprecated": True},
    )
    secret: SecretStr | None = Field(
        default=None,
        description=(
            "key signing checkpoints (SQLite without one: a generated <path>.key next to the "
            "file); with scale.engine quix, required and the same on every replica"
        ),
    )
    secret_file: Path | None = Field(default=None, description="a file holding state.secret")
    #: The names state.secret had when only the changelog was signed; still accepted.
    changelog_secret: SecretStr | None = Field(default=None, description="alias of state.secret")
    changelog_secret_file: Path | None = Field(
        default=None, description="alias of state.secret_file"
    )
    mismatch: Literal["fail", "fresh"] = Field(
        default="fail",
        description=(
            "a checkpoint that cannot be restored (damaged, another key or format): fail (exit 2, "
            "naming the fix) or fresh (discard it; resume from the committed offsets)"
        ),
    )

    @field_validator("changelog_topic")
    @classmethod
    def _changelog_removed(cls, topic: str | None) -> None:
        if topic is not None:
            raise PydanticCustomError(REMOVED, CHANGELOG_TOPIC_REMOVED)

    @model_validator(mode="after")
    def _one_secret(self) -> StateSettings:
        new = self.secret is not None or self.secret_file is not None
        old = self.changelog_secret is not None or self.changelog_secret_file is not None
        if new and old:
            raise ValueError(
                "state.secret and state.changelog_secret are one setting (the second is its old "
                "name): set one of them"
            )
        _check_files(self, "secret_file", "changelog_secret_file")
        return self

    def signing_key(self) -> bytes:
        """The key signing checkpoints (``b""`` if none is set)."""
        if self.secret is not None or self.secret_file is not None:
            return (_secret(self.secret, self.secret_file) or "").encode()
        return (_secret(self.changelog_secret, self.changelog_secret_file) or "").encode()


class HistorySettings(BaseModel):
    """The history the monitor records for ``shiftwatch review`` (:mod:`monitor.history`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True,
        description=(
            "record the history (needs state.path or history.path; the two-stage tier, "
            "scale.engine quix, records none yet)"
        ),
    )
    path: Path | None = Field(
        default=None,
        description="the history file; default history.sqlite3 next to state.path",
    )
    resolution_seconds: float = Field(
        default=300.0, gt=0, le=86400, description="event-time seconds per history bucket"
    )
    retention_days: float = Field(
        default=35.0, gt=0, le=3660, description="days of history kept before the newest time"
    )


class Settings(BaseSettings):
    """Everything ``shiftwatch run`` needs."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    policy: Path = Field(description="the policy YAML file")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    scale: ScaleSettings = Field(default_factory=ScaleSettings)
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=9464, ge=0, le=65535)
    alerts_out: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    @model_validator(mode="after")
    def _engine_state(self) -> Settings:
        if self.scale.engine != "quix":
            return self
        if self.state.path is not None:
            raise ValueError(
                "state.path is the embedded engine's SQLite store; with scale.engine quix each "
                "stage keeps its state in scale.state_dir and Quix's changelog topics: unset "
                "state.path"
            )
        if self.history.path is not None:
            raise ValueError(
                "history.path: the two-stage tier (scale.engine quix) records no history yet "
                "(its judge stage has no recorder): unset history.path; the embedded engine "
                "records it"
            )
        if not self.state.signing_key():
            raise ValueError(
                "scale.engine quix signs the state it keeps in Kafka: set "
                f"{ENV_PREFIX}STATE__SECRET or state.secret_file, the same on every replica"
            )
        return self


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from the file, the environment and ``overrides`` (flags).

    Raises
    ------
    ConfigError
        Listing every invalid or missing field with how to set it.
    """
    if config_file is not None and not Path(config_file).is_file():
        raise ConfigError(f"config file {config_file}: not found")
    yaml_path = Path(config_file) if config_file is not None else None

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if yaml_path is not None:
                sources.append(_YamlSource(settings_cls, yaml_file=yaml_path))
            return tuple(sources)

    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = _FromFile(**clean)
    except ValidationError as err:
        lines = []
        for e in err.errors(include_url=False):  # input used for did-you-mean only
            field = ".".join(str(p) for p in e["loc"]) or "(config)"
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"  {field}: {msg}{config_fix(e, field, Settings)}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
    return settings
