from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ovembed.config import Pooling
from ovembed.errors import ConfigError
from ovembed.graphs import GraphOptions, parse_graph, read_graph, render_graph, write_graph

# What ovembed writes: OVMS's export_model.py layout in protobuf's own text format, header first.
RENDERED = """# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO
input_stream: "REQUEST_PAYLOAD:input"
output_stream: "RESPONSE_PAYLOAD:output"
node {
  name: "EmbeddingsExecutor"
  calculator: "EmbeddingsCalculatorOV"
  input_stream: "REQUEST_PAYLOAD:input"
  output_stream: "RESPONSE_PAYLOAD:output"
  input_side_packet: "EMBEDDINGS_NODE_RESOURCES:embeddings_servable"
  node_options {
    [type.googleapis.com/mediapipe.EmbeddingsCalculatorOVOptions] {
      models_path: "./"
      normalize_embeddings: true
      target_device: "CPU"
      plugin_config: "{\\"NUM_STREAMS\\": \\"1\\"}"
      pooling: MEAN
    }
  }
}
"""

# OVMS 2026.3's export_model.py template, rendered: header, commas, single-quoted JSON, no pooling line.
OVMS_2026_GRAPH = """# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO
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
      plugin_config: '{"NUM_STREAMS": "1" }',
      normalize_embeddings: false,
      truncate: true,
      target_device: "CPU"
    }
  }
}
"""

# OVMS 2025.2's demos (embeddings_ov graphs then): mean_pooling instead of the pooling enum.
OVMS_2025_2_GRAPH = """input_stream: "REQUEST_PAYLOAD:input"
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
      mean_pooling: true,
      target_device: "CPU"
    }
  }
}
"""

# Hand-edited: comments, other field order, `key {` without colon, semicolons, the CalculatorOptions
# extension form instead of node_options.
EDITED_GRAPH = """# embeddings graph
output_stream: "RESPONSE_PAYLOAD:output"  # trailing comment
node {
  options {
    [mediapipe.EmbeddingsCalculatorOVOptions.ext] {
      target_device: 'GPU';  plugin_config: "{\\"PERFORMANCE_HINT\\": \\"THROUGHPUT\\"}"
      # pooling comes last here
      truncate: true
      pooling: LAST
      models_path: "../shared-model"
    }
  }
  calculator: "EmbeddingsCalculatorOV"
}
input_stream: "REQUEST_PAYLOAD:input"
"""


def test_rendered_layout() -> None:
    options = GraphOptions(pooling=Pooling.MEAN, plugin_config={"NUM_STREAMS": "1"})
    assert render_graph(options) == RENDERED
    assert parse_graph(RENDERED) == options


@pytest.mark.parametrize("pooling", [*Pooling, None])
def test_round_trip(pooling: Pooling | None) -> None:
    options = GraphOptions(models_path="./", normalize_embeddings=False, pooling=pooling, truncate=True,
                           target_device="HETERO:GPU,CPU", plugin_config={"NUM_STREAMS": "2", "CACHE_DIR": "/c"})
    text = render_graph(options)
    assert parse_graph(text) == options
    assert render_graph(parse_graph(text)) == text
    assert ("pooling:" in text) is (pooling is not None)


def test_windows_cache_dir_and_quotes_read_back() -> None:
    """The old writer put json.dumps output into a pbtxt string unescaped: this could not be read back."""
    plugin = {"CACHE_DIR": "C:\\Users\\me\\ov cache", "NOTE": 'say "hi"', "UNICODE": "é中\U0001f600", "TAB": "a\tb"}
    options = GraphOptions(pooling=Pooling.CLS, plugin_config=plugin, models_path="C:\\models\\m")
    text = render_graph(options)
    assert parse_graph(text).plugin_config == plugin
    assert parse_graph(text).models_path == "C:\\models\\m"
    assert "é中" in text  # printed as UTF-8, not escaped


_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)


@settings(max_examples=150, deadline=None)
@given(models_path=_text, device=_text, normalize=st.booleans(), truncate=st.booleans(),
       pooling=st.sampled_from([*Pooling, None]),
       plugin=st.dictionaries(_text, _text | st.integers(-10**6, 10**6) | st.booleans(), max_size=4))
def test_round_trip_any_value(models_path: str, device: str, normalize: bool, truncate: bool,
                              pooling: Pooling | None, plugin: dict[str, object]) -> None:
    options = GraphOptions(models_path=models_path, normalize_embeddings=normalize, pooling=pooling,
                           truncate=truncate, target_device=device, plugin_config=plugin)
    text = render_graph(options)
    assert parse_graph(text) == options
    assert render_graph(parse_graph(text)) == text


