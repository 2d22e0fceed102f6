"""Writes helm/shiftwatch/values.schema.json: the chart's own values plus the
shiftwatch configuration and policy schemas, built from the models that validate
them (:class:`monitor.config.Settings`, :func:`monitor.schemas.schema`), so a key
the service rejects is rejected at ``helm install`` too.

Run ``python helm/values_schema.py`` after a change to the chart's values, the
configuration or the policy; tests/deploy/test_helm_chart.py checks the committed
file is current. Every object has ``additionalProperties: false``, except maps of
free-form strings (labels, annotations, nodeSelector), whose values must be strings.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from monitor.config import Settings  # noqa: E402
from monitor.scale.settings import ScaleSettings  # noqa: E402
from monitor.schemas import schema  # noqa: E402

OUT = REPO / "helm" / "shiftwatch" / "values.schema.json"

#: Configuration keys the chart sets itself (paths on its volumes, its HTTP address, the
#: tier's stage and the values of ``scale``). ``state.changelog_topic`` (removed) stays in
#: the schema so that rendering refuses it with the replacement, not as an unknown key.
CHART_OWNED = {
    "": ["policy", "http_host", "http_port"],
    "AlertingSettings": ["outbox_path", "webhook_secret", "webhook_secret_file"],
    "KafkaSettings": [
        "sasl_password",
        "sasl_password_file",
        "sasl_oauth_token_file",
        "ssl_password",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
    ],
    "StateSettings": [
        "path",
        "secret",
        "secret_file",
        "changelog_secret",
        "changelog_secret_file",
    ],
    "ScaleSettings": [
        "engine",
        "stage",
        "state_dir",
        "partials_topic",
        "partials_partitions",
        "commit_seconds",
        "emit_seconds",
    ],
}

#: The chart's ``scale`` values and the configuration fields they set.
SCALE_FIELDS = {
    "partialsTopic": "partials_topic",
    "partialsPartitions": "partials_partitions",
    "commitSeconds": "commit_seconds",
    "emitSeconds": "emit_seconds",
}

Schema = dict[str, Any]


def obj(properties: dict[str, Schema], description: str = "", **extra: Any) -> Schema:
    """A closed object schema."""
    out: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if description:
        out["description"] = description
    out.update(extra)
    return out


STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
STRING_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
QUANTITY: Schema = {"type": ["string", "integer", "number"]}
NAME: Schema = {
    "type": "string",
    "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$",
    "maxLength": 253,
    "description": "an existing Secret's name; empty: not used",
}


SIZE: Schema = {**STR, "pattern": "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"}


def secret_ref(description: str, key: str) -> Schema:
    """An existing Secret and the key in it."""
    return obj({"name": NAME, "key": {**STR, "minLength": 1, "default": key}}, description)


def probe() -> Schema:
    return obj(
        {
            name: {"type": "integer", "minimum": 0 if name == "initialDelaySeconds" else 1}
            for name in (
                "initialDelaySeconds",
                "periodSeconds",
                "timeoutSeconds",
                "failureThreshold",
            )
        }
    )


def resources() -> Schema:
    amounts = obj({"cpu": QUANTITY, "memory": QUANTITY, "ephemeral-storage": QUANTITY})
    return obj({"requests": amounts, "limits": amounts})


def seccomp() -> Schema:
    return obj(
        {
            "type": {"enum": ["RuntimeDefault", "Localhost"]},
            "localhostProfile": STR,
        },
        required=["type"],
    )


def scale() -> Schema:
    """``scale``: the two-stage tier's workloads; its fields as ScaleSettings validates them."""
    fields = ScaleSettings.model_json_schema()["properties"]
    settings = {}
    for value, field in SCALE_FIELDS.items():
        one = {k: v for k, v in fields[field].items() if k != "title"}
        one["description"] = f"scale.{field}: {one.get('description', '')}".rstrip(": ")
        settings[value] = one
    persistence = obj(
        {
            "enabled": BOOL,
            "storageClassName": STR,
            "accessMode": {"enum": ["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"]},
            "size": SIZE,
        },
        "a PersistentVolumeClaim per judge pod (a StatefulSet); off: an emptyDir",
    )
    replicas: Schema = {"type": "integer", "minimum": 0}
    return obj(
        {
            "enabled": BOOL,
            **settings,
            "ingest": obj({"replicas": replicas, "resources": resources()}),
            "judge": obj(
                {"replicas": replicas, "resources": resources(), "persistence": persistence}
            ),
        },
        "the two-stage tier on Quix Streams (docs/scale.md) instead of the single Deployment",
    )


