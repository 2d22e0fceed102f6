"""Tests of service configuration: precedence of flags, environment, file and defaults; secrets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import ConfigError, KafkaSettings, Settings, load_settings

SECRET = "hunter2-Zq9-secret"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run each test without any SHIFTWATCH_* variable from the outer environment, in a temp dir."""
    for name in list(os.environ):
        if name.upper().startswith("SHIFTWATCH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write_yaml(tmp_path: Path, data: dict[str, Any], name: str = "shiftwatch.yaml") -> Path:
    """Write ``data`` as a YAML config file and return its path."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def secret_file(tmp_path: Path, text: str = SECRET + "\n") -> Path:
    """A file holding a password, with a trailing newline as editors and Kubernetes write it."""
    path = tmp_path / "sasl-password"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(config_file: Path | None = None, **overrides: Any) -> str:
    """Load settings that must fail and return the error text."""
    with pytest.raises(ConfigError) as info:
        load_settings(config_file, **overrides)
    return str(info.value)


# --- defaults and precedence -----------------------------------------------------------------


def test_defaults() -> None:
    """With only a policy given, everything else takes its documented default."""
    settings = load_settings(policy="policy.yaml")
    assert isinstance(settings, Settings)
    assert settings.policy == Path("policy.yaml")
    assert settings.http_port == 9464
    assert settings.log_level == "info"
    assert settings.log_format == "auto"
    assert settings.alerts_out is None
    assert settings.kafka.bootstrap_servers == "localhost:9092"
    assert settings.kafka.topics == ["shiftwatch.events"]
    assert settings.kafka.group_id == "shiftwatch"
    assert settings.kafka.security_protocol == "PLAINTEXT"
    assert settings.limits.segment_cap == 20
    assert settings.limits.join_ttl_seconds == 14 * 86400.0


#: (dotted field, file value, env value, flag value); env values are strings as in a shell.
LAYERS = [
    pytest.param(("http_port",), 1111, "2222", 3333, id="http_port"),
    pytest.param(("log_level",), "debug", "warning", "error", id="log_level"),
    pytest.param(("http_host",), "10.0.0.1", "10.0.0.2", "10.0.0.3", id="http_host"),
    pytest.param(("kafka", "group_id"), "file-g", "env-g", "flag-g", id="kafka.group_id"),
    pytest.param(
        ("kafka", "bootstrap_servers"), "f:9092", "e:9092", "x:9092", id="kafka.bootstrap_servers"
    ),
    pytest.param(("limits", "segment_cap"), 5, "6", 7, id="limits.segment_cap"),
]


def env_name(path: tuple[str, ...]) -> str:
    """The environment variable of a (possibly nested) field."""
    return "SHIFTWATCH_" + "__".join(part.upper() for part in path)


def nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """``{"a": {"b": value}}`` for path ``("a", "b")``."""
    out: dict[str, Any] = {path[-1]: value}
    for part in reversed(path[:-1]):
        out = {part: out}
    return out


def read(settings: Settings, path: tuple[str, ...]) -> Any:
    """The value of a dotted field of ``settings``."""
    node: Any = settings
    for part in path:
        node = getattr(node, part)
    return node


@pytest.mark.parametrize(("path", "file_value", "env_value", "flag_value"), LAYERS)
def test_file_overrides_defaults(
    tmp_path: Path, path: tuple[str, ...], file_value: Any, env_value: str, flag_value: Any
) -> None:
    """A value in the YAML file overrides the default."""
    config = write_yaml(tmp_path, {"policy": "p.yaml", **nest(path, file_value)})
    assert read(load_settings(config), path) == file_value


@pytest.mark.parametrize(("path", "file_value", "env_value", "flag_value"), LAYERS)
def test_env_overrides_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    path: tuple[str, ...],
    file_value: Any,
    env_value: str,
    flag_value: Any,
) -> None:
    """A SHIFTWATCH_ variable (``__`` for nesting) overrides the YAML file."""
    config = write_yaml(tmp_path, {"policy": "p.yaml", **nest(path, file_value)})
    monkeypatch.setenv(env_name(path), env_value)
    value = read(load_settings(config), path)
    assert str(value) == env_value
    assert value != file_value


@pytest.mark.parametrize(("path", "file_value", "env_value", "flag_value"), LAYERS)
def test_flag_overrides_env_and_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    path: tuple[str, ...],
    file_value: Any,
    env_value: str,
    flag_value: Any,
) -> None:
    """A flag (keyword override) beats both the environment and the file."""
    config = write_yaml(tmp_path, {"policy": "p.yaml", **nest(path, file_value)})
    monkeypatch.setenv(env_name(path), env_value)
    assert read(load_settings(config, **nest(path, flag_value)), path) == flag_value


def test_env_overrides_default_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Environment variables alone configure the service, the policy included."""
    monkeypatch.setenv("SHIFTWATCH_POLICY", "/etc/shiftwatch/policy.yaml")
    monkeypatch.setenv("SHIFTWATCH_KAFKA__BOOTSTRAP_SERVERS", "kafka-0:9092,kafka-1:9092")
    monkeypatch.setenv("SHIFTWATCH_KAFKA__TOPICS", '["inference", "action", "outcome"]')
    settings = load_settings()
    assert settings.policy == Path("/etc/shiftwatch/policy.yaml")
    assert settings.kafka.bootstrap_servers == "kafka-0:9092,kafka-1:9092"
    assert settings.kafka.topics == ["inference", "action", "outcome"]


def test_none_flags_do_not_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flag left unset (None) does not mask the environment or the file."""
    config = write_yaml(tmp_path, {"policy": "file.yaml", "log_level": "debug"})
    monkeypatch.setenv("SHIFTWATCH_HTTP_PORT", "1234")
    settings = load_settings(config, policy=None, http_port=None, log_level=None)
    assert settings.policy == Path("file.yaml")
    assert settings.http_port == 1234
    assert settings.log_level == "debug"


def test_nested_layers_merge_field_by_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nested fields from flags, env and file combine; each layer only overrides what it sets."""
    config = write_yaml(
        tmp_path,
        {
            "policy": "p.yaml",
            "kafka": {"group_id": "file-g", "client_id": "file-c", "dead_letter_topic": "file-dlq"},
        },
    )
    monkeypatch.setenv("SHIFTWATCH_KAFKA__CLIENT_ID", "env-c")
    monkeypatch.setenv("SHIFTWATCH_KAFKA__DEAD_LETTER_TOPIC", "env-dlq")
    settings = load_settings(config, kafka={"dead_letter_topic": "flag-dlq"})
    assert settings.kafka.group_id == "file-g"
    assert settings.kafka.client_id == "env-c"
    assert settings.kafka.dead_letter_topic == "flag-dlq"
    assert settings.kafka.bootstrap_servers == "localhost:9092"


# --- errors ---------------------------------------------------------------------------------------


def test_missing_policy_names_the_field_and_env_var() -> None:
    """Without a policy the error names ``policy`` and how to set it, SHIFTWATCH_POLICY included."""
    text = config_error()
    assert "policy" in text
    assert "Field required" in text
    assert "SHIFTWATCH_POLICY" in text


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    """A config file path that does not exist is reported, not silently ignored."""
    text = config_error(tmp_path / "absent.yaml", policy="p.yaml")
    assert "absent.yaml" in text
    assert "not found" in text


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"http_port": 70000}, "http_port"),
        ({"http_port": -1}, "http_port"),
        ({"log_level": "verbose"}, "log_level"),
        ({"log_format": "xml"}, "log_format"),
        ({"kafka": {"max_poll_records": 0}}, "kafka.max_poll_records"),
        ({"kafka": {"auto_offset_reset": "none"}}, "kafka.auto_offset_reset"),
        ({"kafka": {"topics": []}}, "kafka.topics"),
        ({"kafka": {"group_id": ""}}, "kafka.group_id"),
        ({"kafka": {"security_protocol": "TLS"}}, "kafka.security_protocol"),
        ({"kafka": {"sasl_mechanism": "GSSAPI"}}, "kafka.sasl_mechanism"),
        ({"limits": {"segment_cap": 0}}, "limits.segment_cap"),
        ({"limits": {"join_ttl_seconds": 0}}, "limits.join_ttl_seconds"),
        ({"limits": {"dedupe_window": 0}}, "limits.dedupe_window"),
    ],
)
def test_invalid_flag_values_name_the_field(overrides: dict[str, Any], field: str) -> None:
    """An invalid value is reported under its dotted field name."""
    text = config_error(policy="p.yaml", **overrides)
    assert text.startswith("invalid configuration:")
    assert f"  {field}: " in text
    # Each problem ends with a fix that says what to write, never a bare "correct the value".
    for line in text.splitlines()[1:]:
        assert line.endswith(")") and "(fix: " in line and "correct the value" not in line


