"""RerankCalculatorOV graphs: what ovembed writes, what OVMS's own graphs say, and bad options."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovembed.errors import ConfigError
from ovembed.graphs import (
    GraphOptions,
    RerankGraphOptions,
    read_model_graph,
    render_rerank_graph,
    write_rerank_graph,
)

# OVMS's src/test/rerank/with_params/graph_ov.pbtxt (license header trimmed).
OVMS_WITH_PARAMS = """
input_stream: "REQUEST_PAYLOAD:input"
output_stream: "RESPONSE_PAYLOAD:output"

node {
    name: "rerankNode1"
    input_side_packet: "RERANK_NODE_RESOURCES:rerank_servable"
    calculator: "RerankCalculatorOV"
    input_stream: "REQUEST_PAYLOAD:input"
    output_stream: "RESPONSE_PAYLOAD:output"
    node_options: {
      [type.googleapis.com / mediapipe.RerankCalculatorOVOptions]: {
        models_path: "/ovms/src/test/llm_testing/BAAI/bge-reranker-base/ov"
        max_allowed_chunks: 4
        max_position_embeddings: 12
      }
    }
}
"""

# What OVMS's export_model.py rerank_ov writes.
OVMS_EXPORT = """# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO
input_stream: "REQUEST_PAYLOAD:input"
output_stream: "RESPONSE_PAYLOAD:output"
node {
  name: "RerankExecutor"
  input_side_packet: "RERANK_NODE_RESOURCES:rerank_servable"
  calculator: "RerankCalculatorOV"
  input_stream: "REQUEST_PAYLOAD:input"
  output_stream: "RESPONSE_PAYLOAD:output"
  node_options: {
    [type.googleapis.com / mediapipe.RerankCalculatorOVOptions]: {
      models_path: "./",
      plugin_config: '{"NUM_STREAMS": "1" }',
      target_device: "CPU"
    }
  }
}
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "graph.pbtxt").write_text(text)
    return tmp_path


def test_round_trip(tmp_path: Path) -> None:
    options = RerankGraphOptions(models_path="./", max_allowed_chunks=8, max_position_embeddings=256,
                                 target_device="GPU", plugin_config={"NUM_STREAMS": "2", "CACHE_DIR": "/c'x"})
    write_rerank_graph(tmp_path, options)
    text = (tmp_path / "graph.pbtxt").read_text()
    assert text.startswith("# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO\n") and 'calculator: "RerankCalculatorOV"' in text
    assert "max_allowed_chunks: 8" in text
    assert read_model_graph(tmp_path) == options


def test_defaults_are_written_explicitly() -> None:
    text = render_rerank_graph(RerankGraphOptions())
    assert "max_allowed_chunks: 10000" in text and "max_position_embeddings" not in text


def test_reads_ovms_graphs(tmp_path: Path) -> None:
    options = read_model_graph(_write(tmp_path, OVMS_WITH_PARAMS))
    assert options == RerankGraphOptions(models_path="/ovms/src/test/llm_testing/BAAI/bge-reranker-base/ov",
                                         max_allowed_chunks=4, max_position_embeddings=12)
    options = read_model_graph(_write(tmp_path, OVMS_EXPORT))
    assert options == RerankGraphOptions(plugin_config={"NUM_STREAMS": "1"})


def test_embeddings_graphs_still_read_as_embeddings(tmp_path: Path) -> None:
    text = OVMS_EXPORT.replace("Rerank", "Embeddings").replace("RERANK", "EMBEDDINGS").replace("rerank_", "embeddings_")
    assert isinstance(read_model_graph(_write(tmp_path, text)), GraphOptions)


@pytest.mark.parametrize(("option", "message"), [
    ("max_allowed_chunks: 0", "max_allowed_chunks must be at least 1, got 0"),
    ("max_allowed_chunks: 4 max_position_embeddings: 12 max_position_embeddings: 0",
     "should not have multiple \"max_position_embeddings\" fields"),
    ("pooling: CLS", "pooling"),
])
def test_bad_options(tmp_path: Path, option: str, message: str) -> None:
    text = OVMS_WITH_PARAMS.replace("max_allowed_chunks: 4", option)
    if "max_position_embeddings: 0" not in option:
        text = text.replace("max_position_embeddings: 12", "")
    with pytest.raises(ConfigError, match=message):
        read_model_graph(_write(tmp_path, text))
