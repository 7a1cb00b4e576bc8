"""The EmbeddingsCalculatorOV node of a graph.pbtxt, as the :class:`GraphOptions` the rest of ovembed uses.

This module is the one place that maps OVMS's ``EmbeddingsCalculatorOVOptions`` (current and 2025.2 schemas)
onto ovembed's serving options; :mod:`ovembed.graphs.pbtxt` does the text format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ovembed.config import Pooling
from ovembed.errors import ConfigError
from ovembed.graphs.pbtxt import (
    EMBEDDINGS,
    LEGACY_SCHEMA,
    Calculator,
    parse_graph_text,
    read_graph_text,
    render_graph_text,
)
from ovembed.graphs.proto.embeddings_calculator_ov_pb2 import EmbeddingsCalculatorOVOptions
from ovembed.layout import GRAPH_FILENAME

CALCULATOR = EMBEDDINGS.name
_POOLING_TO_PROTO = {
    Pooling.CLS: EmbeddingsCalculatorOVOptions.CLS,
    Pooling.MEAN: EmbeddingsCalculatorOVOptions.MEAN,
    Pooling.LAST: EmbeddingsCalculatorOVOptions.LAST,
}
_POOLING_FROM_PROTO = {number: pooling for pooling, number in _POOLING_TO_PROTO.items()}


@dataclass(frozen=True)
class GraphOptions:
    """Serving options of one embeddings model (EmbeddingsCalculatorOVOptions)."""

    calculator: ClassVar[Calculator] = EMBEDDINGS  # the graph node these options belong to

    models_path: str = "./"
    normalize_embeddings: bool = True
    # None: the graph does not say; serving then detects it as OVMS does (ovembed.serving.tasks.pooling).
    pooling: Pooling | None = None
    truncate: bool = False
    target_device: str = "CPU"
    plugin_config: dict[str, Any] = field(default_factory=dict)

    def model_dir(self, graph_dir: Path) -> Path:
        """The folder holding the IR files, resolved against the graph's folder."""
        path = Path(self.models_path)
        return path if path.is_absolute() else (graph_dir / path).resolve()


def to_message(options: GraphOptions) -> EmbeddingsCalculatorOVOptions:
    """The options as OVMS's proto message (fields OVMS's export_model.py leaves out stay unset)."""
    message = EmbeddingsCalculatorOVOptions(models_path=options.models_path,
                                            normalize_embeddings=options.normalize_embeddings,
                                            target_device=options.target_device)
    if options.pooling is not None:
        message.pooling = _POOLING_TO_PROTO[Pooling(options.pooling)]
    if options.truncate:
        message.truncate = True
    if options.plugin_config:
        message.plugin_config = json.dumps(options.plugin_config, ensure_ascii=False)
    return message


def plugin_config_from_text(text: str) -> dict[str, Any]:
    """The ``plugin_config`` option (a JSON object in a string) as a dict; {} when empty."""
    text = text.strip()
    if not text:
        return {}
    try:
        plugin = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"graph.pbtxt: plugin_config is not valid JSON: {exc.msg}") from None
    if not isinstance(plugin, dict):
        raise ConfigError("graph.pbtxt: plugin_config must be a JSON object")
    return plugin


def render_graph(options: GraphOptions) -> str:
    """graph.pbtxt text in the layout OVMS's export_model.py writes, header included."""
    return render_graph_text(EMBEDDINGS, to_message(options))


def parse_graph(text: str) -> GraphOptions:
    """Read the options of the EmbeddingsCalculatorOV node; missing fields take OVMS's defaults.

    An option the proto does not declare is a ``ConfigError`` naming it (OVMS refuses the graph too).
    OVMS 2025.2's ``mean_pooling: true`` reads as MEAN pooling (``false`` as CLS, what 2025.2 served).
    """
    node = parse_graph_text(text)
    if node.calculator is not EMBEDDINGS:
        raise ConfigError(f"graph.pbtxt has no {CALCULATOR} node (it has a {node.calculator.name} node)")
    opts: Any = node.options
    if node.schema == LEGACY_SCHEMA:
        pooling: Pooling | None = Pooling.MEAN if opts.mean_pooling else Pooling.CLS
        truncate = False
    else:
        pooling = _POOLING_FROM_PROTO[opts.pooling] if opts.HasField("pooling") else None
        truncate = bool(opts.truncate)
    return GraphOptions(
        models_path=str(opts.models_path),
        normalize_embeddings=bool(opts.normalize_embeddings),
        pooling=pooling,
        truncate=truncate,
        target_device=str(opts.target_device) if opts.HasField("target_device") else "CPU",
        plugin_config=plugin_config_from_text(str(opts.plugin_config)),
    )


def read_graph(model_dir: Path, graph_file: str = GRAPH_FILENAME) -> GraphOptions:
    """The options of ``model_dir/graph_file`` (config.json's ``graph_path``; graph.pbtxt by default)."""
    path = Path(model_dir) / graph_file
    text = read_graph_text(path)
    try:
        return parse_graph(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None


def write_graph(model_dir: Path, options: GraphOptions) -> Path:
    """Write graph.pbtxt atomically (temp file + rename)."""
    from ovembed.repository import atomic_write_text

    path = Path(model_dir) / GRAPH_FILENAME
    atomic_write_text(path, render_graph(options))
    return path
