"""The late-interaction (ColBERT-style) head: an encoder's ``last_hidden_state`` -> one L2-normalised vector per
token, in-graph; and MaxSim, the score of a query's token vectors against a document's.

:func:`add_projection` appends what a ColBERT model has after its encoder (pylate's ``Dense`` module, Stanford
ColBERT's ``linear``: ``x W^T (+ b)``, typically to 128 dimensions) and the per-token L2 normalisation
(``torch.nn.functional.normalize``: ``x / max(||x||, 1e-12)``) to optimum's ``feature-extraction`` IR; the export
saves the result, so the served IR's one output ``token_embeddings`` is ``[batch, seq, dim]``.
:func:`add_token_head` (serving) only selects and names that output. Padding positions are not masked in-graph:
the batcher keeps each document's real tokens (``[:length]``), and the servable drops the document skiplist.

MaxSim (ColBERT): ``score(q, d) = sum over query tokens i of max over document tokens j of q_i . d_j``.
:func:`maxsim` scores one query against many documents with one matrix product and ``np.maximum.reduceat``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import openvino as ov

OUTPUT_NAME = "token_embeddings"
_EPS = 1e-12  # torch.nn.functional.normalize's


def _hidden_state(model: ov.Model) -> ov.Output:
    results = model.get_results()
    for wanted in (OUTPUT_NAME, "last_hidden_state"):
        chosen = next((r for r in results if wanted in r.output(0).get_names()), None)
        if chosen is not None:
            return chosen.input_value(0)
    return results[0].input_value(0)


def _single_output(model: ov.Model, node: ov.Output) -> ov.Model:
    import openvino as ov
    import openvino.opset13 as ops

    result = ops.result(node)
    result.output(0).get_tensor().set_names({OUTPUT_NAME})
    new_model = ov.Model([result], model.get_parameters(), model.get_friendly_name())
    for key in ("ovembed",):
        if model.has_rt_info(key):
            new_model.set_rt_info(model.get_rt_info(key), key)
    return new_model


def add_projection(model: ov.Model, weight: np.ndarray, bias: np.ndarray | None = None) -> ov.Model:
    """A new ``ov.Model`` with the one output ``token_embeddings`` = normalize(last_hidden_state W^T + b)."""
    import openvino as ov
    import openvino.opset13 as ops

    hidden = _hidden_state(model)
    shape = hidden.get_partial_shape()
    if shape.rank.is_static and shape.rank.get_length() != 3:
        raise ValueError(f"a token model's encoder outputs [batch, seq, hidden], this one {shape}")
    if hidden.get_element_type() != ov.Type.f32:
        hidden = ops.convert(hidden, ov.Type.f32).output(0)
    projected = ops.matmul(hidden, ops.constant(np.asarray(weight, dtype=np.float32)), False, True)
    if bias is not None:
        projected = ops.add(projected, ops.constant(np.asarray(bias, dtype=np.float32)))
    axes = ops.constant(np.array([-1], dtype=np.int64))
    normalized = ops.normalize_l2(projected, axes, _EPS * _EPS, "max")  # x / sqrt(max(sum x^2, eps^2))
    return _single_output(model, normalized.output(0))


def add_token_head(model: ov.Model) -> ov.Model:
    """Serving: the exported IR (projection and normalisation already in it) with its one output checked."""
    hidden = _hidden_state(model)
    shape = hidden.get_partial_shape()
    if shape.rank.is_static and shape.rank.get_length() != 3:
        raise ValueError(f"a token model outputs [batch, seq, dim], this one {shape}")
    return _single_output(model, hidden)


def reference_token_vectors(hidden: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """The head in numpy: ``hidden`` ``[..., H]`` -> ``[..., D]`` float32, each row of norm 1."""
    out = hidden.astype(np.float32) @ np.asarray(weight, dtype=np.float32).T
    if bias is not None:
        out = out + np.asarray(bias, dtype=np.float32)
    norms = np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), _EPS)
    return np.asarray(out / norms, dtype=np.float32)


def maxsim(query: np.ndarray, documents: Sequence[np.ndarray]) -> np.ndarray:
    """float32 ``[n_docs]``: each document's MaxSim with ``query`` (``[q, dim]``); a document with no vectors
    scores 0."""
    scores = np.zeros(len(documents), dtype=np.float32)
    kept = [i for i, d in enumerate(documents) if len(d)]
    if not kept or len(query) == 0:
        return scores
    lengths = np.array([len(documents[i]) for i in kept])
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    sims = query.astype(np.float32) @ np.concatenate([documents[i] for i in kept]).astype(np.float32).T
    scores[kept] = np.maximum.reduceat(sims, starts, axis=1).sum(axis=0)
    return scores
