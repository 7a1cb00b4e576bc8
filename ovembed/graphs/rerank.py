"""The RerankCalculatorOV node of a graph.pbtxt, as the :class:`RerankGraphOptions` the rest of ovembed uses.

The options are OVMS's ``RerankCalculatorOVOptions`` (src/rerank/rerank_calculator_ov.proto):
``models_path`` (required), ``max_allowed_chunks`` (default 10000), ``max_position_embeddings``
(optional: overrides the model's window), ``target_device``, ``plugin_config`` (a JSON string).
:mod:`ovembed.graphs.pbtxt` does the text format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ovembed.errors import ConfigError
from ovembed.graphs.embeddings import plugin_config_from_text
from ovembed.graphs.pbtxt import RERANK, Calculator, GraphNode, render_graph_text
from ovembed.graphs.proto.rerank_calculator_ov_pb2 import RerankCalculatorOVOptions

CALCULATOR = RERANK.name
DEFAULT_MAX_ALLOWED_CHUNKS = int(RerankCalculatorOVOptions().max_allowed_chunks)  # the proto's default


@dataclass(frozen=True)
class RerankGraphOptions:
    """Serving options of one rerank model (RerankCalculatorOVOptions)."""

    calculator: ClassVar[Calculator] = RERANK  # the graph node these options belong to

    models_path: str = "./"
    max_allowed_chunks: int = DEFAULT_MAX_ALLOWED_CHUNKS
    max_position_embeddings: int | None = None
    target_device: str = "CPU"
    plugin_config: dict[str, Any] = field(default_factory=dict)

    def model_dir(self, graph_dir: Path) -> Path:
        path = Path(self.models_path)
        return path if path.is_absolute() else (graph_dir / path).resolve()


def to_message(options: RerankGraphOptions) -> RerankCalculatorOVOptions:
    message = RerankCalculatorOVOptions(models_path=options.models_path, target_device=options.target_device,
                                        max_allowed_chunks=options.max_allowed_chunks)
    if options.max_position_embeddings is not None:
        message.max_position_embeddings = options.max_position_embeddings
    if options.plugin_config:
        message.plugin_config = json.dumps(options.plugin_config, ensure_ascii=False)
    return message


def render_rerank_graph(options: RerankGraphOptions) -> str:
    """graph.pbtxt text in the layout OVMS's export_model.py rerank_ov writes, header included."""
    return render_graph_text(RERANK, to_message(options))


def rerank_options(node: GraphNode) -> RerankGraphOptions:
    """The options of a parsed RerankCalculatorOV node; unset fields take OVMS's defaults."""
    if node.calculator is not RERANK:
        raise ConfigError(f"graph.pbtxt has no {CALCULATOR} node (it has a {node.calculator.name} node)")
    opts: Any = node.options
    chunks = int(opts.max_allowed_chunks)
    if chunks < 1:
        raise ConfigError(f"graph.pbtxt: max_allowed_chunks must be at least 1, got {chunks}")
    positions = int(opts.max_position_embeddings) if opts.HasField("max_position_embeddings") else None
    if positions is not None and positions < 1:
        raise ConfigError(f"graph.pbtxt: max_position_embeddings must be at least 1, got {positions}")
    return RerankGraphOptions(
        models_path=str(opts.models_path),
        max_allowed_chunks=chunks,
        max_position_embeddings=positions,
        target_device=str(opts.target_device) if opts.HasField("target_device") else "CPU",
        plugin_config=plugin_config_from_text(str(opts.plugin_config)),
    )


def write_rerank_graph(model_dir: Path, options: RerankGraphOptions) -> Path:
    """Write a RerankCalculatorOV graph.pbtxt atomically."""
    from ovembed.graphs.embeddings import GRAPH_FILENAME
    from ovembed.repository import atomic_write_text

    path = Path(model_dir) / GRAPH_FILENAME
    atomic_write_text(path, render_rerank_graph(options))
    return path