@pytest.mark.parametrize(
    ("env", "value", "field"),
    [
        ("SHIFTWATCH_HTTP_PORT", "abc", "http_port"),
        ("SHIFTWATCH_LOG_LEVEL", "loud", "log_level"),
        ("SHIFTWATCH_KAFKA__MAX_POLL_RECORDS", "many", "kafka.max_poll_records"),
        ("SHIFTWATCH_LIMITS__SEGMENT_CAP", "5000", "limits.segment_cap"),
    ],
)
def test_invalid_env_values_name_the_field(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, field: str
) -> None:
    """An invalid environment value is reported under its dotted field name."""
    monkeypatch.setenv(env, value)
    text = config_error(policy="p.yaml")
    assert f"  {field}: " in text


def test_invalid_file_value_names_the_field(tmp_path: Path) -> None:
    """An invalid value in the YAML file is reported under its dotted field name."""
    config = write_yaml(tmp_path, {"policy": "p.yaml", "kafka": {"poll_timeout_ms": 0}})
    assert "  kafka.poll_timeout_ms: " in config_error(config)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"policy": "p.yaml", "http_prot": 1}, "http_prot"),
        ({"policy": "p.yaml", "kafka": {"bootstrap": "x:9092"}}, "kafka.bootstrap"),
        ({"policy": "p.yaml", "limits": {"segment_caps": 3}}, "limits.segment_caps"),
    ],
)
def test_unknown_yaml_key_is_rejected(tmp_path: Path, data: dict[str, Any], field: str) -> None:
    """A misspelt key in the config file is an error naming it, not silently ignored."""
    text = config_error(write_yaml(tmp_path, data))
    assert f"  {field}: " in text
    assert "Extra inputs are not permitted" in text
    assert "(fix: remove it or correct its spelling" in text


