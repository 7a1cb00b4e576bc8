"""What a task tells the one loader and the registry: :class:`TaskSpec`.

One subclass per task (:mod:`.embeddings`, :mod:`.rerank`, :mod:`.sparse`), registered in one table keyed by the
graph's calculator (:mod:`.table`). The loader (:func:`ovembed.serving.openvino.loader.load_model`) reads the
folder and asks the spec for the head, the window and the warm-up shapes (:meth:`TaskSpec.prepare`), compiles
and warms up, then asks it for the model's :class:`~ovembed.serving.api.ModelInfo` and its ready line; the
registry asks it for the batch policy and the servable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ovembed.config import Pooling, ServeConfig, Task
from ovembed.graphs import AnyGraphOptions, Calculator
from ovembed.hf_files import declared_max_length
from ovembed.prompts import PromptSet
from ovembed.serving.api import ModelInfo
from ovembed.serving.batching.policy import BatchPolicy
from ovembed.serving.tasks.base import BaseServable, ServableDeps
from ovembed.serving.tasks.tokenizer import ServingTokenizer

if TYPE_CHECKING:
    import openvino as ov

    from ovembed.serving.batching.batcher import Batcher



def resolve_max_length(model_dir: Path, record: dict[str, Any]) -> int:
    """ovembed_model.json ``max_length``; else what the HF files declare; else 512."""
    value = record.get("max_length")
    if isinstance(value, int) and value > 0:
        return value
    declared = declared_max_length(model_dir)
    return declared[0] if declared else 512


@dataclass(frozen=True)
class Source:
    """A model folder as the loader found it, before compiling."""

    name: str
    base_path: Path  # the folder config.json points at (graph.pbtxt)
    model_dir: Path  # the folder of the IR (the graph's models_path)
    record: dict[str, Any]  # ovembed_model.json, {} for folders OVMS wrote
    hf_config: dict[str, Any]  # config.json of the model
    tokenizer_dir: Path  # where tokenizer.json is
    graph: AnyGraphOptions
    cfg: ServeConfig


@dataclass(frozen=True)
class Prepared:
    """What a task decided about one folder before compiling (:meth:`TaskSpec.prepare`)."""

    graph: AnyGraphOptions  # the graph options, possibly completed (e.g. the pooling chosen)
    max_length: int  # the tokenizer's window
    head: Callable[[ov.Model], ov.Model]  # appends the task's head to the IR
    head_key: dict[str, object]  # describes the head (keys the cached headed IR with --cache_dir)
    warm_shapes: tuple[tuple[int, int], ...]  # (batch, length) run once each: first runs pay shape setup
    warning: str | None = None  # served, but the operator should know (shown in /v1/config)
    extras: dict[str, Any] = field(default_factory=dict)  # what the task's servable needs besides the batcher


@dataclass(frozen=True)
class LoadedModel:
    """One compiled, warmed-up model: what the loader hands the registry."""

    info: ModelInfo
    engine: Any  # its executor: ovembed.serving.openvino.executor.OpenVINOExecutor (implements api.Executor)
    tokenizer: ServingTokenizer
    spec: TaskSpec
    warning: str | None = None  # served, but something the operator should know (shown in /v1/config)
    extras: dict[str, Any] = field(default_factory=dict)  # Prepared.extras


class TaskSpec:
    """One serving task. A subclass names its task in its class line
    (``class RerankSpec(TaskSpec, task=Task.RERANK, calculator=RERANK, endpoint="/v3/rerank")``) and
    implements :meth:`prepare`, :meth:`ready_details` and :meth:`servable`; the rest has defaults."""

    task: ClassVar[Task]
    calculator: ClassVar[Calculator]  # the graph.pbtxt calculator that selects this task
    endpoint: ClassVar[str]  # where this task is served (the hint of a wrong-task error)
    label: ClassVar[str]  # before "model <name> ready on ..." in the log ("rerank ", "sparse ")
    throughput_executor: ClassVar[bool]  # may get a throughput executor and static-shape copies

    def __init_subclass__(cls, *, task: Task, calculator: Calculator, endpoint: str, label: str = "",
                          throughput_executor: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.task, cls.calculator, cls.endpoint = task, calculator, endpoint
        cls.label, cls.throughput_executor = label, throughput_executor

    def prepare(self, source: Source) -> Prepared:
        raise NotImplementedError

    def info(self, source: Source, prepared: Prepared, *, dimensions: int, device: str, precision: str,
             created: int) -> ModelInfo:
        """The model's ModelInfo; tasks add their extras with :func:`dataclasses.replace`."""
        return ModelInfo(name=source.name, dimensions=dimensions, max_length=prepared.max_length,
                         pooling=Pooling.CLS, normalize=False, truncate=False, device=device, precision=precision,
                         created=created, task=self.task, endpoint=self.endpoint, prompts=PromptSet())

    def ready_details(self, info: ModelInfo, prepared: Prepared, cfg: ServeConfig) -> str:
        """The task's part of the "model <name> ready" log line (between the infer requests and the load time)."""
        raise NotImplementedError

    def batch_policy(self, policy: BatchPolicy, info: ModelInfo) -> BatchPolicy:
        """The model's batch policy, from the server's (``--max_batch_tokens`` and friends)."""
        return policy

    def servable(self, loaded: LoadedModel, batcher: Batcher, deps: ServableDeps) -> BaseServable:
        raise NotImplementedError

