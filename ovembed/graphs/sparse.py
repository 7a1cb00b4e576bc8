"""The SparseEmbeddingsCalculatorOV node of a graph.pbtxt, as the :class:`SparseGraphOptions` the rest of ovembed uses.

OVMS has no sparse embeddings calculator; this one is ovembed's (``graphs/proto/sparse/``), written in
OVMS's proto style so a sparse model's graph.pbtxt is the same MediaPipe text format as its embeddings
and rerank graphs. Options: ``models_path`` (required), ``target_device``, ``plugin_config`` (a JSON
string), ``truncate`` (default for requests), and the default pruning ``top_k`` (0: keep all) and
``threshold`` (0: every non-zero weight, what TEI's ``/embed_sparse`` returns). OVMS refuses such a graph
(unknown calculator); ovembed reads OVMS's embeddings and rerank graphs unchanged.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ovembed.errors import ConfigError
from ovembed.graphs.embeddings import plugin_config_from_text
from ovembed.graphs.pbtxt import SPARSE, Calculator, GraphNode, render_graph_text
from ovembed.graphs.proto.sparse_embeddings_calculator_ov_pb2 import SparseEmbeddingsCalculatorOVOptions

CALCULATOR = SPARSE.name


@dataclass(frozen=True)
class SparseGraphOptions:
    """Serving options of one sparse model (SparseEmbeddingsCalculatorOVOptions)."""

    calculator: ClassVar[Calculator] = SPARSE  # the graph node these options belong to

    models_path: str = "./"
    target_device: str = "CPU"
    plugin_config: dict[str, Any] = field(default_factory=dict)
    truncate: bool = False
    top_k: int | None = None  # None: keep every weight above the threshold
    threshold: float = 0.0

    def model_dir(self, graph_dir: Path) -> Path:
        path = Path(self.models_path)
        return path if path.is_absolute() else (graph_dir / path).resolve()


def to_message(options: SparseGraphOptions) -> SparseEmbeddingsCalculatorOVOptions:
    message = SparseEmbeddingsCalculatorOVOptions(models_path=options.models_path,
                                                  target_device=options.target_device)
    if options.truncate:
        message.truncate = True
    if options.top_k is not None:
        message.top_k = options.top_k
    if options.threshold:
        message.threshold = options.threshold
    if options.plugin_config:
        message.plugin_config = json.dumps(options.plugin_config, ensure_ascii=False)
    return message


def render_sparse_graph(options: SparseGraphOptions) -> str:
    return render_graph_text(SPARSE, to_message(options))


def sparse_options(node: GraphNode) -> SparseGraphOptions:
    """The options of a parsed SparseEmbeddingsCalculatorOV node; unset fields take the proto's defaults."""
    if node.calculator is not SPARSE:
        raise ConfigError(f"graph.pbtxt has no {CALCULATOR} node (it has a {node.calculator.name} node)")
    opts: Any = node.options
    threshold = float(opts.threshold)
    if not math.isfinite(threshold) or threshold < 0:
        raise ConfigError(f"graph.pbtxt: threshold must be a number >= 0, got {threshold}")
    top_k = int(opts.top_k)
    return SparseGraphOptions(
        models_path=str(opts.models_path),
        target_device=str(opts.target_device) if opts.HasField("target_device") else "CPU",
        plugin_config=plugin_config_from_text(str(opts.plugin_config)),
        truncate=bool(opts.truncate),
        top_k=top_k if top_k > 0 else None,
        threshold=threshold,
    )


def write_sparse_graph(model_dir: Path, options: SparseGraphOptions) -> Path:
    from ovembed.graphs.embeddings import GRAPH_FILENAME
    from ovembed.repository import atomic_write_text

    path = Path(model_dir) / GRAPH_FILENAME
    atomic_write_text(path, render_sparse_graph(options))
    return path
