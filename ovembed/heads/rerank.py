"""The rerank head: a sequence-classification IR's logits -> one relevance score per pair, in-graph.

optimum-intel's ``text-classification`` IR (what OVMS's ``rerank_ov`` export writes too) takes
``input_ids``, ``attention_mask`` and, for BERT-like models, ``token_type_ids``, and outputs
``logits`` ``[batch, num_labels]``. :func:`add_rerank_head` returns a model whose one output
``scores`` is ``[batch, 2]``: column :data:`RAW` is the relevance logit, column :data:`ACTIVATED`
the score clients see (sigmoid of the logit by default, as ``sentence_transformers.CrossEncoder``
and Cohere-style clients expect).

Token types are derived inside the graph from the ids, so the engine feeds a rerank model exactly
like an embeddings model (ids and mask): a BERT pair ``[CLS] q [SEP] d [SEP]`` has type 1 on every
position after the first separator. :func:`separator_for_token_types` reads that rule off the
tokenizer's own pair template (and refuses templates it cannot express); models whose template
gives every token type 0 (XLM-R, bge-reranker) keep the engine's zeros.

A decoder reranker (Qwen3-Reranker style) gets its "yes" minus "no" logit from
:mod:`ovembed.heads.decoder_rerank`, baked into its IR at export as a ``logits`` ``[batch, 1]``
output, so this head (column 0, sigmoid) serves it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import openvino as ov

OUTPUT_NAME = "scores"
RAW = 0  # column of the relevance logit
ACTIVATED = 1  # column of the activated score (what relevance_score reports)

Activation = Literal["sigmoid", "identity"]
ACTIVATIONS: tuple[Activation, ...] = ("sigmoid", "identity")

# A pair the probe tokenizes to read the template; plain lowercase words every vocabulary covers.
_PROBE = ("a b", "c d")


@dataclass(frozen=True)
class RerankHead:
    """How one model's outputs become a relevance score per (query, document) pair."""

    label: int = 0  # logit column that means "relevant" (0 for one-logit cross-encoders)
    activation: Activation = "sigmoid"
    sep_token_id: int | None = None  # derive token types: 1 after the first separator; None: zeros

    def describe(self) -> dict[str, Any]:
        """The head as recorded in ovembed_model.json."""
        return {"label": self.label, "activation": self.activation, "sep_token_id": self.sep_token_id}

    @classmethod
    def from_record(cls, data: object, *, num_labels: int) -> RerankHead:
        """The recorded head; without a record, OVMS's rule (column 1 of two logits, sigmoid)."""
        if not isinstance(data, dict):
            return cls(label=1 if num_labels > 1 else 0)
        label = data.get("label", 0)
        activation = data.get("activation", "sigmoid")
        sep = data.get("sep_token_id")
        if not isinstance(label, int) or not 0 <= label < max(num_labels, 1):
            raise ValueError(f"rerank head label {label!r} is not a column of {num_labels} logits")
        if activation not in ACTIVATIONS:
            raise ValueError(f"rerank head activation {activation!r} is not one of {', '.join(ACTIVATIONS)}")
        if sep is not None and not isinstance(sep, int):
            raise ValueError(f"rerank head sep_token_id {sep!r} is not a token id")
        return cls(label=label, activation=activation, sep_token_id=sep)


def separator_for_token_types(tokenizer: Any) -> int | None:
    """The separator id after whose first occurrence the pair template switches to type 1.

    ``tokenizer`` is a ``tokenizers.Tokenizer`` (serving) or anything with ``encode(a, b)``
    returning ``ids``/``type_ids``. None when every type id is 0. Raises ``ValueError`` for
    templates the in-graph rule cannot reproduce.
    """
    enc = tokenizer.encode(*_PROBE)
    ids, types = list(enc.ids), list(enc.type_ids)
    if not any(types):
        return None
    first_b = types.index(1)
    if first_b == 0:
        raise ValueError("the pair template starts with token type 1")
    sep = ids[first_b - 1]
    if _derived_types(np.array([ids]), sep)[0].tolist() != types:
        raise ValueError(f"the pair template's token types {types} are not '1 after the first separator'")
    return int(sep)


