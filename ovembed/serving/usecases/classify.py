"""The classify use case behind TEI's ``/predict`` and vLLM's ``/classify``: resolve a classifier, score each
text or text pair, and order each input's labels by score."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ovembed.config import Task
from ovembed.errors import InvalidInput
from ovembed.serving.api import ClassifyInput, ModelInfo, Registry, Timings, TruncationDirection
from ovembed.serving.context import RequestContext
from ovembed.serving.usecases import models


@dataclass(frozen=True)
class ClassifyRequest:
    model: str | None  # None: the one classifier served (TEI's requests name none)
    inputs: tuple[ClassifyInput, ...]
    truncate: bool | None = None  # None: the model's default
    truncation_direction: TruncationDirection = "right"
    truncate_prompt_tokens: int | None = None  # vLLM's: -1 or the model's window (checked here)


@dataclass(frozen=True)
class Classification:
    info: ModelInfo
    version: int
    labels: tuple[str, ...]
    logits: np.ndarray  # float32 [n_inputs, n_labels]
    probs: np.ndarray  # float32 [n_inputs, n_labels]
    token_counts: list[int]
    timings: Timings = field(default_factory=Timings)

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)

    def order(self, row: int, *, raw: bool = False) -> list[int]:
        """Label columns of input ``row`` by descending score (equal scores keep label order)."""
        values = (self.logits if raw else self.probs)[row]
        return np.argsort(-values, kind="stable").tolist()  # type: ignore[no-any-return]


def _truncation(req: ClassifyRequest, info: ModelInfo) -> bool | None:
    """vLLM's ``truncate_prompt_tokens``: -1 or the window is truncation at the window; more than the window
    is vLLM's own 400; fewer cannot be honoured for pairs (400)."""
    tokens = req.truncate_prompt_tokens
    if tokens is None:
        return req.truncate
    if tokens == -1 or tokens == info.max_length:
        return True
    if tokens > info.max_length:
        raise InvalidInput(f"'truncate_prompt_tokens' ({tokens}) is greater than the model's maximum length "
                           f"({info.max_length}): request a smaller truncation size", param="truncate_prompt_tokens")
    raise InvalidInput(f"'truncate_prompt_tokens' below the model's window ({tokens} < {info.max_length}) is not "
                       "supported for classify: send -1 (truncate at the window)", param="truncate_prompt_tokens")


async def classify(registry: Registry, ctx: RequestContext, req: ClassifyRequest) -> Classification:
    """Resolve, check the task, classify (cancelled if the client goes away)."""
    servable, status = models.task_servable(registry, ctx, Task.CLASSIFY, req.model,
                                            hint=" (export one with `ovembed export --task classify`)")
    info = servable.info
    truncate = _truncation(req, info)
    result = await ctx.guard(servable.classify(req.inputs, truncate=truncate, direction=req.truncation_direction))
    return Classification(info, status.version, result.labels, result.logits, result.probs, result.token_counts,
                          result.timings)