@pytest.mark.parametrize(
    ("data", "suggested"),
    [
        ({"policy": "p.yaml", "http_prot": 1}, "http_port"),
        ({"policy": "p.yaml", "kafka": {"bootstrap_server": "x:9092"}}, "bootstrap_servers"),
        ({"policy": "p.yaml", "limits": {"segment_caps": 3}}, "segment_cap"),
        ({"policy": "p.yaml", "log_level": "warn"}, "warning"),
    ],
)
def test_a_misspelt_key_or_value_gets_a_suggestion(
    tmp_path: Path, data: dict[str, Any], suggested: str
) -> None:
    assert f"(did you mean {suggested!r}?)" in config_error(write_yaml(tmp_path, data))


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_sasl_without_mechanism_is_rejected(protocol: str) -> None:
    """A SASL security protocol without ``sasl_mechanism`` is rejected, listing the mechanisms."""
    text = config_error(policy="p.yaml", kafka={"security_protocol": protocol})
    assert "kafka" in text
    assert "sasl_mechanism" in text
    assert "SCRAM-SHA-512" in text


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_password_mechanism_without_password_is_rejected(mechanism: str) -> None:
    """A password mechanism without a password hints at SHIFTWATCH_KAFKA__SASL_PASSWORD."""
    text = config_error(
        policy="p.yaml",
        kafka={"security_protocol": "SASL_SSL", "sasl_mechanism": mechanism, "sasl_username": "u"},
    )
    assert "needs a password" in text
    assert "SHIFTWATCH_KAFKA__SASL_PASSWORD" in text
    assert "sasl_password_file" in text


