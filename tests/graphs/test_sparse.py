"""graph.pbtxt for sparse models: ovembed's SparseEmbeddingsCalculatorOV options render and read back,
take the proto's defaults, refuse bad values and unknown options, and OVMS's graphs still read as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovembed.errors import ConfigError
from ovembed.graphs import (
    GraphOptions,
    RerankGraphOptions,
    SparseGraphOptions,
    parse_graph_text,
    read_model_graph,
    render_graph,
    render_rerank_graph,
    render_sparse_graph,
    write_sparse_graph,
)
from ovembed.graphs.pbtxt import SPARSE
from ovembed.graphs.sparse import sparse_options


def test_round_trip(tmp_path: Path) -> None:
    options = SparseGraphOptions(models_path="./", target_device="GPU", plugin_config={"NUM_STREAMS": "2"},
                                 truncate=True, top_k=128, threshold=0.25)
    text = render_sparse_graph(options)
    assert "SparseEmbeddingsCalculatorOV" in text
    assert "type.googleapis.com/mediapipe.SparseEmbeddingsCalculatorOVOptions" in text
    assert text.startswith("# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO\n")
    write_sparse_graph(tmp_path, options)
    assert read_model_graph(tmp_path) == options


def test_defaults_keep_every_nonzero_weight() -> None:
    text = render_sparse_graph(SparseGraphOptions())
    assert "top_k" not in text and "threshold" not in text and "truncate" not in text
    node = parse_graph_text(text)
    assert node.calculator is SPARSE
    parsed = sparse_options(node)
    assert parsed.top_k is None and parsed.threshold == 0.0 and parsed.truncate is False
    assert parsed.target_device == "CPU" and parsed.plugin_config == {}


def _graph(options: str) -> str:
    return ('input_stream: "REQUEST_PAYLOAD:input"\noutput_stream: "RESPONSE_PAYLOAD:output"\n'
            'node {\n  name: "SparseEmbeddingsExecutor"\n  calculator: "SparseEmbeddingsCalculatorOV"\n'
            '  input_side_packet: "SPARSE_EMBEDDINGS_NODE_RESOURCES:sparse_embeddings_servable"\n'
            '  input_stream: "REQUEST_PAYLOAD:input"\n  output_stream: "RESPONSE_PAYLOAD:output"\n'
            '  node_options: {\n    [type.googleapis.com/mediapipe.SparseEmbeddingsCalculatorOVOptions]: {\n'
            f'      {options}\n    }}\n  }}\n}}\n')


def test_bad_values_and_unknown_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="threshold must be a number >= 0"):
        sparse_options(parse_graph_text(_graph('models_path: "./" threshold: -1')))
    with pytest.raises(ConfigError, match="pooling"):
        parse_graph_text(_graph('models_path: "./" pooling: MEAN'))
    with pytest.raises(ConfigError, match="models_path"):
        parse_graph_text(_graph('top_k: 3'))


def test_ovms_graphs_read_as_before(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "graph.pbtxt").write_text(render_graph(GraphOptions()))
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "graph.pbtxt").write_text(render_rerank_graph(RerankGraphOptions()))
    assert isinstance(read_model_graph(tmp_path / "e"), GraphOptions)
    assert isinstance(read_model_graph(tmp_path / "r"), RerankGraphOptions)