def _derived_types(ids: np.ndarray, sep: int) -> np.ndarray:
    """Reference (numpy) of the in-graph rule, for the probe and for tests."""
    is_sep = (ids == sep).astype(np.int64)
    return ((np.cumsum(is_sep, axis=1) - is_sep) > 0).astype(np.int64)


def _param(model: ov.Model, name: str) -> Any:
    return next((p for p in model.get_parameters() if name in p.output(0).get_names()), None)


def logits_output(model: ov.Model) -> ov.Output:
    """The ``logits`` output of a sequence-classification IR (its first output when none is named so), f32."""
    import openvino as ov
    import openvino.opset13 as ops

    logits = _logits(model)
    shape = logits.get_partial_shape()
    if shape.rank.is_static and shape.rank.get_length() != 2:
        raise ValueError(f"a sequence classifier outputs logits [batch, labels], this one {shape}")
    if logits.get_element_type() != ov.Type.f32:
        logits = ops.convert(logits, ov.Type.f32).output(0)
    return logits


def token_types_in_graph(model: ov.Model, sep_token_id: int | None) -> list[Any]:
    """The model's parameters after replacing its ``token_type_ids`` input (if any) by the in-graph rule
    "1 after the first ``sep_token_id``" (nothing changes when ``sep_token_id`` is None). Shared by the
    heads that feed pairs (:mod:`ovembed.heads.classify` too)."""
    import openvino as ov
    import openvino.opset13 as ops

    def i64(value: int | list[int]) -> ov.Node:
        return ops.constant(np.array(value, dtype=np.int64))

    params = list(model.get_parameters())
    type_param = _param(model, "token_type_ids")
    if sep_token_id is not None and type_param is not None:
        ids_param = _param(model, "input_ids")
        mask_param = _param(model, "attention_mask")
        if ids_param is None:
            raise ValueError("a rerank model needs an input_ids input")
        ids = ids_param.output(0)
        if ids.get_element_type() != ov.Type.i64:
            ids = ops.convert(ids, ov.Type.i64).output(0)
        is_sep = ops.convert(ops.equal(ids, i64(sep_token_id)), ov.Type.i64)
        before = ops.subtract(ops.cumsum(is_sep, i64(1)), is_sep)  # separators strictly before
        types = ops.convert(ops.greater(before, i64(0)), ov.Type.i64)
        if mask_param is not None:  # padding gets type 0, as the HF tokenizer pads
            types = ops.multiply(types, ops.convert(mask_param.output(0), ov.Type.i64))
        types = ops.convert(types, type_param.get_output_element_type(0))
        for target in list(type_param.output(0).get_target_inputs()):
            target.replace_source_output(types.output(0))
        params = [p for p in params if p is not type_param]
    return params


def _logits(model: ov.Model) -> ov.Output:
    results = model.get_results()
    chosen = next((r for r in results if "logits" in r.output(0).get_names()), results[0])
    return chosen.input_value(0)


def add_rerank_head(model: ov.Model, head: RerankHead) -> ov.Model:
    """A new ``ov.Model`` with the single output ``scores`` ``[batch, 2]`` (raw, activated).

    With ``head.sep_token_id`` set, the ``token_type_ids`` input is replaced by the in-graph rule
    and disappears from the model's inputs.
    """
    import openvino as ov
    import openvino.opset13 as ops

    def i64(value: int | list[int]) -> ov.Node:
        return ops.constant(np.array(value, dtype=np.int64))

    logits = _logits(model)
    shape = logits.get_partial_shape()
    if shape.rank.is_static and shape.rank.get_length() != 2:
        raise ValueError(f"a rerank model outputs logits [batch, labels], this one {shape}")
    if logits.get_element_type() != ov.Type.f32:
        logits = ops.convert(logits, ov.Type.f32).output(0)
    raw = ops.gather(logits, i64([head.label]), i64(1))  # [B, 1]
    activated = ops.sigmoid(raw) if head.activation == "sigmoid" else raw
    scores = ops.concat([raw, activated], 1)
    result = ops.result(scores)
    result.output(0).get_tensor().set_names({OUTPUT_NAME})

    params = token_types_in_graph(model, head.sep_token_id)
    new_model = ov.Model([result], params, model.get_friendly_name())
    for key in ("ovembed",):
        if model.has_rt_info(key):
            new_model.set_rt_info(model.get_rt_info(key), key)
    return new_model