def test_password_mechanism_without_username_is_rejected() -> None:
    """SCRAM without ``sasl_username`` is rejected naming it."""
    text = config_error(
        policy="p.yaml",
        kafka={
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_password": SECRET,
        },
    )
    assert "sasl_username" in text
    assert SECRET not in text


def test_oauthbearer_needs_a_token_file_not_a_password(tmp_path: Path) -> None:
    """OAUTHBEARER authenticates by a token read from a file; no username or password."""
    text = config_error(
        policy="p.yaml", kafka={"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"}
    )
    assert "sasl_oauth_token_file" in text and "SHIFTWATCH_KAFKA__SASL_OAUTH_TOKEN_FILE" in text
    token = tmp_path / "token"
    token.write_text("header.payload.sig\n")
    settings = load_settings(
        policy="p.yaml",
        kafka={
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "OAUTHBEARER",
            "sasl_oauth_token_file": str(token),
        },
    )
    cfg = settings.kafka.client_config()
    assert cfg["sasl_mechanism"] == "OAUTHBEARER"
    assert "sasl_plain_password" not in cfg
    assert cfg["sasl_oauth_token_provider"].token() == "header.payload.sig"
    token.write_text("rotated.token.sig")  # re-read at the next authentication
    assert cfg["sasl_oauth_token_provider"].token() == "rotated.token.sig"
    assert "payload" not in repr(cfg["sasl_oauth_token_provider"])


@pytest.mark.parametrize(
    "field", ["ssl_cafile", "ssl_certfile", "ssl_keyfile", "sasl_password_file"]
)
def test_missing_tls_and_secret_files_are_rejected(tmp_path: Path, field: str) -> None:
    """A TLS or password file path that does not exist is rejected naming the field."""
    missing = tmp_path / "nope.pem"
    text = config_error(policy="p.yaml", kafka={"security_protocol": "SSL", field: str(missing)})
    assert field in text
    assert str(missing) in text
    assert "not a readable file" in text


# --- secrets -------------------------------------------------------------------------------------


def scram(**kafka: Any) -> dict[str, Any]:
    """Kafka overrides for SCRAM-SHA-512 over SASL_SSL as user ``svc``."""
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "svc",
        **kafka,
    }


def test_password_file_is_read_into_client_config(tmp_path: Path) -> None:
    """``sasl_password_file`` is read, stripped of its newline, into ``sasl_plain_password``."""
    path = secret_file(tmp_path)
    settings = load_settings(policy="p.yaml", kafka=scram(sasl_password_file=str(path)))
    cfg = settings.kafka.client_config()
    assert cfg["sasl_plain_password"] == SECRET
    assert cfg["sasl_plain_username"] == "svc"
    assert cfg["sasl_mechanism"] == "SCRAM-SHA-512"


