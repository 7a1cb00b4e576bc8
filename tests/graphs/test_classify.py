"""graph.pbtxt for classifiers: ovembed's ClassificationCalculatorOV options render and read back, take the
proto's defaults, select the classify task spec, and refuse options the proto does not declare."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovembed.config import Task
from ovembed.errors import ConfigError
from ovembed.graphs import CLASSIFY, ClassifyGraphOptions, parse_graph_text, read_model_graph
from ovembed.graphs.classify import classify_options, render_classify_graph, write_classify_graph
from ovembed.serving.tasks.table import read_task_graph


def test_round_trip_and_task(tmp_path: Path) -> None:
    options = ClassifyGraphOptions(models_path="./", target_device="GPU", plugin_config={"NUM_STREAMS": "2"},
                                   truncate=True)
    text = render_classify_graph(options)
    assert "type.googleapis.com/mediapipe.ClassificationCalculatorOVOptions" in text
    assert text.startswith("# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO\n")
    write_classify_graph(tmp_path, options)
    assert read_model_graph(tmp_path) == options
    spec, graph = read_task_graph(tmp_path, "graph.pbtxt")
    assert spec.task is Task.CLASSIFY and graph == options


def test_defaults() -> None:
    node = parse_graph_text(render_classify_graph(ClassifyGraphOptions()))
    assert node.calculator is CLASSIFY
    assert classify_options(node) == ClassifyGraphOptions()


def test_unknown_option_is_refused() -> None:
    text = render_classify_graph(ClassifyGraphOptions()).replace('models_path: "./"',
                                                                 'models_path: "./"\n      top_k: 3')
    with pytest.raises(ConfigError, match="top_k"):
        parse_graph_text(text)
