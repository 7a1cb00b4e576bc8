"""JSON schemas for the two operator resources that deploy/ renders and the core Kubernetes schemas do
not cover: KEDA's ``ScaledObject`` (keda.sh/v1alpha1) and prometheus-operator's ``ServiceMonitor``
(monitoring.coreos.com/v1).

Written from the documented fields (KEDA's ScaledObject specification and Prometheus scaler page, KEDA
2.x; prometheus-operator's API reference for ServiceMonitorSpec, Endpoint and RelabelConfig). Unknown
keys are rejected at every level described here, as the API server's strict field validation would
(``kubectl apply`` defaults to it), so a typo fails; embedded Kubernetes types (ObjectMeta,
LabelSelector, HorizontalPodAutoscalerBehavior, SecretKeySelector) are checked against the core
definitions that kubernetes-validate ships, as in kserve_schema.py. Status fields and rarely used
options (TLS, OAuth2, proxies) are left out: a manifest using them fails here first, deliberately.

Cross-checked once (not in the suite: it needs extra packages) against the Pydantic models generated
from the CRDs themselves, cloudcoil-models-keda 2.16.1.0 and cloudcoil-models-prometheus-operator
0.80.1.0: every field named here exists there, except ``fallback.behavior`` (KEDA 2.17+), and the
rendered ScaledObjects and ServiceMonitors load into those models without losing a field.
"""

from __future__ import annotations

from typing import Any

_DEFS = "/api/_definitions.json#/$defs/"


def _k8s(name: str) -> dict[str, str]:
    return {"$ref": _DEFS + name}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        out["required"] = required
    return out


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


_STRING = {"type": "string"}
_NON_NEGATIVE = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = _k8s("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
# Prometheus durations: 30s, 1m30s, 500ms...
_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
                                          r"(([0-9]+)s)?(([0-9]+)ms)?)$"}
# A Kubernetes quantity as a string ("128", "0.5", "1k").
_QUANTITY_STRING = {"type": "string", "pattern": r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]i?)?$"}

# --- KEDA ScaledObject ----------------------------------------------------------------------------

# Prometheus scaler metadata (keda.sh/docs/2.x/scalers/prometheus): all values are strings.
_PROMETHEUS_METADATA = _object({
    "serverAddress": {"type": "string", "pattern": "^https?://"},
    "query": {"type": "string", "minLength": 1},
    "threshold": _QUANTITY_STRING,
    "activationThreshold": _QUANTITY_STRING,
    "namespace": _STRING,
    "customHeaders": _STRING,
    "ignoreNullValues": {"enum": ["true", "false"]},
    "unsafeSsl": {"enum": ["true", "false"]},
    "queryParameters": _STRING,
    "authModes": _STRING,
    "timeout": _STRING,
}, ["serverAddress", "query", "threshold"])

_TRIGGER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "metadata"],
    "properties": {
        "type": {"type": "string", "minLength": 1},
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "metadata": _STRING_MAP,
        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
        "useCachedMetrics": {"type": "boolean"},
        "authenticationRef": _object({"name": _STRING, "kind": {"enum": ["TriggerAuthentication",
                                                                         "ClusterTriggerAuthentication"]}},
                                     ["name"]),
    },
    # The one scaler deploy/ uses gets its metadata checked too.
    "if": {"properties": {"type": {"const": "prometheus"}}},
    "then": {"properties": {"metadata": _PROMETHEUS_METADATA}},
}

