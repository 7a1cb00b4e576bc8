"""graph.pbtxt: the per-model serving options, read and written as OVMS does.

:mod:`ovembed.graphs.pbtxt` parses any graph.pbtxt with protobuf's text_format over OVMS's vendored protos
(:func:`parse_graph_text` -> which calculator + its typed options message) and renders one
(:func:`render_graph_text`); :mod:`ovembed.graphs.embeddings` maps the EmbeddingsCalculatorOV options onto
:class:`GraphOptions`, :mod:`ovembed.graphs.rerank` the RerankCalculatorOV options onto
:class:`RerankGraphOptions`, :mod:`ovembed.graphs.sparse` ovembed's own SparseEmbeddingsCalculatorOV options
onto :class:`SparseGraphOptions`; :func:`read_model_graph` reads any of them.
"""

from __future__ import annotations

from pathlib import Path

from ovembed.errors import ConfigError
from ovembed.graphs.bge_m3 import BgeM3GraphOptions, bge_m3_options, write_bge_m3_graph
from ovembed.graphs.classify import ClassifyGraphOptions, classify_options
from ovembed.graphs.embeddings import (
    GRAPH_FILENAME,
    GraphOptions,
    parse_graph,
    read_graph,
    render_graph,
    write_graph,
)
from ovembed.graphs.pbtxt import (
    BGE_M3,
    CALCULATORS,
    CLASSIFY,
    EMBEDDINGS,
    RERANK,
    SPARSE,
    TOKEN_EMBED,
    Calculator,
    GraphNode,
    parse_graph_text,
    read_graph_file,
    read_graph_text,
    render_graph_text,
)
from ovembed.graphs.rerank import RerankGraphOptions, render_rerank_graph, rerank_options, write_rerank_graph
from ovembed.graphs.sparse import SparseGraphOptions, render_sparse_graph, sparse_options, write_sparse_graph
from ovembed.graphs.token_embed import TokenGraphOptions, token_options, write_token_graph

# The options of any calculator ovembed serves (what read_model_graph returns).
AnyGraphOptions = GraphOptions | RerankGraphOptions | SparseGraphOptions | TokenGraphOptions | ClassifyGraphOptions

__all__ = [
    "BGE_M3",
    "CALCULATORS",
    "CLASSIFY",
    "EMBEDDINGS",
    "GRAPH_FILENAME",
    "RERANK",
    "SPARSE",
    "TOKEN_EMBED",
    "AnyGraphOptions",
    "BgeM3GraphOptions",
    "Calculator",
    "ClassifyGraphOptions",
    "GraphNode",
    "GraphOptions",
    "RerankGraphOptions",
    "SparseGraphOptions",
    "TokenGraphOptions",
    "parse_graph",
    "parse_graph_text",
    "read_graph",
    "read_graph_file",
    "read_model_graph",
    "render_graph",
    "render_graph_text",
    "render_rerank_graph",
    "render_sparse_graph",
    "write_bge_m3_graph",
    "write_graph",
    "write_rerank_graph",
    "write_sparse_graph",
    "write_token_graph",
]


def read_model_graph(model_dir: Path, graph_file: str = GRAPH_FILENAME
                     ) -> AnyGraphOptions:
    """The options of whichever calculator the folder's graph runs (embeddings, rerank or sparse)."""
    path = Path(model_dir) / graph_file
    text = read_graph_text(path)
    try:
        node = parse_graph_text(text)
        if node.calculator is RERANK:
            return rerank_options(node)
        if node.calculator is SPARSE:
            return sparse_options(node)
        if node.calculator is TOKEN_EMBED:
            return token_options(node)
        if node.calculator is CLASSIFY:
            return classify_options(node)
        if node.calculator is BGE_M3:
            return bge_m3_options(node)
        return parse_graph(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None
