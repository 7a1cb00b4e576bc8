"""Offline validation of rendered Kubernetes objects, shared by the manifest and Helm chart tests.

Core kinds go to kubernetes-validate (the Kubernetes OpenAPI schemas, strict: unknown fields fail);
the custom resources (KServe, KEDA, prometheus-operator) to the JSON schemas in kserve_schema.py and
crd_schemas.py, whose embedded Kubernetes types resolve against the same core definitions.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from typing import Any

import jsonschema
import kubernetes_validate
import referencing

from tests.deploy.crd_schemas import SCHEMAS as _CRD_SCHEMAS
from tests.deploy.kserve_schema import SCHEMAS as _KSERVE_SCHEMAS

CUSTOM_SCHEMAS: dict[str, dict[str, Any]] = {**_KSERVE_SCHEMAS, **_CRD_SCHEMAS}
# The oldest version the manifests target (preStop `sleep` is on by default from 1.30) and the
# newest one kubernetes-validate knows.
K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


@functools.cache
def _core_definitions() -> dict[str, Any]:
    version = kubernetes_validate.latest_version()
    defs_file = (importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
                 / f"v{version}-local-strict" / "_definitions.json")
    return json.loads(defs_file.read_text())  # type: ignore[no-any-return]


def validate_custom(doc: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless ``doc`` matches its kind's schema."""
    defs = _core_definitions()
    schema = CUSTOM_SCHEMAS[doc["kind"]]
    registry = referencing.Registry().with_resources([
        (defs["$id"], referencing.Resource.from_contents(defs)),
        (schema["$id"], referencing.Resource.from_contents(schema)),
    ])
    jsonschema.Draft202012Validator(schema, registry=registry).validate(doc)


def validate(doc: dict[str, Any], version: str) -> None:
    """Validate any object deploy/ produces: custom kinds by schema, core kinds for ``version``."""
    if doc["kind"] in CUSTOM_SCHEMAS:
        validate_custom(doc)
    else:
        kubernetes_validate.validate(doc, version, strict=True)
