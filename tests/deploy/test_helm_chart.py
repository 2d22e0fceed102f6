"""The Helm chart helm/shiftwatch: rendered and linted by Helm's own code (the
helm-python-sdk wheel), its manifests validated against the Kubernetes schemas and
the prometheus-operator CRDs, its PrometheusRule checked by the real promtool, its
values schema closed, and the configuration it writes accepted by shiftwatch."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from monitor.config import Settings
from monitor.policy import parse_policy
from tests.servers import require_binary

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "shiftwatch"
RULES = REPO / "deploy" / "prometheus" / "shiftwatch-rules.yaml"
CRDS = REPO / "tests" / "data" / "crds"
RELEASE, NAMESPACE = "sw", "monitoring"
SERVICE = f"{RELEASE}-shiftwatch"
#: The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas.
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())

#: Every toggle on and every Secret reference set.
TOGGLES_ON: dict[str, Any] = {
    "image": {"digest": "sha256:" + "a" * 64},
    "imagePullSecrets": [{"name": "regcred"}],
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/sw"}},
    "podAnnotations": {"team": "fraud-ml"},
    "podLabels": {"cost-centre": "risk"},
    "priorityClassName": "high",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    ],
    "config": {
        "kafka": {
            "bootstrap_servers": "kafka-0:9093,kafka-1:9093",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "shiftwatch",
        },
        "alerting": {
            "alertmanager_urls": ["http://alertmanager-operated.monitoring.svc:9093"],
            "webhook_url": "https://soar.example.com/hooks/shiftwatch",
            "kafka_topic": "shiftwatch.alerts",
        },
        "alerts_out": "/var/lib/shiftwatch/alerts.jsonl",
    },
    "secrets": {
        "kafkaSaslPassword": {"name": "kafka-user"},
        "kafkaTls": {"name": "kafka-tls", "certKey": "tls.crt", "keyKey": "tls.key"},
        "kafkaSslKeyPassword": {"name": "kafka-tls", "key": "key-password"},
        "webhook": {"name": "shiftwatch-webhook"},
        "state": {"name": "shiftwatch-state"},
    },
    "persistence": {"storageClassName": "fast", "size": "5Gi"},
    "service": {"annotations": {"a": "b"}},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "dashboards": {"annotations": {"grafana_folder": "shiftwatch"}},
}
#: The two-stage tier: 3 ingest replicas with their own resources, 2 judges on emptyDirs.
SCALE: dict[str, Any] = {
    "scale": {
        "enabled": True,
        "partialsTopic": "sw.partials",
        "partialsPartitions": 12,
        "commitSeconds": 2,
        "emitSeconds": 0.25,
        "ingest": {"replicas": 3, "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
        # Judge pods without a claim (the default gives each one): the Deployment path.
        "judge": {"replicas": 2, "persistence": {"enabled": False}},
    },
    "secrets": {"state": {"name": "shiftwatch-state"}},
}
#: The tier with every toggle on and a PVC per judge pod.
SCALE_ON: dict[str, Any] = {
    **TOGGLES_ON,
    "scale": {"enabled": True, "judge": {"persistence": {"enabled": True, "size": "2Gi"}}},
}
#: Everything optional off.
TOGGLES_OFF: dict[str, Any] = {
    "serviceAccount": {"create": False},
    "persistence": {"enabled": False},
    "podDisruptionBudget": {"enabled": False},
    "dashboards": {"enabled": False},
}
CASES = {
    "defaults": {},
    "toggles-on": TOGGLES_ON,
    "scale": SCALE,
    "scale-toggles-on": SCALE_ON,
    "off": TOGGLES_OFF,
}


def render(values: dict[str, Any], chart: Path = CHART) -> list[dict[str, Any]]:
    """Every manifest the chart renders with ``values``, as Helm would install it."""
    rendered = helm.Chart.load(chart).render(
        values, name=RELEASE, namespace=NAMESPACE, is_install=True
    )
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs += [doc for doc in yaml.safe_load_all(text) if doc]
    return docs


def kind(docs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The manifests of one kind."""
    return [doc for doc in docs if doc["kind"] == name]


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The single Deployment."""
    (found,) = kind(docs, "Deployment")
    return found


def workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The Deployments and StatefulSets by name."""
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}


