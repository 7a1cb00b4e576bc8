"""The decoder-reranker head: a causal LM's hidden states -> the "yes" minus "no" logit of the last real token.

Qwen3-Reranker (and bge-reranker-v2-gemma, mxbai-rerank-v2) score a prompt-formatted pair with the
next-token logits of two words at the last position: ``P(yes) = softmax([no, yes])[1] = sigmoid(yes - no)``.
:func:`add_yes_no_head` appends that to an IR whose output is ``last_hidden_state`` ``[batch, seq, hidden]``
(the final norm applied, as the causal LM feeds ``lm_head``): it picks the last position whose attention
mask is 1 (left or right padding), multiplies by the two rows of ``lm_head`` (``[hidden, 2]``; no
vocabulary-sized tensor is ever made), applies the model's final logit soft-capping if it has one, and
outputs ``logits`` ``[batch, 1]`` = yes - no. The result is shaped like a one-logit cross-encoder's IR, so
:mod:`ovembed.heads.rerank` (sigmoid) and the rerank servable take it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import openvino as ov

OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class YesNoHead:
    """The two ``lm_head`` rows a decoder reranker's score is read from.

    A ``*-seq-cls`` copy (the causal LM converted to a one-label sequence classifier, whose ``score`` row
    is ``lm_head[yes] - lm_head[no]``) has no token ids: its row and a zero row give the same difference.
    """

    yes_token_id: int | None
    no_token_id: int | None
    rows: np.ndarray  # float32 [2, hidden]: lm_head rows of "yes" and "no" (seq-cls: score row, zeros)
    softcap: float | None = None  # Gemma-2-style final_logit_softcapping

    def describe(self) -> dict[str, Any]:
        seq_cls = self.yes_token_id is None
        return {"yes_token_id": self.yes_token_id, "no_token_id": self.no_token_id, "softcap": self.softcap,
                "score": "sigmoid(score row)" if seq_cls else "sigmoid(yes - no)",
                "rows": "score (seq-cls)" if seq_cls else "lm_head"}


def last_real_positions(mask: np.ndarray) -> np.ndarray:
    """Reference (numpy) of the in-graph pick: the last position whose mask is 1, per row."""
    positions = np.arange(mask.shape[1], dtype=np.int64)
    return (mask.astype(np.int64) * positions).max(axis=1)


def add_yes_no_head(model: ov.Model, head: YesNoHead) -> ov.Model:
    """A new ``ov.Model`` with the single output ``logits`` ``[batch, 1]`` (yes - no at the last real token)."""
    import openvino as ov
    import openvino.opset13 as ops

    def i64(value: int | list[int]) -> ov.Node:
        return ops.constant(np.array(value, dtype=np.int64))

    results = model.get_results()
    chosen = next((r for r in results if "last_hidden_state" in r.output(0).get_names()), results[0])
    hidden = chosen.input_value(0)
    if hidden.get_element_type() != ov.Type.f32:
        hidden = ops.convert(hidden, ov.Type.f32).output(0)
    mask_param = next((p for p in model.get_parameters() if "attention_mask" in p.output(0).get_names()), None)
    if mask_param is None:
        raise ValueError("a decoder reranker IR needs an attention_mask input")
    mask = ops.convert(mask_param.output(0), ov.Type.i64)
    seq_len = ops.gather(ops.shape_of(mask, "i64"), i64(1), i64(0))
    positions = ops.range(i64(0), seq_len, i64(1), "i64")
    last = ops.reduce_max(ops.multiply(mask, positions), i64([1]), keep_dims=False)  # [B]
    state = ops.gather(hidden, last, i64(1), batch_dims=1)  # [B, hidden]
    weights = ops.constant(np.ascontiguousarray(head.rows.T, dtype=np.float32))  # [hidden, 2]
    logits = ops.matmul(state, weights, False, False)  # [B, 2]: yes, no
    if head.softcap:
        cap = ops.constant(np.float32(head.softcap))
        logits = ops.multiply(ops.tanh(ops.divide(logits, cap)), cap)
    diff = ops.subtract(ops.gather(logits, i64([0]), i64(1)), ops.gather(logits, i64([1]), i64(1)))  # [B, 1]
    result = ops.result(diff)
    result.output(0).get_tensor().set_names({OUTPUT_NAME})
    new_model = ov.Model([result], list(model.get_parameters()), model.get_friendly_name())
    for key in ("ovembed",):
        if model.has_rt_info(key):
            new_model.set_rt_info(model.get_rt_info(key), key)
    return new_model
