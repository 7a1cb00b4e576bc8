from __future__ import annotations

import pytest
from google.protobuf import descriptor_pool

from ovembed.errors import ConfigError
from ovembed.graphs import EMBEDDINGS, RERANK, parse_graph_text, render_graph_text
from ovembed.graphs.pbtxt import CURRENT_SCHEMA, LEGACY_SCHEMA
from ovembed.graphs.proto.embeddings_calculator_ov_pb2 import EmbeddingsCalculatorOVOptions
from ovembed.graphs.proto.rerank_calculator_ov_pb2 import RerankCalculatorOVOptions

# OVMS 2026.3's export_model.py rerank_ov template, rendered.
OVMS_RERANK = """# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO
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
      plugin_config: '{"NUM_STREAMS": "2" }',
      target_device: "CPU"
    }
  }
}
"""


def test_ovms_rerank_graph() -> None:
    node = parse_graph_text(OVMS_RERANK)
    assert node.calculator is RERANK and node.schema == CURRENT_SCHEMA and node.queue_max_size == "AUTO"
    assert isinstance(node.options, RerankCalculatorOVOptions)
    assert node.options.models_path == "./" and node.options.plugin_config == '{"NUM_STREAMS": "2" }'
    assert node.options.max_allowed_chunks == 10000  # the proto's default
    assert not node.options.HasField("max_position_embeddings")


def test_rerank_round_trip() -> None:
    options = RerankCalculatorOVOptions(models_path="./m", max_allowed_chunks=7, max_position_embeddings=512,
                                        target_device="GPU.1", plugin_config='{"A": "b\\\\c"}')
    text = render_graph_text(RERANK, options)
    assert 'calculator: "RerankCalculatorOV"' in text and 'name: "RerankExecutor"' in text
    assert '"RERANK_NODE_RESOURCES:rerank_servable"' in text
    node = parse_graph_text(text)
    assert node.calculator is RERANK and node.options == options
    assert render_graph_text(RERANK, node.options) == text


def test_header() -> None:
    text = render_graph_text(EMBEDDINGS, EmbeddingsCalculatorOVOptions(models_path="./"), queue_max_size="4")
    assert text.startswith("# OVMS_GRAPH_QUEUE_MAX_SIZE: 4\n")
    assert parse_graph_text(text).queue_max_size == "4"
    bare = render_graph_text(EMBEDDINGS, EmbeddingsCalculatorOVOptions(models_path="./"), queue_max_size=None)
    assert not bare.startswith("#") and parse_graph_text(bare).queue_max_size is None
    # OVMS accepts the directive on any line (mediapipegraphdefinition.cpp)
    assert parse_graph_text("# a graph\n  #OVMS_GRAPH_QUEUE_MAX_SIZE:0\n" + bare).queue_max_size == "0"


def test_legacy_schema_is_reported() -> None:
    text = render_graph_text(EMBEDDINGS, EmbeddingsCalculatorOVOptions(models_path="./")).replace(
        'models_path: "./"', 'models_path: "./" mean_pooling: true')
    node = parse_graph_text(text)
    assert node.schema == LEGACY_SCHEMA and node.legacy and node.options.mean_pooling is True  # type: ignore[attr-defined]


def test_render_checks_the_options_type() -> None:
    with pytest.raises(TypeError, match="EmbeddingsCalculatorOV takes EmbeddingsCalculatorOVOptions"):
        render_graph_text(EMBEDDINGS, RerankCalculatorOVOptions(models_path="./"))
    with pytest.raises(ConfigError, match="missing required fields: models_path"):
        render_graph_text(EMBEDDINGS, EmbeddingsCalculatorOVOptions())


def test_two_served_nodes_are_refused() -> None:
    one = render_graph_text(EMBEDDINGS, EmbeddingsCalculatorOVOptions(models_path="./"))
    node = one[one.index("node {"):]
    with pytest.raises(ConfigError, match="has 2 calculator nodes"):
        parse_graph_text(one + node)


def test_messages_live_in_a_private_pool() -> None:
    """A real mediapipe package (or OVMS's Python bindings) in the same process must not clash with ours."""
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindMessageTypeByName("mediapipe.CalculatorGraphConfig")
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindMessageTypeByName("mediapipe.EmbeddingsCalculatorOVOptions")