def rendered_config(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The configuration file and the policy of the chart's ConfigMap."""
    (cm,) = [d for d in kind(docs, "ConfigMap") if d["metadata"]["name"] == SERVICE]
    return yaml.safe_load(cm["data"]["shiftwatch.yaml"]), yaml.safe_load(cm["data"]["policy.yaml"])


@pytest.fixture(scope="module")
def chart_without_dashboards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the chart with its shipped dashboards taken out."""
    copy_dir = tmp_path_factory.mktemp("chart") / "shiftwatch"
    shutil.copytree(CHART, copy_dir)
    for shipped in (copy_dir / "dashboards").glob("*.json"):
        shipped.unlink()
    yield copy_dir


@pytest.fixture(scope="module")
def chart_with_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the chart with one sample dashboard JSON instead of the shipped ones."""
    copy_dir = tmp_path_factory.mktemp("chart") / "shiftwatch"
    shutil.copytree(CHART, copy_dir)
    for shipped in (copy_dir / "dashboards").glob("*.json"):
        shipped.unlink()
    sample = {"title": "shiftwatch / on-call", "uid": "shiftwatch-oncall", "panels": []}
    (copy_dir / "dashboards" / "shiftwatch_on-call.json").write_text(json.dumps(sample))
    yield copy_dir


@pytest.mark.parametrize("case", CASES)
def test_lints_clean(case: str) -> None:
    """`helm lint --strict` reports no warning or error with any set of values."""
    report = helm.lint(CHART, CASES[case], strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_manifests_valid_for_kubernetes(case: str, version: str) -> None:
    """Every built-in manifest validates, strictly (no unknown field), against the schemas."""
    docs = render(CASES[case])
    builtin = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {d["kind"] for d in builtin} >= {"Deployment", "Service", "ConfigMap", "Pod"}
    for doc in builtin:
        kubernetes_validate.validate(doc, version, strict=True)


def _closed(schema: Any) -> Any:
    """A CRD schema that rejects unknown fields: the API server would silently prune them,
    so a misspelt field would be lost without a word."""
    if isinstance(schema, dict):
        out = {key: _closed(value) for key, value in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


def crd_validator(plural: str) -> jsonschema.Draft4Validator:
    """A validator of the v1 openAPIV3Schema of a vendored prometheus-operator CRD, closed.

    OpenAPI 3.0 schemas are JSON Schema draft 4 (with Go's regular expressions, such as
    ``(?i)``, which Python's ``re`` also reads), so the draft-4 validator applies."""
    crd = yaml.safe_load((CRDS / f"monitoring.coreos.com_{plural}.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft4Validator(_closed(version["schema"]["openAPIV3Schema"]))


def test_monitoring_resources_match_their_crds() -> None:
    """ServiceMonitor and PrometheusRule (toggled on, with a `release` label) validate
    against prometheus-operator's published CRD schemas."""
    docs = render(TOGGLES_ON)
    for resource, plural in (
        ("ServiceMonitor", "servicemonitors"),
        ("PrometheusRule", "prometheusrules"),
    ):
        (doc,) = kind(docs, resource)
        crd_validator(plural).validate(doc)
        assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (monitor,) = kind(docs, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    # The shipped rules select job="shiftwatch".
    assert {"action": "replace", "targetLabel": "job", "replacement": "shiftwatch"} in endpoint[
        "relabelings"
    ]


def test_crd_schema_rejects_a_misspelt_field() -> None:
    """The closed CRD schema catches a field the operator would drop (the check has teeth)."""
    (doc,) = kind(render(TOGGLES_ON), "ServiceMonitor")
    bad = copy.deepcopy(doc)
    bad["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        crd_validator("servicemonitors").validate(bad)


def test_monitoring_resources_off_by_default() -> None:
    """Without the toggles there is no ServiceMonitor or PrometheusRule (no CRD needed)."""
    docs = render({})
    assert kind(docs, "ServiceMonitor") == [] and kind(docs, "PrometheusRule") == []


def test_prometheus_rule_is_the_rule_file(tmp_path: Path) -> None:
    """The rendered PrometheusRule's groups are deploy/prometheus/shiftwatch-rules.yaml's,
    and pass `promtool check rules`."""
    (rule,) = kind(render(TOGGLES_ON), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    extracted = tmp_path / "rules.yaml"
    extracted.write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    proc = subprocess.run(
        [require_binary("promtool"), "check", "rules", str(extracted)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_chart_rules_copy_is_identical() -> None:
    """The chart's files/ copy of the rules never drifts from deploy/prometheus."""
    copied = CHART / "files" / "shiftwatch-rules.yaml"
    assert copied.read_bytes() == RULES.read_bytes(), (
        f"copy {RULES.relative_to(REPO)} to {copied.relative_to(REPO)} after changing the rules"
    )


def test_values_schema_current() -> None:
    """The committed values.schema.json is what helm/values_schema.py builds from the models."""
    from helm.values_schema import render as render_schema

    assert (CHART / "values.schema.json").read_text() == render_schema(), (
        "run `python helm/values_schema.py` and commit helm/shiftwatch/values.schema.json"
    )


def _objects(schema: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object type (``type: object``) declared inside ``schema``, with its location;
    conditions (``if``, ``anyOf`` branches) constrain an object declared elsewhere."""
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            yield where, schema
        for key, value in schema.items():
            yield from _objects(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for i, item in enumerate(schema):
            yield from _objects(item, f"{where}/{i}")


def test_values_schema_closed_at_every_level() -> None:
    """Every object of the values schema with named fields has additionalProperties: false;
    the free-form maps (labels, annotations, nodeSelector, where) constrain their values."""
    values_schema = json.loads((CHART / "values.schema.json").read_text())
    objects = dict(_objects(values_schema))
    records = {w: o for w, o in objects.items() if "properties" in o}
    maps = {w: o for w, o in objects.items() if "properties" not in o}
    assert {"/$defs/KafkaSettings", "/$defs/ModelPolicy", "/properties/secrets"} <= set(records)
    assert [w for w, o in records.items() if o.get("additionalProperties") is not False] == []
    assert [w for w, o in maps.items() if not isinstance(o.get("additionalProperties"), dict)] == []


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"serviceMonitr": {"enabled": True}}, "serviceMonitr"),
        ({"serviceMonitor": {"enabled": True, "label": {"release": "x"}}}, "label"),
        ({"config": {"kafka": {"bootstrap_server": "k:9092"}}}, "bootstrap_server"),
        ({"config": {"state": {"secret": "in-values"}}}, "secret"),
        ({"config": {"scale": {"stage": "judge"}}}, "stage"),
        ({"scale": {"enabled": True, "judge": {"replica": 2}}}, "replica"),
        ({"scale": {"enabled": True, "commitSeconds": 0}}, "commitSeconds"),
        ({"securityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem"),
        ({"policy": {"version": 1, "models": [], "colour": "red"}}, "colour"),
    ],
)
def test_values_schema_rejects(values: dict[str, Any], named: str) -> None:
    """An unknown or misspelt key (anywhere), a secret in values, or an unhardened pod
    fails Helm's schema validation, naming the key."""
    with pytest.raises(helm.HelmValuesError, match=named):
        helm.Chart.load(CHART).validate_schema(values)


@pytest.mark.parametrize(
    ("values", "fix"),
    [
        ({"replicaCount": 2}, "scale.enabled"),
        ({"config": {"state": {"changelog_topic": "shiftwatch.state"}}}, "scale.enabled=true"),
        ({"scale": {"enabled": True}}, "secrets.state.name"),
        (
            {**SCALE, "config": {"history": {"path": "/var/lib/shiftwatch/h"}}},
            "config.history.path",
        ),
        ({"config": {"alerting": {"webhook_url": "https://x.example"}}}, "secrets.webhook.name"),
    ],
)
def test_values_that_cannot_run_fail_with_their_fix(values: dict[str, Any], fix: str) -> None:
    """Values shiftwatch would refuse at start fail at render, naming what to set."""
    with pytest.raises(helm.HelmRenderError, match=fix.replace(".", r"\.")):
        render(values)


@pytest.mark.parametrize("case", CASES)
def test_rendered_configuration_is_accepted(case: str) -> None:
    """The configuration file and policy the chart writes load as shiftwatch's own
    Settings and Policy (secret files aside, which only exist in the pod)."""
    config, policy = rendered_config(render(CASES[case]))
    assert config["policy"] == "/etc/shiftwatch/policy.yaml"
    for section, key in (("kafka", "sasl_password_file"), ("alerting", "webhook_secret_file")):
        config.get(section, {}).pop(key, None)
    state_secret = config["state"].pop("secret_file", None)
    kafka_files = {k: config["kafka"].pop(k) for k in list(config["kafka"]) if k.startswith("ssl_")}
    if state_secret is not None:
        config["state"]["secret"] = "x"
    if "webhook_url" in config["alerting"]:
        config["alerting"]["webhook_secret"] = "x"
    if config["kafka"].get("sasl_mechanism"):
        config["kafka"]["sasl_password"] = "x"
    Settings.model_validate(config)
    parse_policy(policy)
    if case == "toggles-on":
        assert kafka_files == {
            "ssl_cafile": "/run/secrets/shiftwatch/kafka-ca.crt",
            "ssl_certfile": "/run/secrets/shiftwatch/kafka-tls.crt",
            "ssl_keyfile": "/run/secrets/shiftwatch/kafka-tls.key",
        }


def test_state_on_the_volume_with_one_replica() -> None:
    """One replica: SQLite checkpoints and the outbox on a kept PVC, Recreate so two pods
    never share it."""
    docs = render({})
    config, _ = rendered_config(docs)
    assert config["state"]["path"] == "/var/lib/shiftwatch/state.sqlite3"
    assert config["alerting"]["outbox_path"] == "/var/lib/shiftwatch/outbox.sqlite3"
    (pvc,) = kind(docs, "PersistentVolumeClaim")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    spec = deployment(docs)["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


def _stage_settings(config: dict[str, Any], workload: dict[str, Any]) -> Settings:
    """The settings a stage's pod starts with: the file, and its --engine and --stage."""
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:3] == ["run", "--config", "/etc/shiftwatch/shiftwatch.yaml"]
    flags = dict(zip(args[3::2], args[4::2], strict=True))
    scale = {**config.get("scale", {}), "engine": flags["--engine"], "stage": flags["--stage"]}
    state = {k: v for k, v in config["state"].items() if k != "secret_file"}
    return Settings.model_validate({**config, "scale": scale, "state": {**state, "secret": "x"}})


def test_scale_mode_renders_an_ingest_and_a_judge_workload() -> None:
    """scale.enabled: <release>-ingest and <release>-judge in place of the single workload,
    each started as its stage of the quix engine, with its replicas and resources; the
    configuration they share carries the scale values and no state file."""
    docs = render(SCALE)
    ingest, judge = f"{SERVICE}-ingest", f"{SERVICE}-judge"
    found = workloads(docs)
    assert set(found) == {ingest, judge}
    assert {n: d["kind"] for n, d in found.items()} == {ingest: "Deployment", judge: "Deployment"}
    config, _ = rendered_config(docs)
    assert "path" not in config["state"]
    assert config["state"]["secret_file"] == "/run/secrets/shiftwatch/state-secret"
    assert config["scale"] == {
        "partials_topic": "sw.partials",
        "partials_partitions": 12,
        "commit_seconds": 2,
        "emit_seconds": 0.25,
        "state_dir": "/var/lib/shiftwatch/quix",
    }
    assert kind(docs, "PersistentVolumeClaim") == []
    for name, stage, replicas in ((ingest, "ingest", 3), (judge, "judge", 2)):
        spec = found[name]["spec"]
        assert spec["replicas"] == replicas
        assert spec["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
        assert spec["selector"]["matchLabels"]["app.kubernetes.io/component"] == stage
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"][3:] == ["--engine", "quix", "--stage", stage]
        settings = _stage_settings(config, found[name])
        assert (settings.scale.engine, settings.scale.stage) == ("quix", stage)
        assert settings.state.path is None and str(settings.scale.state_dir).startswith(
            "/var/lib/shiftwatch/"
        )
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["state"] == {"name": "state", "emptyDir": {}}
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["state"] == "/var/lib/shiftwatch"
        assert mounts["secrets"] == "/run/secrets/shiftwatch"
    ingest_pod = found[ingest]["spec"]["template"]["spec"]["containers"][0]
    judge_pod = found[judge]["spec"]["template"]["spec"]["containers"][0]
    assert ingest_pod["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}}
    assert (
        judge_pod["resources"] == yaml.safe_load((CHART / "values.yaml").read_text())["resources"]
    )


def test_scale_mode_services_and_budgets_per_stage() -> None:
    """Each stage has its Service (metrics on both; /verdict answers on the judge's, where
    rollout controllers point) selecting only its pods, and its PDB; the single
    Service is not rendered."""
    docs = render(SCALE)
    found = workloads(docs)
    services = {d["metadata"]["name"]: d for d in kind(docs, "Service")}
    assert set(services) == set(found) == {f"{SERVICE}-ingest", f"{SERVICE}-judge"}
    budgets = {d["metadata"]["name"]: d for d in kind(docs, "PodDisruptionBudget")}
    assert set(budgets) == set(found)
    for name, workload in found.items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        selector = services[name]["spec"]["selector"]
        assert selector.items() <= labels.items()
        other = next(w for n, w in found.items() if n != name)
        assert not selector.items() <= other["spec"]["template"]["metadata"]["labels"].items()
        assert budgets[name]["spec"]["selector"]["matchLabels"] == selector
        assert services[name]["spec"]["ports"][0]["targetPort"] == "http"


def test_scale_mode_judge_persistence_is_a_claim_per_pod() -> None:
    """scale.judge.persistence: the judge is a StatefulSet with a state claim per pod (its
    store and its outbox kept); the ingest pods keep an emptyDir."""
    docs = render(SCALE_ON)
    found = workloads(docs)
    judge = found[f"{SERVICE}-judge"]
    assert judge["kind"] == "StatefulSet"
    assert judge["spec"]["serviceName"] == f"{SERVICE}-judge"
    (claim,) = judge["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    pod = judge["spec"]["template"]["spec"]
    assert "state" not in {v["name"] for v in pod["volumes"]}
    assert {"name": "state", "mountPath": "/var/lib/shiftwatch"} in pod["containers"][0][
        "volumeMounts"
    ]
    ingest = found[f"{SERVICE}-ingest"]
    assert ingest["kind"] == "Deployment"
    volumes = {v["name"]: v for v in ingest["spec"]["template"]["spec"]["volumes"]}
    assert volumes["state"] == {"name": "state", "emptyDir": {}}
    assert kind(docs, "PersistentVolumeClaim") == []
    # The secrets of the single mode are mounted in both stages alike.
    for workload in found.values():
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        assert container["env"][0]["name"] == "SHIFTWATCH_KAFKA__SSL_PASSWORD"


def test_scale_mode_gives_each_judge_pod_a_claim_by_default() -> None:
    """The judge's alert outbox must outlive a restart (else alerts raised again after its
    last commit would go out again): by default each judge pod has its own claim."""
    docs = render({"scale": {"enabled": True}, "secrets": {"state": {"name": "s"}}})
    judge = workloads(docs)[f"{SERVICE}-judge"]
    assert judge["kind"] == "StatefulSet"
    (claim,) = judge["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"


def test_scale_mode_is_scraped_per_stage() -> None:
    """One ServiceMonitor selects both stages' Services and labels each series with its
    stage; it validates against the CRD."""
    docs = render(SCALE_ON)
    (monitor,) = kind(docs, "ServiceMonitor")
    crd_validator("servicemonitors").validate(monitor)
    match = monitor["spec"]["selector"]["matchLabels"]
    for service in kind(docs, "Service"):
        assert match.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert {
        "action": "replace",
        "sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_component"],
        "targetLabel": "stage",
    } in endpoint["relabelings"]


def test_scale_mode_notes_name_the_judge_and_the_topics() -> None:
    """NOTES.txt points rollout controllers at the judge's Service and lists the topics the
    tier needs: events keyed by request_id, the partials topic, Quix's changelog topics."""
    rendered = helm.Chart.load(CHART).render(SCALE, name=RELEASE, namespace=NAMESPACE)
    notes = rendered["shiftwatch/templates/NOTES.txt"]
    assert f"http://{SERVICE}-judge.{NAMESPACE}.svc:9464" in notes
    assert "produce every event keyed by its request_id" in notes
    assert "sw.partials" in notes
    assert "changelog__shiftwatch.ingest--shiftwatch.events--default" in notes
    assert "changelog__shiftwatch.judge--sw.partials--default" in notes
    assert "create topics" in notes


def test_scale_values_default_to_the_settings_defaults() -> None:
    """values.yaml's scale fields start at the defaults of the settings they set."""
    from helm.values_schema import SCALE_FIELDS
    from monitor.scale.settings import ScaleSettings

    values = yaml.safe_load((CHART / "values.yaml").read_text())["scale"]
    defaults = ScaleSettings()
    assert values["enabled"] is False
    for value, field in SCALE_FIELDS.items():
        assert values[value] == getattr(defaults, field), value


def test_pod_is_hardened() -> None:
    """Non-root, read-only root with an emptyDir /tmp, no capabilities, RuntimeDefault
    seccomp, no privilege escalation, no service-account token; probes and resources set."""
    pod = deployment(render({}))["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["args"] == ["run", "--config", "/etc/shiftwatch/shiftwatch.yaml"]


def test_secrets_come_from_existing_secrets() -> None:
    """Each Secret reference is a read-only projected file the configuration names, or
    (the TLS key password) an environment variable from secretKeyRef; no Secret is created."""
    docs = render(TOGGLES_ON)
    assert kind(docs, "Secret") == []
    pod = deployment(docs)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["env"] == [
        {
            "name": "SHIFTWATCH_KAFKA__SSL_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "kafka-tls", "key": "key-password"}},
        }
    ]
    volumes = {v["name"]: v for v in pod["volumes"]}
    projected = {
        item["path"]: (source["secret"]["name"], item["key"])
        for source in volumes["secrets"]["projected"]["sources"]
        for item in source["secret"]["items"]
    }
    assert projected == {
        "kafka-sasl-password": ("kafka-user", "password"),
        "kafka-ca.crt": ("kafka-tls", "ca.crt"),
        "kafka-tls.crt": ("kafka-tls", "tls.crt"),
        "kafka-tls.key": ("kafka-tls", "tls.key"),
        "webhook-secret": ("shiftwatch-webhook", "secret"),
        "state-secret": ("shiftwatch-state", "secret"),
    }
    config, _ = rendered_config(docs)
    assert config["kafka"]["sasl_password_file"] == "/run/secrets/shiftwatch/kafka-sasl-password"
    assert config["alerting"]["webhook_secret_file"] == "/run/secrets/shiftwatch/webhook-secret"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "secrets")
    assert mount == {"name": "secrets", "mountPath": "/run/secrets/shiftwatch", "readOnly": True}


def test_no_dashboard_configmap_without_dashboards(chart_without_dashboards: Path) -> None:
    """With no dashboards/*.json in the chart, no dashboard ConfigMap renders."""
    docs = render(TOGGLES_ON, chart=chart_without_dashboards)
    names = [d["metadata"]["name"] for d in kind(docs, "ConfigMap")]
    assert names == [SERVICE]


def test_the_shipped_dashboards_become_configmaps() -> None:
    """The chart's own dashboards (python -m dashboards.build) each render as a labelled
    ConfigMap holding the JSON unchanged."""
    shipped = sorted((CHART / "dashboards").glob("*.json"))
    assert [p.name for p in shipped] == ["shiftwatch-oncall.json", "shiftwatch-pipeline.json"]
    boards = [
        d for d in kind(render(TOGGLES_ON), "ConfigMap") if "dashboard" in d["metadata"]["name"]
    ]
    assert len(boards) == len(shipped)
    for board, path in zip(
        sorted(boards, key=lambda d: d["metadata"]["name"]), shipped, strict=True
    ):
        assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(board["data"][path.name]) == json.loads(path.read_text())
        kubernetes_validate.validate(board, KUBE_VERSIONS[-1], strict=True)


def test_dashboards_become_labelled_configmaps(chart_with_dashboard: Path) -> None:
    """Each dashboards/*.json becomes a ConfigMap labelled grafana_dashboard holding the
    JSON unchanged, validated like the rest."""
    docs = render(TOGGLES_ON, chart=chart_with_dashboard)
    (board,) = [d for d in kind(docs, "ConfigMap") if "dashboard" in d["metadata"]["name"]]
    assert board["metadata"]["name"] == f"{SERVICE}-dashboard-shiftwatch-on-call"
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["metadata"]["annotations"] == {"grafana_folder": "shiftwatch"}
    source = (chart_with_dashboard / "dashboards" / "shiftwatch_on-call.json").read_text()
    assert json.loads(board["data"]["shiftwatch_on-call.json"]) == json.loads(source)
    kubernetes_validate.validate(board, KUBE_VERSIONS[-1], strict=True)
    off = render({"dashboards": {"enabled": False}}, chart=chart_with_dashboard)
    assert [d["metadata"]["name"] for d in kind(off, "ConfigMap")] == [SERVICE]


def test_helm_test_hook_checks_readyz_and_metrics() -> None:
    """`helm test` runs a hardened pod fetching /readyz and /metrics through the Service."""
    (pod,) = kind(render({}), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    script = container["args"][0]
    assert f"http://{SERVICE}:9464" in script
    assert '"$base/readyz"' in script and '"$base/metrics"' in script
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    (scaled,) = kind(render(SCALE), "Pod")
    script = scaled["spec"]["containers"][0]["args"][0]
    assert f"in http://{SERVICE}-ingest:9464 http://{SERVICE}-judge:9464;" in script


def test_service_and_disruption_budget() -> None:
    """The Service `<release>-shiftwatch` exposes port http 9464 to the pods; the PDB never
    blocks a drain of the single replica."""
    docs = render({})
    (service,) = kind(docs, "Service")
    assert service["metadata"]["name"] == SERVICE
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 9464, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (pdb,) = kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1


def test_examples_address_the_charts_service() -> None:
    """Installed as `helm install shiftwatch -n monitoring`, the Service is the address the
    Argo Rollouts and Flagger examples call, and the docs name both forms."""
    rendered = helm.Chart.load(CHART).render({}, name="shiftwatch", namespace="monitoring")
    (service,) = yaml.safe_load_all(rendered["shiftwatch/templates/service.yaml"])
    address = f"http://{service['metadata']['name']}.monitoring.svc.cluster.local:9464"
    for example in ("argo-rollouts/analysis-template-web.yaml", "flagger/canary-example.yaml"):
        assert address in (REPO / "deploy" / example).read_text(), example
    for doc in ("docs/deploy.md", "docs/runbook.md"):
        text = (REPO / doc).read_text()
        assert address in text and "<release>-shiftwatch.<namespace>.svc:9464" in text, doc
