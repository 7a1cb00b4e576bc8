"""graph.pbtxt: the per-model serving options, read and written as OVMS does.

:mod:`ovembed.graphs.pbtxt` parses any graph.pbtxt with protobuf's text_format over OVMS's vendored protos
(:func:`parse_graph_text` -> which calculator + its typed options message) and renders one
(:func:`render_graph_text`); :mod:`ovembed.graphs.embeddings` maps the EmbeddingsCalculatorOV options onto
:class:`GraphOptions`. A task module for another calculator (rerank) follows the same pattern.
"""

from __future__ import annotations

from ovembed.graphs.embeddings import (
    GRAPH_FILENAME,
    GraphOptions,
    parse_graph,
    read_graph,
    render_graph,
    write_graph,
)
from ovembed.graphs.pbtxt import (
    CALCULATORS,
    EMBEDDINGS,
    RERANK,
    Calculator,
    GraphNode,
    parse_graph_text,
    read_graph_file,
    render_graph_text,
)

__all__ = [
    "CALCULATORS",
    "EMBEDDINGS",
    "GRAPH_FILENAME",
    "RERANK",
    "Calculator",
    "GraphNode",
    "GraphOptions",
    "parse_graph",
    "parse_graph_text",
    "read_graph",
    "read_graph_file",
    "render_graph",
    "render_graph_text",
    "write_graph",
]
