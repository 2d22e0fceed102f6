"""``kafka.*``: where events come from and how to connect, and the secret files they use."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from monitor.config_errors import ENV_PREFIX

__all__ = ["KafkaSettings", "check_files", "read_secret"]


def check_files(settings: BaseModel, *names: str) -> None:
    """Refuse a configured path that is not a readable file, naming its field."""
    for name in names:
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            raise ValueError(f"{name} {path} is not a readable file")


def read_secret(value: SecretStr | None, file: Path | None) -> str | None:
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
        check_files(
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
            password = read_secret(self.sasl_password, self.sasl_password_file)
            if password is not None:
                cfg["sasl_plain_password"] = password
            if self.sasl_oauth_token_file is not None:
                from monitor.sources.oauth import FileTokenProvider

                cfg["sasl_oauth_token_provider"] = FileTokenProvider(self.sasl_oauth_token_file)
        return cfg