def test_password_file_from_env_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The password file may be named in the environment, as a Kubernetes secret mount."""
    path = secret_file(tmp_path)
    monkeypatch.setenv("SHIFTWATCH_KAFKA__SASL_PASSWORD_FILE", str(path))
    settings = load_settings(policy="p.yaml", kafka=scram())
    assert settings.kafka.client_config()["sasl_plain_password"] == SECRET


def test_password_from_env_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """SHIFTWATCH_KAFKA__SASL_PASSWORD supplies the password for SCRAM."""
    monkeypatch.setenv("SHIFTWATCH_KAFKA__SASL_PASSWORD", SECRET)
    settings = load_settings(policy="p.yaml", kafka=scram())
    assert settings.kafka.client_config()["sasl_plain_password"] == SECRET


@pytest.mark.parametrize("via", ["file", "env"])
def test_secret_never_appears_in_repr_or_str(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    """The SASL password is absent from ``repr``, ``str`` and a JSON dump of the settings."""
    if via == "file":
        kafka = scram(sasl_password_file=str(secret_file(tmp_path)))
    else:
        monkeypatch.setenv("SHIFTWATCH_KAFKA__SASL_PASSWORD", SECRET)
        kafka = scram()
    settings = load_settings(policy="p.yaml", kafka=kafka)
    assert settings.kafka.client_config()["sasl_plain_password"] == SECRET
    for text in (
        repr(settings),
        str(settings),
        repr(settings.kafka),
        str(settings.kafka),
        settings.model_dump_json(),
    ):
        assert SECRET not in text


def test_tls_key_password_is_hidden_but_passed_to_the_client(tmp_path: Path) -> None:
    """``ssl_password`` reaches kafka-python but not ``repr`` or ``str``."""
    pem = tmp_path / "client.pem"
    pem.write_text("not really a key", encoding="utf-8")
    settings = load_settings(
        policy="p.yaml",
        kafka={"security_protocol": "SSL", "ssl_keyfile": str(pem), "ssl_password": SECRET},
    )
    assert settings.kafka.client_config()["ssl_password"] == SECRET
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


# --- client_config -----------------------------------------------------------------------------


def test_client_config_plaintext_maps_to_kafka_python_names() -> None:
    """A plaintext configuration yields only the connection keys kafka-python expects."""
    settings = load_settings(
        policy="p.yaml",
        kafka={
            "bootstrap_servers": "k0:9092,k1:9093",
            "client_id": "sw-1",
            "request_timeout_ms": 5000,
            "bootstrap_timeout_ms": 2000,
        },
    )
    assert settings.kafka.client_config() == {
        "bootstrap_servers": ["k0:9092", "k1:9093"],
        "client_id": "sw-1",
        "security_protocol": "PLAINTEXT",
        "request_timeout_ms": 5000,
        "bootstrap_timeout_ms": 2000,
    }


def test_client_config_ssl_maps_files_and_hostname_check(tmp_path: Path) -> None:
    """TLS fields are passed as string paths under kafka-python's ``ssl_*`` names."""
    files = {}
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = tmp_path / f"{name}.pem"
        path.write_text("pem", encoding="utf-8")
        files[name] = str(path)
    settings = load_settings(
        policy="p.yaml",
        kafka={"security_protocol": "SSL", "ssl_check_hostname": False, **files},
    )
    cfg = settings.kafka.client_config()
    assert cfg["security_protocol"] == "SSL"
    assert cfg["ssl_check_hostname"] is False
    for name, path in files.items():
        assert cfg[name] == path
        assert isinstance(cfg[name], str)
    assert "sasl_mechanism" not in cfg


def test_client_config_sasl_ssl_has_both_tls_and_sasl_keys(tmp_path: Path) -> None:
    """SASL_SSL passes the TLS settings and the SASL credentials together."""
    ca = tmp_path / "ca.pem"
    ca.write_text("pem", encoding="utf-8")
    settings = load_settings(policy="p.yaml", kafka=scram(ssl_cafile=str(ca), sasl_password=SECRET))
    cfg = settings.kafka.client_config()
    assert cfg["security_protocol"] == "SASL_SSL"
    assert cfg["ssl_cafile"] == str(ca)
    assert cfg["ssl_check_hostname"] is True
    assert cfg["sasl_mechanism"] == "SCRAM-SHA-512"
    assert cfg["sasl_plain_username"] == "svc"
    assert cfg["sasl_plain_password"] == SECRET


def test_client_config_sasl_plaintext_has_no_tls_keys() -> None:
    """SASL_PLAINTEXT passes SASL credentials but no ``ssl_*`` keys."""
    settings = load_settings(
        policy="p.yaml",
        kafka={
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_username": "u",
            "sasl_password": SECRET,
        },
    )
    cfg = settings.kafka.client_config()
    assert not any(key.startswith("ssl_") for key in cfg)
    assert cfg["sasl_mechanism"] == "PLAIN"
    assert cfg["sasl_plain_password"] == SECRET


def test_kafka_settings_validate_on_their_own() -> None:
    """``KafkaSettings`` enforces the same security rules when built directly."""
    with pytest.raises(ValueError, match="sasl_mechanism"):
        KafkaSettings(security_protocol="SASL_SSL")
    assert KafkaSettings().client_config()["security_protocol"] == "PLAINTEXT"


