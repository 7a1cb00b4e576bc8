"""JSON schemas for the two KServe resources in deploy/kserve/, which the core Kubernetes schemas
do not cover.

Written from KServe's public CRD fields (serving.kserve.io ServingRuntime v1alpha1,
InferenceService v1beta1: pkg/apis/serving/*/servingruntime_types.go, predictor.go,
component.go, model.go). Unknown keys are rejected at the levels described here, so a typo fails;
pod-level Kubernetes types (Container, Volume, ResourceRequirements...) are checked against the
core definitions that kubernetes-validate ships (``/api/_definitions.json``).
"""

from __future__ import annotations

from typing import Any

_DEFS = "/api/_definitions.json#/$defs/"


def _k8s(name: str) -> dict[str, str]:
    return {"$ref": _DEFS + name}


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_PROTOCOL = {"enum": ["v1", "v2", "grpc-v1", "grpc-v2"]}
_METADATA = _k8s("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")

# Fields of a Kubernetes PodSpec that KServe inlines in ServingRuntimeSpec / PredictorSpec.
_POD_FIELDS: dict[str, Any] = {
    "containers": _array(_k8s("io.k8s.api.core.v1.Container")),
    "volumes": _array(_k8s("io.k8s.api.core.v1.Volume")),
    "nodeSelector": _STRING_MAP,
    "affinity": _k8s("io.k8s.api.core.v1.Affinity"),
    "tolerations": _array(_k8s("io.k8s.api.core.v1.Toleration")),
    "imagePullSecrets": _array(_k8s("io.k8s.api.core.v1.LocalObjectReference")),
    "serviceAccountName": {"type": "string"},
    "securityContext": _k8s("io.k8s.api.core.v1.PodSecurityContext"),
    "priorityClassName": {"type": "string"},
    "hostIPC": {"type": "boolean"},
    "schedulerName": {"type": "string"},
    "initContainers": _array(_k8s("io.k8s.api.core.v1.Container")),
    "terminationGracePeriodSeconds": {"type": "integer"},
    "runtimeClassName": {"type": "string"},
    "topologySpreadConstraints": _array(_k8s("io.k8s.api.core.v1.TopologySpreadConstraint")),
}

SERVING_RUNTIME: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://kubernetes.io/api/servingruntime-serving-v1alpha1.json",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1alpha1"},
        "kind": {"enum": ["ServingRuntime", "ClusterServingRuntime"]},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["containers", "supportedModelFormats"],
            "additionalProperties": False,
            "properties": {
                **_POD_FIELDS,
                "containers": {**_array(_k8s("io.k8s.api.core.v1.Container")), "minItems": 1},
                "supportedModelFormats": {
                    **_array({
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "version": {"type": "string"},
                            "autoSelect": {"type": "boolean"},
                            "priority": {"type": "integer", "minimum": 1},
                        },
                    }),
                    "minItems": 1,
                },
                "protocolVersions": {**_array(_PROTOCOL), "uniqueItems": True},
                "multiModel": {"type": "boolean"},
                "disabled": {"type": "boolean"},
                "annotations": _STRING_MAP,
                "labels": _STRING_MAP,
                "replicas": {"type": "integer", "minimum": 0},
                "grpcEndpoint": {"type": "string"},
                "grpcDataEndpoint": {"type": "string"},
                "httpDataEndpoint": {"type": "string"},
                "storageHelper": {"type": "object", "properties": {"disabled": {"type": "boolean"}},
                                  "additionalProperties": False},
                "builtInAdapter": {"type": "object"},
                "workerSpec": {"type": "object"},
            },
        },
    },
}

# ModelSpec = a Container (inlined) plus the model's format, runtime, protocol and storage.
_CONTAINER_FIELDS = ["args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle",
                     "livenessProbe", "name", "ports", "readinessProbe", "resources", "securityContext",
                     "startupProbe", "volumeMounts", "workingDir"]
_MODEL: dict[str, Any] = {
    "type": "object",
    "required": ["modelFormat"],
    "additionalProperties": False,
    "properties": {
        **{f: {"$ref": _DEFS + f"io.k8s.api.core.v1.Container/properties/{f}"} for f in _CONTAINER_FIELDS},
        "modelFormat": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {"name": {"type": "string", "minLength": 1}, "version": {"type": "string"}},
        },
        "runtime": {"type": "string"},
        "protocolVersion": _PROTOCOL,
        "storageUri": {"type": "string", "pattern": r"^(gs|s3|pvc|hdfs|webhdfs|oci|hf|https?)://.+"},
        "storage": {"type": "object"},
        "runtimeVersion": {"type": "string"},
    },
}

INFERENCE_SERVICE: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://kubernetes.io/api/inferenceservice-serving-v1beta1.json",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1beta1"},
        "kind": {"const": "InferenceService"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["predictor"],
            "additionalProperties": False,
            "properties": {
                "predictor": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        **_POD_FIELDS,
                        "model": _MODEL,
                        "minReplicas": {"type": "integer", "minimum": 0},
                        "maxReplicas": {"type": "integer", "minimum": 0},
                        "scaleMetric": {"enum": ["cpu", "memory", "concurrency", "rps"]},
                        "scaleMetricType": {"enum": ["Utilization", "AverageValue", "Value"]},
                        "scaleTarget": {"type": "integer", "minimum": 1},
                        "containerConcurrency": {"type": "integer", "minimum": 0},
                        "timeout": {"type": "integer", "minimum": 0},
                        "canaryTrafficPercent": {"type": "integer", "minimum": 0, "maximum": 100},
                        "labels": _STRING_MAP,
                        "annotations": _STRING_MAP,
                        "logger": {"type": "object"},
                        "batcher": {"type": "object"},
                        "autoScaling": {"type": "object"},
                        "deploymentStrategy": {"type": "object"},
                    },
                },
                "transformer": {"type": "object"},
                "explainer": {"type": "object"},
            },
        },
    },
}

SCHEMAS = {"ServingRuntime": SERVING_RUNTIME, "ClusterServingRuntime": SERVING_RUNTIME,
           "InferenceService": INFERENCE_SERVICE}
