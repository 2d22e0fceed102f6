""":class:`~monitor.config.KafkaSettings` in librdkafka's names, for ``kafka.client: confluent``.

Each setting maps to the librdkafka property that does the same job as the
kafka-python argument :meth:`KafkaSettings.client_config` passes; the table
:data:`FIELDS` keeps the way back, so that a value librdkafka refuses is
reported under the name the user set (``kafka.fetch_max_bytes``), not
librdkafka's. Two settings have no librdkafka property of their own:

- ``bootstrap_timeout_ms`` is enforced by the source, which asks for the
  cluster's metadata with that timeout before consuming (kafka-python's
  constructor waits the same way);
- ``sasl_oauth_token_file`` becomes an ``oauth_cb`` that reads the file each
  time librdkafka refreshes the token (:func:`oauth_callback`).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.config_errors import ConfigError
from monitor.kafka_settings import KafkaSettings, read_secret

__all__ = [
    "FIELDS",
    "OAUTH_LIFETIME_SECONDS",
    "common_config",
    "consumer_config",
    "oauth_callback",
    "producer_config",
    "refused",
]

#: librdkafka property -> the KafkaSettings field it comes from.
FIELDS: dict[str, str] = {
    "bootstrap.servers": "bootstrap_servers",
    "client.id": "client_id",
    "group.id": "group_id",
    "auto.offset.reset": "auto_offset_reset",
    "max.poll.interval.ms": "max_poll_interval_ms",
    "session.timeout.ms": "session_timeout_ms",
    "heartbeat.interval.ms": "heartbeat_interval_ms",
    "fetch.max.bytes": "fetch_max_bytes",
    "receive.message.max.bytes": "fetch_max_bytes",
    "message.max.bytes": "fetch_max_bytes",
    "fetch.wait.max.ms": "fetch_max_wait_ms",
    "fetch.min.bytes": "fetch_min_bytes",
    "max.partition.fetch.bytes": "max_partition_fetch_bytes",
    "socket.timeout.ms": "request_timeout_ms",
    "request.timeout.ms": "request_timeout_ms",
    "security.protocol": "security_protocol",
    "ssl.ca.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_password",
    "ssl.endpoint.identification.algorithm": "ssl_check_hostname",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.username": "sasl_username",
    "sasl.password": "sasl_password",
}

#: An OAUTHBEARER token whose expiry cannot be read from it is re-read from its file this often.
OAUTH_LIFETIME_SECONDS = 300.0

#: librdkafka's default largest response (100 MB); raised when fetch_max_bytes needs more.
_RECEIVE_MAX = 100_000_000
_MESSAGE_MAX = 1_000_000


def common_config(settings: KafkaSettings) -> dict[str, Any]:
    """Connection and security properties shared by the consumer and the producer."""
    cfg: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": settings.client_id,
        "socket.timeout.ms": settings.request_timeout_ms,
        "security.protocol": settings.security_protocol.lower(),
        # librdkafka's own log lines go through the stdlib, so they render as ours.
        "logger": logging.getLogger("kafka.librdkafka"),
    }
    if settings.security_protocol.endswith("SSL"):
        cfg["ssl.endpoint.identification.algorithm"] = (
            "https" if settings.ssl_check_hostname else "none"
        )
        for prop in ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location"):
            path: Path | None = getattr(settings, FIELDS[prop])
            if path is not None:
                cfg[prop] = str(path)
        if settings.ssl_password is not None:
            cfg["ssl.key.password"] = settings.ssl_password.get_secret_value()
    if settings.sasl_mechanism is not None:
        cfg["sasl.mechanism"] = settings.sasl_mechanism
        if settings.sasl_username is not None:
            cfg["sasl.username"] = settings.sasl_username
        password = read_secret(settings.sasl_password, settings.sasl_password_file)
        if password is not None:
            cfg["sasl.password"] = password
        if settings.sasl_oauth_token_file is not None:
            cfg["oauth_cb"] = oauth_callback(settings.sasl_oauth_token_file, settings.client_id)
    return cfg


def consumer_config(settings: KafkaSettings) -> dict[str, Any]:
    """The consumer's properties: auto-commit off, the group and fetch settings.

    librdkafka wants ``fetch.max.bytes >= message.max.bytes`` and
    ``receive.message.max.bytes >= fetch.max.bytes + 512``; both follow from
    ``fetch_max_bytes`` here (the consumer produces nothing, so lowering
    ``message.max.bytes`` changes nothing else).
    """
    return {
        **common_config(settings),
        "group.id": settings.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": settings.auto_offset_reset,
        "max.poll.interval.ms": settings.max_poll_interval_ms,
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": settings.heartbeat_interval_ms,
        "fetch.max.bytes": settings.fetch_max_bytes,
        "message.max.bytes": min(settings.fetch_max_bytes, _MESSAGE_MAX),
        "receive.message.max.bytes": max(_RECEIVE_MAX, settings.fetch_max_bytes + 512),
        "fetch.wait.max.ms": settings.fetch_max_wait_ms,
        "fetch.min.bytes": settings.fetch_min_bytes,
        "max.partition.fetch.bytes": settings.max_partition_fetch_bytes,
    }


def producer_config(settings: KafkaSettings) -> dict[str, Any]:
    """The dead-letter producer's properties: as KafkaDeadLetterSink's (acks=all, retries)."""
    return {
        **common_config(settings),
        "acks": "all",
        "linger.ms": 5,
        "retries": 10,
        "request.timeout.ms": settings.request_timeout_ms,
    }


def refused(exc: BaseException, config: dict[str, Any]) -> ConfigError:
    """A :class:`ConfigError` naming the ``kafka.*`` field behind a property librdkafka refused."""
    text = str(exc)
    named = sorted({FIELDS[p] for p in config if p in FIELDS and p in text})
    where = ", ".join(f"kafka.{name}" for name in named) or "kafka settings"
    return ConfigError(f"{where}: refused by confluent-kafka (kafka.client confluent): {text}")


def oauth_callback(path: Path, principal: str) -> Callable[[str], tuple[str, float, str]]:
    """librdkafka's ``oauth_cb``: the token read from ``path``, with its expiry.

    librdkafka calls it at start and again at 80 % of the token's lifetime. The
    expiry is the JWT's ``exp`` claim when the token is a JWT, capped at
    :data:`OAUTH_LIFETIME_SECONDS` from now so that a token rotated in place
    is picked up within that time; the principal is its ``sub`` claim, else
    ``principal`` (librdkafka keeps it for its logs; the broker takes its own
    from the token).
    """

    def read(_config: str) -> tuple[str, float, str]:
        token = path.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"the OAUTHBEARER token file {path} is empty")
        claims = _jwt_claims(token)
        now = time.time()
        expiry = now + OAUTH_LIFETIME_SECONDS
        exp = claims.get("exp")
        if isinstance(exp, int | float) and now < exp < expiry:
            expiry = float(exp)
        sub = claims.get("sub")
        return token, expiry, sub if isinstance(sub, str) and sub else principal

    return read


def _jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT (unverified: the broker verifies it), or {} if it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}
