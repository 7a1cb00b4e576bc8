"""KServe v2 REST (health and metadata) and OVMS's ``/v1/config`` model status.

Model names may contain slashes, so ``/v2/models/...`` is matched as one path and split here:
``<name>``, ``<name>/ready``, ``<name>/versions/<v>`` and ``<name>/versions/<v>/ready``.
The tensor names and types advertised here are the ones inference accepts (REST and gRPC,
:mod:`ovembed.serving.wire.kserve_infer`): one BYTES input of texts, one FP32 output.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ovembed import __version__
from ovembed.config import Task
from ovembed.serving.api import ModelInfo, ModelState, ModelStatus

# Every embeddings model has the same signature: texts in, one vector per text out.
INPUT_NAME = "input"
INPUT_DATATYPE = "BYTES"
OUTPUT_NAME = "embedding"
OUTPUT_DATATYPE = "FP32"
PLATFORM = "OpenVINO"
# ``GET /v1/config`` key (next to the model names) that reports an unreadable config.json.
CONFIG_ERROR_KEY = "config_error"

_VERSIONED = re.compile(r"(?P<name>.+)/versions/(?P<version>[^/]+)")
_READY_SUFFIX = "/ready"


@dataclass(frozen=True)
class ModelPath:
    name: str
    version: str | None  # None: the default (only) version
    action: Literal["metadata", "ready"]


def parse_model_path(path: str, is_model: Callable[[str], bool]) -> ModelPath:
    """Split the part of the URL after ``/v2/models/``.

    A configured model whose name happens to end like a suffix (``x/ready``) wins over the
    suffix reading, so every configured name stays reachable.
    """
    rest: str = path
    action: Literal["metadata", "ready"] = "metadata"
    if not is_model(rest) and rest.endswith(_READY_SUFFIX):
        rest, action = rest[: -len(_READY_SUFFIX)], "ready"
    match = None if is_model(rest) else _VERSIONED.fullmatch(rest)
    if match is not None:
        return ModelPath(match["name"], match["version"], action)
    return ModelPath(rest, None, action)



def server_metadata() -> dict[str, Any]:
    return {"name": "ovembed", "version": __version__, "extensions": []}


def model_metadata(info: ModelInfo, status: ModelStatus) -> dict[str, Any]:
    """A rerank or sparse model lists no tensors: it is served by its own endpoints, not by infer."""
    embeddings = info.task is Task.EMBEDDINGS
    return {
        "name": info.name,
        "versions": [str(status.version)],
        "platform": PLATFORM,
        "inputs": [{"name": INPUT_NAME, "datatype": INPUT_DATATYPE, "shape": [-1]}] if embeddings else [],
        "outputs": [{"name": OUTPUT_NAME, "datatype": OUTPUT_DATATYPE, "shape": [-1, info.dimensions]}]
        if embeddings else [],
    }


def model_config(info: ModelInfo) -> dict[str, Any]:
    """Triton's ModelConfig (``get_model_config``) for the fields that apply.

    ``max_batch_size`` 0 is Triton's way to say the dims include the batch dimension, as in
    :func:`model_metadata`: a ``[-1]`` string tensor in, ``[-1, dimensions]`` FP32 out. Rerank
    models, which infer does not serve, list no tensors.
    """
    embeddings = info.task is Task.EMBEDDINGS
    return {
        "name": info.name,
        "platform": PLATFORM,
        "backend": "openvino",
        "max_batch_size": 0,
        "input": [{"name": INPUT_NAME, "data_type": "TYPE_STRING", "dims": [-1]}] if embeddings else [],
        "output": [{"name": OUTPUT_NAME, "data_type": "TYPE_FP32", "dims": [-1, info.dimensions]}]
        if embeddings else [],
    }


def _version_status(status: ModelStatus) -> dict[str, Any]:
    """A serving model may carry an error too: its last reload failed (the old version serves)."""
    failed = status.state is ModelState.UNAVAILABLE
    message = (status.error or "UNKNOWN") if failed else (status.error or status.detail or "OK")
    return {
        "version": str(status.version),
        "state": status.state.value,
        "status": {"error_code": "UNKNOWN" if failed else "OK", "error_message": message},
    }


def not_ready_body(statuses: Iterable[tuple[str, ModelStatus]]) -> dict[str, Any]:
    """``/v2/health/ready``'s 503 body: which models are not AVAILABLE, and why."""
    return {"ready": False, "models": [
        {"name": name, "state": st.state.value, "reason": st.reason} for name, st in statuses]}


def config_status(statuses: Iterable[tuple[str, ModelStatus]]) -> dict[str, Any]:
    """OVMS's ``GET /v1/config`` body."""
    return {name: {"model_version_status": [_version_status(st)]} for name, st in statuses}
