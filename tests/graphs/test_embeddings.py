from __future__ import annotations

from pathlib import Path

import pytest

from ovembed.config import Pooling
from ovembed.errors import ConfigError
from ovembed.graphs import GraphOptions, parse_graph, read_graph, render_graph, write_graph

ISSUE_GRAPH = """input_stream: "REQUEST_PAYLOAD:input"
output_stream: "RESPONSE_PAYLOAD:output"
node {
  name: "EmbeddingsExecutor"
  input_side_packet: "EMBEDDINGS_NODE_RESOURCES:embeddings_servable"
  calculator: "EmbeddingsCalculatorOV"
  input_stream: "REQUEST_PAYLOAD:input"
  output_stream: "RESPONSE_PAYLOAD:output"
  node_options: {
    [type.googleapis.com / mediapipe.EmbeddingsCalculatorOVOptions]: {
      models_path: "./",
      normalize_embeddings: true,
      pooling: CLS,
      truncate: false,
      target_device: "CPU",
      plugin_config: '{"NUM_STREAMS": "1"}'
    }
  }
}
"""

# As OVMS's export_model.py writes it: leading blank line, no pooling/truncate/plugin_config.
OVMS_GRAPH = """
input_stream: "REQUEST_PAYLOAD:input"
output_stream: "RESPONSE_PAYLOAD:output"
node {
  name: "EmbeddingsExecutor"
  input_side_packet: "EMBEDDINGS_NODE_RESOURCES:embeddings_servable"
  calculator: "EmbeddingsCalculatorOV"
  input_stream: "REQUEST_PAYLOAD:input"
  output_stream: "RESPONSE_PAYLOAD:output"
  node_options: {
    [type.googleapis.com / mediapipe.EmbeddingsCalculatorOVOptions]: {
      models_path: "./",
      normalize_embeddings: false,
      target_device: "CPU"
    }
  }
}
"""

# Hand-edited: comments, other field order, `key {` without colon, semicolons, LAST_TOKEN alias.
EDITED_GRAPH = """# embeddings graph
output_stream: "RESPONSE_PAYLOAD:output"  # trailing comment
node {
  node_options {
    [type.googleapis.com/mediapipe.EmbeddingsCalculatorOVOptions] {
      target_device: 'GPU';  plugin_config: "{\\"PERFORMANCE_HINT\\": \\"THROUGHPUT\\"}"
      # pooling comes last here
      truncate: true
      pooling: LAST_TOKEN
      models_path: "../shared-model"
    }
  }
  calculator: "EmbeddingsCalculatorOV"
}
input_stream: "REQUEST_PAYLOAD:input"
"""


def test_issue_layout_is_what_we_render() -> None:
    options = GraphOptions(plugin_config={"NUM_STREAMS": "1"})
    assert render_graph(options) == ISSUE_GRAPH
    assert parse_graph(ISSUE_GRAPH) == options


@pytest.mark.parametrize("pooling", list(Pooling))
def test_round_trip(pooling: Pooling) -> None:
    options = GraphOptions(models_path="./", normalize_embeddings=False, pooling=pooling, truncate=True,
                           target_device="HETERO:GPU,CPU", plugin_config={"NUM_STREAMS": "2", "CACHE_DIR": "/c"})
    assert parse_graph(render_graph(options)) == options


def test_ovms_written_graph_uses_defaults_for_missing_fields() -> None:
    options = parse_graph(OVMS_GRAPH)
    assert options == GraphOptions(normalize_embeddings=False, pooling=Pooling.CLS, truncate=False,
                                   target_device="CPU", plugin_config={})


def test_hand_edited_graph() -> None:
    options = parse_graph(EDITED_GRAPH)
    assert options.pooling is Pooling.LAST
    assert options.truncate is True and options.normalize_embeddings is True
    assert options.target_device == "GPU"
    assert options.plugin_config == {"PERFORMANCE_HINT": "THROUGHPUT"}
    assert options.model_dir(Path("/repo/m")) == Path("/repo/shared-model")


@pytest.mark.parametrize(("text", "message"), [
    (ISSUE_GRAPH.replace("pooling: CLS", "pooling: MAX"), "unknown pooling 'MAX'"),
    (ISSUE_GRAPH.replace('\'{"NUM_STREAMS": "1"}\'', "'{not json'"), "plugin_config is not valid JSON"),
    (ISSUE_GRAPH.replace("truncate: false", 'truncate: "yes"'), "truncate must be true or false"),
    (ISSUE_GRAPH.replace("EmbeddingsCalculatorOV", "RerankCalculatorOV"), "no EmbeddingsCalculatorOV node"),
    (ISSUE_GRAPH[:-3], "missing '}'"),
    (ISSUE_GRAPH.replace("models_path:", "models_path: @"), "unexpected character '@'"),
])
def test_bad_graphs_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_graph(text)


def test_write_and_read(tmp_path: Path) -> None:
    options = GraphOptions(pooling=Pooling.MEAN)
    path = write_graph(tmp_path, options)
    assert path.name == "graph.pbtxt" and oct(path.stat().st_mode & 0o777) != oct(0o600)
    assert read_graph(tmp_path) == options
    with pytest.raises(ConfigError, match="not found"):
        read_graph(tmp_path / "missing")
