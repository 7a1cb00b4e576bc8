"""The one table of serving tasks, keyed by the graph.pbtxt calculator that selects each.

Adding a task adds its module (a :class:`~ovembed.serving.tasks.spec.TaskSpec` and its servable) and one
entry here; the loader and the registry read nothing else.
"""

from __future__ import annotations

from pathlib import Path

from ovembed.config import Task
from ovembed.errors import ConfigError
from ovembed.graphs import AnyGraphOptions, read_model_graph
from ovembed.serving.tasks import bge_m3, classify, embeddings, rerank, sparse, token_embed
from ovembed.serving.tasks.spec import TaskSpec

TASKS: dict[str, TaskSpec] = {spec.calculator.name: spec for spec in (embeddings.SPEC, rerank.SPEC, sparse.SPEC,
                                                               token_embed.SPEC, classify.SPEC, bge_m3.SPEC)}


def spec_of(task: Task) -> TaskSpec:
    """The spec of ``task``."""
    return next(spec for spec in TASKS.values() if spec.task is task)


def read_task_graph(base_path: Path, graph_file: str) -> tuple[TaskSpec, AnyGraphOptions]:
    """The task of the model in ``base_path`` (its graph's calculator) and the graph's options."""
    if not base_path.is_dir():
        raise ConfigError(f"model folder {base_path} does not exist")
    graph = read_model_graph(base_path, graph_file)
    return TASKS[graph.calculator.name], graph
