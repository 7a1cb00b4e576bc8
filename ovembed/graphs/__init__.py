"""graph.pbtxt: the per-model serving options, in OVMS's calculator formats.

EmbeddingsCalculatorOV (:mod:`ovembed.graphs.embeddings`) and RerankCalculatorOV
(:mod:`ovembed.graphs.rerank`); :func:`read_model_graph` reads either.
"""

from __future__ import annotations

from pathlib import Path

from ovembed.errors import ConfigError
from ovembed.graphs.embeddings import (
    GRAPH_FILENAME,
    GraphOptions,
    parse_graph,
    read_graph,
    render_graph,
    write_graph,
)
from ovembed.graphs.rerank import RerankGraphOptions, find_rerank_node, render_rerank_graph, rerank_options_from

__all__ = ["GRAPH_FILENAME", "GraphOptions", "RerankGraphOptions", "parse_graph", "read_graph", "read_model_graph",
           "render_graph", "render_rerank_graph", "write_graph", "write_rerank_graph"]


def read_model_graph(model_dir: Path) -> GraphOptions | RerankGraphOptions:
    """The options of whichever calculator the folder's graph.pbtxt runs."""
    path = Path(model_dir) / GRAPH_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path} not found") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        node = find_rerank_node(text)
        return rerank_options_from(node) if node is not None else parse_graph(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None


def write_rerank_graph(model_dir: Path, options: RerankGraphOptions) -> Path:
    """Write a RerankCalculatorOV graph.pbtxt atomically."""
    from ovembed.repository import atomic_write_text

    path = Path(model_dir) / GRAPH_FILENAME
    atomic_write_text(path, render_rerank_graph(options))
    return path
