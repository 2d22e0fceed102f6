"""``kafka.client: confluent``: the setting, and KafkaSettings in librdkafka's names."""

from __future__ import annotations

import base64
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from monitor.broker import free_port
from monitor.config import ConfigError, KafkaSettings, load_settings
from monitor.sources.confluent import ConfluentDeadLetterSink, ConfluentSource
from monitor.sources.confluent_config import (
    OAUTH_LIFETIME_SECONDS,
    consumer_config,
    oauth_callback,
    producer_config,
)

SECRET = "s3cr3t-Pa55"


def _jwt(claims: dict[str, Any]) -> str:
    """An unsigned JWT carrying ``claims`` (the broker verifies signatures, not the client)."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def test_client_defaults_to_kafka_python_and_refuses_other_names() -> None:
    """kafka-python is the default; a misspelt client is refused naming both choices."""
    assert KafkaSettings().client == "kafka-python"
    with pytest.raises(ConfigError, match=r"kafka\.client.*'kafka-python' or 'confluent'"):
        load_settings(policy="p.yaml", kafka={"client": "librdkafka"})


def test_confluent_without_the_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Choosing confluent without confluent-kafka installed fails at start naming the extra."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "confluent_kafka" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError, match=r"kafka\.client.*pip install 'shiftwatch\[confluent\]'"):
        load_settings(policy="p.yaml", kafka={"client": "confluent"})


def test_consumer_config_maps_group_fetch_and_commit_settings() -> None:
    """Every consumer setting reaches its librdkafka property; auto-commit and auto-store off."""
    settings = KafkaSettings(
        client="confluent",
        bootstrap_servers="k0:9092,k1:9093",
        client_id="sw-1",
        group_id="g",
        auto_offset_reset="latest",
        max_poll_interval_ms=10_000,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_000,
        fetch_max_bytes=2048,
        fetch_max_wait_ms=50,
        fetch_min_bytes=7,
        max_partition_fetch_bytes=4096,
        request_timeout_ms=5_000,
    )
    cfg = consumer_config(settings)
    expected = {
        "bootstrap.servers": "k0:9092,k1:9093",
        "client.id": "sw-1",
        "group.id": "g",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "latest",
        "max.poll.interval.ms": 10_000,
        "session.timeout.ms": 6_000,
        "heartbeat.interval.ms": 1_000,
        "fetch.max.bytes": 2048,
        "message.max.bytes": 2048,
        "fetch.wait.max.ms": 50,
        "fetch.min.bytes": 7,
        "max.partition.fetch.bytes": 4096,
        "socket.timeout.ms": 5_000,
        "security.protocol": "plaintext",
    }
    assert {k: cfg[k] for k in expected} == expected
    # librdkafka accepts every property, including a fetch size below its default message size.
    Consumer(cfg).close()


def test_producer_config_acknowledges_from_all_replicas() -> None:
    """The dead-letter producer waits for every in-sync replica and retries, as kafka-python's."""
    cfg = producer_config(KafkaSettings(client="confluent", request_timeout_ms=7_000))
    assert (cfg["acks"], cfg["retries"], cfg["request.timeout.ms"]) == ("all", 10, 7_000)
    Producer(cfg).flush(0)


def test_sasl_ssl_maps_tls_files_and_scram_credentials(tmp_path: Path) -> None:
    """TLS paths, the key password, the hostname check and SCRAM credentials from a file."""
    files = {}
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = tmp_path / f"{name}.pem"
        path.write_text("pem", encoding="utf-8")
        files[name] = str(path)
    password = tmp_path / "password"
    password.write_text(SECRET + "\n", encoding="utf-8")
    settings = load_settings(
        policy="p.yaml",
        kafka={
            "client": "confluent",
            "security_protocol": "SASL_SSL",
            "ssl_check_hostname": False,
            "ssl_password": "key-pass",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "shiftwatch",
            "sasl_password_file": str(password),
            **files,
        },
    )
    cfg = consumer_config(settings.kafka)
    assert cfg["security.protocol"] == "sasl_ssl"
    assert cfg["ssl.endpoint.identification.algorithm"] == "none"
    assert cfg["ssl.ca.location"] == files["ssl_cafile"]
    assert cfg["ssl.certificate.location"] == files["ssl_certfile"]
    assert cfg["ssl.key.location"] == files["ssl_keyfile"]
    assert cfg["ssl.key.password"] == "key-pass"
    assert (cfg["sasl.mechanism"], cfg["sasl.username"]) == ("SCRAM-SHA-512", "shiftwatch")
    assert cfg["sasl.password"] == SECRET
    assert SECRET not in repr(settings)


def test_oauth_callback_reads_the_rotated_token_with_its_expiry(tmp_path: Path) -> None:
    """The token is read at each refresh; a JWT's exp and sub are used, capped in lifetime."""
    token_file = tmp_path / "token"
    soon = time.time() + 60
    token_file.write_text(_jwt({"sub": "svc-shiftwatch", "exp": soon}) + "\n", encoding="utf-8")
    settings = load_settings(
        policy="p.yaml",
        kafka={
            "client": "confluent",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "OAUTHBEARER",
            "sasl_oauth_token_file": str(token_file),
        },
    )
    callback = consumer_config(settings.kafka)["oauth_cb"]
    token, expiry, principal = callback("")
    assert token == token_file.read_text().strip()
    assert (expiry, principal) == (soon, "svc-shiftwatch")
    token_file.write_text("opaque-rotated-token", encoding="utf-8")
    token, expiry, principal = callback("")
    assert (token, principal) == ("opaque-rotated-token", "shiftwatch")
    assert 0 < expiry - time.time() <= OAUTH_LIFETIME_SECONDS
    token_file.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"token file .* is empty"):
        oauth_callback(token_file, "shiftwatch")("")


def test_a_value_librdkafka_refuses_names_the_kafka_field() -> None:
    """A setting librdkafka refuses fails at start under its kafka.* name, not librdkafka's."""
    settings = KafkaSettings(
        client="confluent", session_timeout_ms=4_000_000, bootstrap_servers="127.0.0.1:1"
    )
    with pytest.raises(ConfigError, match=r"^kafka\.session_timeout_ms: refused by confluent"):
        ConfluentSource(settings)


def test_an_unreachable_broker_is_a_kafka_error_after_the_bootstrap_timeout() -> None:
    """No broker: both clients fail with a kafka-python KafkaError, which ``connect`` retries."""
    from kafka.errors import KafkaError

    settings = KafkaSettings(
        client="confluent",
        bootstrap_servers=f"127.0.0.1:{free_port()}",
        bootstrap_timeout_ms=300,
    )
    with pytest.raises(KafkaError, match=r"no broker of 127\.0\.0\.1:\d+ answered within 300 ms"):
        ConfluentSource(settings)
    with pytest.raises(KafkaError, match="answered within 300 ms"):
        ConfluentDeadLetterSink(settings)
