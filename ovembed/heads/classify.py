"""The classification head: a sequence-classification IR's logits -> raw logits and probabilities, in-graph.

optimum-intel's ``text-classification`` IR outputs ``logits`` ``[batch, num_labels]``. :func:`add_classify_head`
returns a model whose one output ``scores`` is ``[batch, 2 * num_labels]``: the first half the logits, the
second the probabilities, ``softmax`` over the labels (``problem_type`` ``single_label_classification``, the
transformers default) or an independent ``sigmoid`` per label (``multi_label_classification``). Token types of
a text pair are derived in-graph from the ids, as for rerank (:func:`ovembed.heads.rerank.token_types_in_graph`),
so a classifier is fed ids and mask like any other model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ovembed.heads.rerank import logits_output, token_types_in_graph

if TYPE_CHECKING:
    import openvino as ov

OUTPUT_NAME = "scores"

ProblemType = Literal["single_label_classification", "multi_label_classification"]
PROBLEM_TYPES: tuple[ProblemType, ...] = ("single_label_classification", "multi_label_classification")


@dataclass(frozen=True)
class ClassifyHead:
    """How one classifier's logits become its answer: the labels (``id2label`` in column order) and the
    activation its ``problem_type`` implies."""

    labels: tuple[str, ...]
    problem_type: ProblemType = "single_label_classification"
    sep_token_id: int | None = None  # derive token types of pairs: 1 after the first separator; None: zeros

    @property
    def activation(self) -> Literal["softmax", "sigmoid"]:
        return "sigmoid" if self.problem_type == "multi_label_classification" else "softmax"

    def describe(self) -> dict[str, Any]:
        """The head as recorded in ovembed_model.json."""
        return {"labels": list(self.labels), "problem_type": self.problem_type, "activation": self.activation,
                "sep_token_id": self.sep_token_id}

    @classmethod
    def from_record(cls, data: object) -> ClassifyHead:
        """The recorded head; ``ValueError`` naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("ovembed_model.json has no classify_head (export the model with --task classify)")
        labels = data.get("labels")
        if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"classify head labels {labels!r} are not a list of at least two names")
        problem = data.get("problem_type", "single_label_classification")
        if problem not in PROBLEM_TYPES:
            raise ValueError(f"classify head problem_type {problem!r} is not one of {', '.join(PROBLEM_TYPES)}")
        sep = data.get("sep_token_id")
        if sep is not None and (isinstance(sep, bool) or not isinstance(sep, int)):
            raise ValueError(f"classify head sep_token_id {sep!r} is not a token id")
        return cls(tuple(labels), problem, sep)


def labels_of(hf_config: dict[str, Any]) -> tuple[str, ...]:
    """``id2label`` in column order (transformers' ``LABEL_i`` when the config names none)."""
    id2label = hf_config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        try:
            by_index = {int(k): str(v) for k, v in id2label.items()}
        except (TypeError, ValueError):
            raise ValueError(f"id2label keys {list(id2label)} are not label indexes") from None
        if sorted(by_index) != list(range(len(by_index))):
            raise ValueError(f"id2label indexes {sorted(by_index)} are not 0..{len(by_index) - 1}")
        return tuple(by_index[i] for i in range(len(by_index)))
    count = int(hf_config.get("num_labels", 2))
    return tuple(f"LABEL_{i}" for i in range(count))


def problem_type_of(hf_config: dict[str, Any]) -> ProblemType:
    """``problem_type`` as transformers reads it for more than one label: unset is single-label."""
    value = hf_config.get("problem_type") or "single_label_classification"
    if value not in PROBLEM_TYPES:
        raise ValueError(f"problem_type {value!r} is not a classification (ovembed serves "
                         f"{', '.join(PROBLEM_TYPES)})")
    return value  # type: ignore[no-any-return]


def activate(logits: np.ndarray, problem_type: ProblemType) -> np.ndarray:
    """The numpy reference of the in-graph activation, ``[n, labels]`` float32."""
    x = logits.astype(np.float64)
    if problem_type == "multi_label_classification":
        out = 1.0 / (1.0 + np.exp(-x))
    else:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        out = e / e.sum(axis=1, keepdims=True)
    return out.astype(np.float32)


def add_classify_head(model: ov.Model, head: ClassifyHead) -> ov.Model:
    """A new ``ov.Model`` with the single output ``scores`` ``[batch, 2 * labels]`` (logits, probabilities)."""
    import openvino as ov
    import openvino.opset13 as ops

    logits = logits_output(model)
    width = logits.get_partial_shape()[1]
    if width.is_static and width.get_length() != len(head.labels):
        raise ValueError(f"the model outputs {width.get_length()} logits, the head names {len(head.labels)} labels")
    probs = ops.sigmoid(logits) if head.activation == "sigmoid" else ops.softmax(logits, 1)
    result = ops.result(ops.concat([logits, probs], 1))
    result.output(0).get_tensor().set_names({OUTPUT_NAME})
    params = token_types_in_graph(model, head.sep_token_id)
    new_model = ov.Model([result], params, model.get_friendly_name())
    if model.has_rt_info("ovembed"):
        new_model.set_rt_info(model.get_rt_info("ovembed"), "ovembed")
    return new_model
