"""graph.pbtxt: the per-model serving options, in OVMS's EmbeddingsCalculatorOV format."""

from __future__ import annotations

from ovembed.graphs.embeddings import (
    GRAPH_FILENAME,
    GraphOptions,
    parse_graph,
    read_graph,
    render_graph,
    write_graph,
)

__all__ = ["GRAPH_FILENAME", "GraphOptions", "parse_graph", "read_graph", "render_graph", "write_graph"]