def test_ovms_2026_graph_leaves_pooling_to_detection() -> None:
    options = parse_graph(OVMS_2026_GRAPH)
    assert options == GraphOptions(normalize_embeddings=False, pooling=None, truncate=True,
                                   target_device="CPU", plugin_config={"NUM_STREAMS": "1"})


def test_ovms_2025_2_mean_pooling_is_mean() -> None:
    assert parse_graph(OVMS_2025_2_GRAPH).pooling is Pooling.MEAN
    assert parse_graph(OVMS_2025_2_GRAPH.replace("mean_pooling: true", "mean_pooling: false")).pooling is Pooling.CLS


def test_hand_edited_graph() -> None:
    options = parse_graph(EDITED_GRAPH)
    assert options.pooling is Pooling.LAST
    assert options.truncate is True and options.normalize_embeddings is True
    assert options.target_device == "GPU"
    assert options.plugin_config == {"PERFORMANCE_HINT": "THROUGHPUT"}
    assert options.model_dir(Path("/repo/m")) == Path("/repo/shared-model")


GRAPH = RENDERED


@pytest.mark.parametrize(("text", "message"), [
    (GRAPH.replace("pooling: MEAN", "pooling: MAX"),
     'line 16: Enum type "mediapipe.EmbeddingsCalculatorOVOptions.Pooling" has no value named MAX'),
    (GRAPH.replace("pooling: MEAN", "pooling: LAST_TOKEN"), "has no value named LAST_TOKEN"),
    (GRAPH.replace("pooling: MEAN", "max_tokens: 3"),
     'line 16: Message type "mediapipe.EmbeddingsCalculatorOVOptions" has no field named "max_tokens"'),
    (GRAPH.replace("pooling: MEAN", "pooling: MEAN mean_pooling: true"),  # neither schema has both
     'has no field named "mean_pooling"'),
    (GRAPH.replace('"{\\"NUM_STREAMS\\": \\"1\\"}"', "'{not json'"), "plugin_config is not valid JSON"),
    (GRAPH.replace('"{\\"NUM_STREAMS\\": \\"1\\"}"', "'[1]'"), "plugin_config must be a JSON object"),
    (GRAPH.replace("normalize_embeddings: true", 'normalize_embeddings: "yes"'),
     'line 13: Expected "true" or "false"'),
    (GRAPH.replace('models_path: "./"\n', ""), "missing required fields: models_path"),
    (GRAPH.replace("EmbeddingsCalculatorOV\"", "RerankCalculatorOV\"", 1),
     "the RerankCalculatorOV node has options of another type: type.googleapis.com/mediapipe.EmbeddingsCalc"),
    (GRAPH.replace("EmbeddingsCalculatorOV\"", "SomethingElse\"", 1), r"no .* node \(it has SomethingElse\)"),
    (GRAPH[:-3], 'line 18: Expected "}"'),
    (GRAPH.replace("models_path:", "models_path: @"), "line 12: Expected string but found: '@'"),
    (GRAPH.replace("input_stream:", "input_streams:", 1), 'has no field named "input_streams"'),
])
def test_bad_graphs_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_graph(text)


def test_rerank_graph_is_not_an_embeddings_graph() -> None:
    from ovembed.graphs import RERANK, render_graph_text
    from ovembed.graphs.proto.rerank_calculator_ov_pb2 import RerankCalculatorOVOptions

    text = render_graph_text(RERANK, RerankCalculatorOVOptions(models_path="./"))
    with pytest.raises(ConfigError, match="no EmbeddingsCalculatorOV node \\(it has a RerankCalculatorOV node\\)"):
        parse_graph(text)


def test_write_and_read(tmp_path: Path) -> None:
    options = GraphOptions(pooling=Pooling.MEAN)
    path = write_graph(tmp_path, options)
    assert path.name == "graph.pbtxt" and oct(path.stat().st_mode & 0o777) != oct(0o600)
    assert path.read_text().startswith("# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO\n")
    assert read_graph(tmp_path) == options
    with pytest.raises(ConfigError, match="not found"):
        read_graph(tmp_path / "missing")
    (tmp_path / "other.pbtxt").write_text(OVMS_2025_2_GRAPH)
    assert read_graph(tmp_path, "other.pbtxt").pooling is Pooling.MEAN
    (tmp_path / "bad.pbtxt").write_text(GRAPH.replace("pooling: MEAN", "colour: RED"))
    with pytest.raises(ConfigError, match=f'{tmp_path / "bad.pbtxt"}: graph.pbtxt line 16: .*"colour"'):
        read_graph(tmp_path, "bad.pbtxt")
