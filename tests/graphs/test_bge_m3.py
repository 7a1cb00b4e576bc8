"""graph.pbtxt for bge_m3 models: the BgeM3EmbeddingsCalculatorOV node (the token calculator's options message)
renders and reads back as a bge_m3 graph, not a token one, and selects the bge_m3 task spec."""

from __future__ import annotations

from pathlib import Path

from ovembed.config import Task
from ovembed.graphs import BgeM3GraphOptions, TokenGraphOptions, read_model_graph, write_bge_m3_graph
from ovembed.graphs.token_embed import render_token_graph, write_token_graph
from ovembed.serving.tasks.table import read_task_graph


def test_round_trip_and_task(tmp_path: Path) -> None:
    options = BgeM3GraphOptions(models_path="./", target_device="GPU", plugin_config={"NUM_STREAMS": "2"},
                                truncate=True)
    text = render_token_graph(options)
    assert "calculator: \"BgeM3EmbeddingsCalculatorOV\"" in text and "TokenEmbeddingsCalculatorOVOptions" in text
    write_bge_m3_graph(tmp_path, options)
    read = read_model_graph(tmp_path)
    assert read == options and type(read) is BgeM3GraphOptions
    spec, _ = read_task_graph(tmp_path, "graph.pbtxt")
    assert spec.task is Task.BGE_M3


def test_a_token_graph_stays_a_token_graph(tmp_path: Path) -> None:
    write_token_graph(tmp_path, TokenGraphOptions(truncate=True))
    read = read_model_graph(tmp_path)
    assert type(read) is TokenGraphOptions
    assert read_task_graph(tmp_path, "graph.pbtxt")[0].task is Task.TOKEN_EMBED