def chart_values() -> Schema:
    """The chart's own values (everything but ``config`` and ``policy``)."""
    return {
        "nameOverride": STR,
        "fullnameOverride": STR,
        "replicaCount": {
            "type": "integer",
            "minimum": 0,
            "description": "the embedded engine is one replica per consumer group (more fails "
            "at render): scale.enabled for several",
        },
        "scale": scale(),
        "image": obj(
            {
                "repository": {**STR, "minLength": 1},
                "tag": STR,
                "digest": {"type": "string", "pattern": "^(sha256:[a-f0-9]{64})?$"},
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            }
        ),
        "imagePullSecrets": {"type": "array", "items": obj({"name": STR}, required=["name"])},
        "serviceAccount": obj({"create": BOOL, "name": STR, "annotations": STRING_MAP}),
        "podAnnotations": STRING_MAP,
        "podLabels": STRING_MAP,
        "priorityClassName": STR,
        "nodeSelector": STRING_MAP,
        "tolerations": {
            "type": "array",
            "items": obj(
                {
                    "key": STR,
                    "operator": {"enum": ["Exists", "Equal"]},
                    "value": STR,
                    "effect": {"enum": ["", "NoSchedule", "PreferNoSchedule", "NoExecute"]},
                    "tolerationSeconds": {"type": "integer"},
                }
            ),
        },
        "terminationGracePeriodSeconds": {"type": "integer", "minimum": 1},
        "secrets": obj(
            {
                "kafkaSaslPassword": secret_ref("SASL password file", "password"),
                "kafkaOauthToken": secret_ref("OAUTHBEARER token file", "token"),
                "kafkaTls": obj(
                    {"name": NAME, "caKey": STR, "certKey": STR, "keyKey": STR},
                    "CA, client certificate and key files; an empty key is not mounted",
                ),
                "kafkaSslKeyPassword": secret_ref("client key password (environment)", "password"),
                "webhook": secret_ref("webhook signing secret file", "secret"),
                "state": secret_ref("checkpoint signing key file", "secret"),
            }
        ),
        "persistence": obj(
            {
                "enabled": BOOL,
                "existingClaim": STR,
                "storageClassName": STR,
                "accessMode": {"enum": ["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"]},
                "size": SIZE,
            }
        ),
        "service": obj(
            {
                "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "annotations": STRING_MAP,
            }
        ),
        "resources": resources(),
        "podSecurityContext": obj(
            {
                "runAsNonRoot": {"const": True},
                "runAsUser": {"type": "integer", "minimum": 1},
                "runAsGroup": {"type": "integer", "minimum": 1},
                "fsGroup": {"type": "integer", "minimum": 1},
                "fsGroupChangePolicy": {"enum": ["OnRootMismatch", "Always"]},
                "seccompProfile": seccomp(),
            }
        ),
        "securityContext": obj(
            {
                "allowPrivilegeEscalation": {"const": False},
                "readOnlyRootFilesystem": {"const": True},
                "runAsNonRoot": {"const": True},
                "capabilities": obj(
                    {
                        "drop": {"type": "array", "items": STR, "contains": {"const": "ALL"}},
                        "add": {"type": "array", "items": STR, "maxItems": 0},
                    }
                ),
                "seccompProfile": seccomp(),
            }
        ),
        "livenessProbe": probe(),
        "readinessProbe": probe(),
        "podDisruptionBudget": obj(
            {"enabled": BOOL, "maxUnavailable": {"type": ["integer", "string"]}}
        ),
        "serviceMonitor": obj(
            {
                "enabled": BOOL,
                "labels": STRING_MAP,
                "interval": {**STR, "pattern": "^[0-9]+(ms|s|m|h)$"},
                "scrapeTimeout": {**STR, "pattern": "^[0-9]+(ms|s|m|h)$"},
                "jobName": {**STR, "minLength": 1},
            }
        ),
        "prometheusRule": obj({"enabled": BOOL, "labels": STRING_MAP}),
        "dashboards": obj({"enabled": BOOL, "labels": STRING_MAP, "annotations": STRING_MAP}),
        "tests": obj(
            {
                "image": obj(
                    {
                        "repository": STR,
                        "tag": STR,
                        "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                    }
                )
            }
        ),
    }


def _config_schema(defs: dict[str, Schema]) -> Schema:
    """The configuration file's schema less the keys the chart owns; models go to ``defs``."""
    settings = copy.deepcopy(Settings.model_json_schema())
    for name, model in settings.pop("$defs").items():
        defs[name] = model
    for model_name, keys in CHART_OWNED.items():
        model = settings if model_name == "" else defs[model_name]
        for key in keys:
            model["properties"].pop(key)
        required = [r for r in model.get("required", []) if r not in keys]
        if required:
            model["required"] = required
        else:
            model.pop("required", None)
    settings["description"] = (
        "the shiftwatch configuration file (README Configuration), less the keys the chart sets"
    )
    settings.pop("title", None)
    return settings


def _policy_schema(defs: dict[str, Schema]) -> Schema:
    policy = copy.deepcopy(schema("policy"))
    for name, model in policy.pop("$defs").items():
        if name in defs:
            raise ValueError(f"$defs {name} is both a configuration and a policy model")
        defs[name] = model
    for key in ("$id", "$schema"):
        policy.pop(key, None)
    return policy


def values_schema() -> Schema:
    """The whole values.schema.json."""
    defs: dict[str, Schema] = {}
    properties = chart_values()
    properties["config"] = _config_schema(defs)
    properties["policy"] = _policy_schema(defs)
    out = obj(properties, "values of the shiftwatch Helm chart")
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = "shiftwatch chart values"
    out["required"] = ["image", "config", "policy"]
    out["$defs"] = defs
    return out


def render() -> str:
    """values.schema.json as committed."""
    return json.dumps(values_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(OUT.relative_to(REPO))