def test_webhook_without_a_secret_fails_at_start_with_the_fix() -> None:
    text = config_error(policy="p.yaml", alerting={"webhook_url": "https://hooks.example/x"})
    assert "alerting" in text
    assert "SHIFTWATCH_ALERTING__WEBHOOK_SECRET" in text


def test_alerting_urls_must_be_http() -> None:
    text = config_error(policy="p.yaml", alerting={"alertmanager_urls": ["alertmanager:9093"]})
    assert "'alertmanager:9093' is not an http:// or https:// URL" in text


def test_webhook_secret_from_env_or_file_is_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIFTWATCH_ALERTING__WEBHOOK_SECRET", SECRET)
    settings = load_settings(None, policy="p.yaml", alerting={"webhook_url": "https://h.example"})
    assert settings.alerting.secret() == SECRET.encode()
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    monkeypatch.delenv("SHIFTWATCH_ALERTING__WEBHOOK_SECRET")
    from_file = load_settings(
        None,
        policy="p.yaml",
        alerting={"webhook_url": "https://h.example", "webhook_secret_file": secret_file(tmp_path)},
    )
    assert from_file.alerting.secret() == SECRET.encode()


#: The one line a removed state.changelog_topic gets, naming the field and what replaces it.
CHANGELOG_REMOVED = (
    "invalid configuration:\n  state.changelog_topic: removed in 0.4.0 — the changelog "
    "scale-out mode is replaced by the two-stage tier on Quix Streams: run `shiftwatch run "
    "--engine quix --stage ingest` and `--stage judge` replicas (scale.*, docs/scale.md)"
)


def test_a_changelog_topic_in_the_file_is_refused_naming_the_replacement(tmp_path: Path) -> None:
    """state.changelog_topic (the changelog scale-out mode, removed) fails with one message."""
    config = write_yaml(tmp_path, {"state": {"changelog_topic": "shiftwatch.state"}})
    assert config_error(config, policy="p.yaml") == CHANGELOG_REMOVED


def test_a_changelog_topic_in_the_environment_is_refused_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SHIFTWATCH_STATE__CHANGELOG_TOPIC stops ``shiftwatch run`` at start: status 2, the
    message on stderr, even with the secret the mode needed."""
    from monitor.cli import main

    monkeypatch.setenv("SHIFTWATCH_STATE__CHANGELOG_TOPIC", "shiftwatch.state")
    monkeypatch.setenv("SHIFTWATCH_STATE__CHANGELOG_SECRET", SECRET)
    assert main(["run", "--policy", str(tmp_path / "p.yaml")]) == 2
    assert capsys.readouterr().err == f"shiftwatch run: {CHANGELOG_REMOVED}\n"


def test_the_old_secret_names_still_sign_checkpoints(tmp_path: Path) -> None:
    """state.changelog_secret and changelog_secret_file are aliases of state.secret(_file);
    setting a name and its alias together is refused."""
    old = load_settings(policy="p.yaml", state={"changelog_secret": SECRET})
    assert old.state.signing_key() == SECRET.encode()
    from_file = load_settings(
        policy="p.yaml", state={"changelog_secret_file": str(secret_file(tmp_path))}
    )
    assert from_file.state.signing_key() == SECRET.encode()
    quix = load_settings(
        policy="p.yaml",
        state={"changelog_secret": SECRET},
        scale={"engine": "quix", "stage": "judge"},
    )
    assert quix.state.signing_key() == SECRET.encode()
    text = config_error(policy="p.yaml", state={"secret": "a", "changelog_secret": "b"})
    assert "state.secret and state.changelog_secret are one setting" in text


def test_the_quix_engine_refuses_a_history_path() -> None:
    """The judge stage records no history yet: an explicit history.path is refused, not
    silently ignored."""
    text = config_error(
        policy="p.yaml",
        state={"secret": SECRET},
        scale={"engine": "quix", "stage": "judge"},
        history={"path": "/r/h.sqlite3"},
    )
    assert "history.path: the two-stage tier (scale.engine quix) records no history yet" in text