SCALED_OBJECT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://kubernetes.io/api/scaledobject-keda-v1alpha1.json",
    **_object({
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": _object({
            "scaleTargetRef": _object({
                "apiVersion": _STRING,
                "kind": _STRING,
                "name": {"type": "string", "minLength": 1},
                "envSourceContainerName": _STRING,
            }, ["name"]),
            "pollingInterval": _NON_NEGATIVE,
            "cooldownPeriod": _NON_NEGATIVE,
            "initialCooldownPeriod": _NON_NEGATIVE,
            "idleReplicaCount": _NON_NEGATIVE,
            "minReplicaCount": _NON_NEGATIVE,
            "maxReplicaCount": _NON_NEGATIVE,
            "fallback": _object({
                "failureThreshold": _NON_NEGATIVE,
                "replicas": _NON_NEGATIVE,
                "behavior": {"enum": ["static", "currentReplicas", "currentReplicasIfHigher",
                                      "currentReplicasIfLower"]},
            }, ["failureThreshold", "replicas"]),
            "advanced": _object({
                "restoreToOriginalReplicaCount": {"type": "boolean"},
                "horizontalPodAutoscalerConfig": _object({
                    "name": _STRING,
                    "behavior": _k8s("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerBehavior"),
                }),
                "scalingModifiers": _object({
                    "formula": _STRING,
                    "target": _STRING,
                    "activationTarget": _STRING,
                    "metricType": {"enum": ["AverageValue", "Value"]},
                }),
            }),
            "triggers": {**_array(_TRIGGER), "minItems": 1},
        }, ["scaleTargetRef", "triggers"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
}

# --- prometheus-operator ServiceMonitor ------------------------------------------------------------

_LABEL_NAME = {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"}
_RELABEL_ACTIONS = ["replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep", "lowercase",
                    "uppercase", "keepequal", "dropequal"]
_RELABEL_CONFIG = _object({
    "sourceLabels": _array(_LABEL_NAME),
    "separator": _STRING,
    "targetLabel": _STRING,
    "regex": _STRING,
    "modulus": {"type": "integer", "minimum": 0},
    "replacement": _STRING,
    "action": {"enum": _RELABEL_ACTIONS + [a.capitalize() for a in _RELABEL_ACTIONS]
               + ["HashMod", "LabelMap", "LabelDrop", "LabelKeep", "KeepEqual", "DropEqual"]},
})
_SECRET_KEY = _k8s("io.k8s.api.core.v1.SecretKeySelector")

_ENDPOINT = _object({
    "port": _STRING,  # the Service port's name
    "targetPort": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, {"type": "string"}]},
    "path": {"type": "string", "pattern": "^/"},
    "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
    "params": {"type": "object", "additionalProperties": _array(_STRING)},
    "interval": _DURATION,
    "scrapeTimeout": _DURATION,
    "honorLabels": {"type": "boolean"},
    "honorTimestamps": {"type": "boolean"},
    "trackTimestampsStaleness": {"type": "boolean"},
    "bearerTokenSecret": _SECRET_KEY,
    "authorization": _object({"type": _STRING, "credentials": _SECRET_KEY}),
    "basicAuth": _object({"username": _SECRET_KEY, "password": _SECRET_KEY}),
    "relabelings": _array(_RELABEL_CONFIG),
    "metricRelabelings": _array(_RELABEL_CONFIG),
    "followRedirects": {"type": "boolean"},
    "enableHttp2": {"type": "boolean"},
    "filterRunning": {"type": "boolean"},
})

SERVICE_MONITOR: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://kubernetes.io/api/servicemonitor-monitoring-v1.json",
    **_object({
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": _object({
            "selector": _k8s("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"),
            "namespaceSelector": _object({"any": {"type": "boolean"}, "matchNames": _array(_STRING)}),
            "endpoints": _array(_ENDPOINT),
            "jobLabel": _STRING,
            "targetLabels": _array(_STRING),
            "podTargetLabels": _array(_STRING),
            "sampleLimit": _NON_NEGATIVE,
            "targetLimit": _NON_NEGATIVE,
            "labelLimit": _NON_NEGATIVE,
            "labelNameLengthLimit": _NON_NEGATIVE,
            "labelValueLengthLimit": _NON_NEGATIVE,
            "keepDroppedTargets": _NON_NEGATIVE,
            "scrapeClass": _STRING,
            "scrapeProtocols": _array({"enum": ["PrometheusProto", "OpenMetricsText0.0.1", "OpenMetricsText1.0.0",
                                                "PrometheusText0.0.4", "PrometheusText1.0.0"]}),
            "attachMetadata": _object({"node": {"type": "boolean"}}),
            "bodySizeLimit": _STRING,
        }, ["selector"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
}

SCHEMAS = {"ScaledObject": SCALED_OBJECT, "ServiceMonitor": SERVICE_MONITOR}
