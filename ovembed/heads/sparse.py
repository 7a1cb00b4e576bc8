"""The sparse (SPLADE) head: a masked-LM IR's logits -> one vocabulary-sized weight vector per input, in-graph.

optimum-intel's ``fill-mask`` IR takes ``input_ids``, ``attention_mask`` (and ``token_type_ids`` for
BERT-like models) and outputs ``logits`` ``[batch, seq, vocab]``. :func:`add_sparse_head` returns a
model whose one output ``sparse_embedding`` is ``[batch, vocab]``:

    w[b, v] = max over real tokens t of log(1 + relu(logits[b, t, v]))

(SPLADE's max pooling; padding positions are masked out by ``attention_mask`` before the max, and
every weight is >= 0, so masking with 0 is exact). This is what
``sentence_transformers.SparseEncoder``'s ``SpladePooling`` (max, relu) computes and what TEI's
``/embed_sparse`` returns. :func:`reference_weights` is the same formula in numpy, for verification
and tests. Pruning (top-k, threshold) happens after the graph, per request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import openvino as ov

OUTPUT_NAME = "sparse_embedding"


def _param(model: ov.Model, name: str) -> ov.Node | None:
    return next((p for p in model.get_parameters() if name in p.output(0).get_names()), None)


def _logits(model: ov.Model) -> ov.Output:
    results = model.get_results()
    chosen = next((r for r in results if "logits" in r.output(0).get_names()), results[0])
    return chosen.input_value(0)


def add_sparse_head(model: ov.Model) -> ov.Model:
    """A new ``ov.Model`` with the single output ``sparse_embedding`` ``[batch, vocab]``."""
    import openvino as ov
    import openvino.opset13 as ops

    def i64(value: int | list[int]) -> ov.Node:
        return ops.constant(np.array(value, dtype=np.int64))

    logits = _logits(model)
    shape = logits.get_partial_shape()
    if shape.rank.is_static and shape.rank.get_length() != 3:
        raise ValueError(f"a sparse (masked-LM) model outputs logits [batch, seq, vocab], this one {shape}")
    if logits.get_element_type() != ov.Type.f32:
        logits = ops.convert(logits, ov.Type.f32).output(0)
    mask_param = _param(model, "attention_mask")
    if mask_param is None:
        raise ValueError("a sparse model needs an attention_mask input")
    weights = ops.log(ops.add(ops.relu(logits), ops.constant(np.float32(1.0))))  # log1p(relu(x)) >= 0
    mask = ops.convert(ops.unsqueeze(mask_param.output(0), i64([-1])), ov.Type.f32)  # [B, S, 1]
    pooled = ops.reduce_max(ops.multiply(weights, mask), i64([1]), keep_dims=False)  # [B, V]
    result = ops.result(pooled)
    result.output(0).get_tensor().set_names({OUTPUT_NAME})
    new_model = ov.Model([result], model.get_parameters(), model.get_friendly_name())
    for key in ("ovembed",):
        if model.has_rt_info(key):
            new_model.set_rt_info(model.get_rt_info(key), key)
    return new_model


def reference_weights(logits: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """The head in numpy: ``logits`` ``[B, S, V]``, ``attention_mask`` ``[B, S]`` -> ``[B, V]`` float32."""
    weights = np.log1p(np.maximum(logits.astype(np.float32), 0.0))
    weights = weights * attention_mask.astype(np.float32)[:, :, None]
    return np.asarray(weights.max(axis=1), dtype=np.float32)


def prune(row: np.ndarray, *, top_k: int | None, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices int64 ascending, values float32) of the weights above ``threshold`` (> 0 always),
    keeping the ``top_k`` largest when set (ties broken by the lower index)."""
    keep = np.flatnonzero(row > max(threshold, 0.0))
    if top_k is not None and keep.size > top_k:
        order = np.argsort(-row[keep], kind="stable")[:top_k]
        keep = np.sort(keep[order])
    return keep.astype(np.int64), row[keep].astype(np.float32)
