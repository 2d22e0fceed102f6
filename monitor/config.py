"""Service configuration: a YAML file, ``SHIFTWATCH_*`` environment variables and flags.

Precedence, highest first: command-line flags, environment variables, the
YAML file, defaults. Nested fields use ``__`` in environment variables, e.g.
``SHIFTWATCH_KAFKA__BOOTSTRAP_SERVERS``. Secrets (SASL and TLS key passwords)
come from environment variables or files only and are never logged.
"""

from __future__ import annotations

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

from monitor.config_errors import ENV_PREFIX, EXPLAINED, REMOVED, ConfigError, config_fix
from monitor.kafka_settings import KafkaSettings, check_files, read_secret
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
        check_files(self, "webhook_secret_file")
        return self

    def secret(self) -> bytes:
        """The webhook's signing secret (from the environment or the file)."""
        return (read_secret(self.webhook_secret, self.webhook_secret_file) or "").encode()


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
        check_files(self, "secret_file", "changelog_secret_file")
        return self

    def signing_key(self) -> bytes:
        """The key signing checkpoints (``b""`` if none is set)."""
        if self.secret is not None or self.secret_file is not None:
            return (read_secret(self.secret, self.secret_file) or "").encode()
        return (read_secret(self.changelog_secret, self.changelog_secret_file) or "").encode()


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
            raise PydanticCustomError(
                EXPLAINED,
                "state.path is the embedded engine's SQLite store; with scale.engine quix each "
                "stage keeps its state in scale.state_dir and Quix's changelog topics: unset "
                "state.path",
            )
        if self.history.path is not None:
            raise PydanticCustomError(
                EXPLAINED,
                "history.path: the two-stage tier (scale.engine quix) records no history yet "
                "(its judge stage has no recorder): unset history.path; the embedded engine "
                "records it",
            )
        if not self.state.signing_key():
            raise PydanticCustomError(
                EXPLAINED,
                "scale.engine quix signs the state it keeps in Kafka: set "
                f"{ENV_PREFIX}STATE__SECRET or state.secret_file, the same on every replica",
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
