"""BGE-M3's three heads over one encoder pass (FlagEmbedding's ``BGEM3FlagModel`` / ``M3Embedder``), in-graph:

- **dense**: the first token's (CLS) ``last_hidden_state``, L2-normalised: ``[batch, hidden]``;
- **sparse**: one weight per token, ``relu(sparse_linear(last_hidden_state))`` (``sparse_linear``: hidden -> 1):
  ``[batch, seq]``; the weights of one token id are aggregated by max and the special tokens (cls, eos, pad, unk)
  dropped after the graph (:func:`lexical_weights`), as FlagEmbedding's ``_process_token_weights`` does;
- **multi-vector** (ColBERT): ``colbert_linear(last_hidden_state[:, 1:])`` (the CLS position skipped), each vector
  L2-normalised: ``[batch, seq - 1, dim]``.

:func:`add_heads` appends the three to optimum's ``feature-extraction`` IR (three outputs, the exported model);
:func:`add_packed_head` (serving) packs them into one ``[batch, seq, width]`` output so that the batcher's
per-token path hands each document its rows: row 0 is the dense vector, row ``t >= 1`` is token ``t``'s
multi-vector followed by its sparse weight (``width = max(hidden, dim + 1)``, zero-filled). :func:`unpack` undoes it.

Scores (FlagEmbedding's ``compute_score``): dense ``q . p``; sparse (lexical matching) the sum over shared token ids
of the product of weights; colbert the mean over query vectors of the best dot product with a passage's vectors;
combined ``(w0 dense + w1 sparse + w2 colbert) / (w0 + w1 + w2)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ovembed.heads.token_embed import maxsim

if TYPE_CHECKING:
    import openvino as ov

DENSE, SPARSE, COLBERT = "dense_embedding", "sparse_weights", "colbert_vectors"  # the exported IR's outputs
PACKED = "bge_m3_packed"  # the served output
# The weights of dense, sparse and colbert in the combined score: BGE-M3's model card's (FlagEmbedding's code
# defaults to [1, 1, 1] when none are passed).
DEFAULT_WEIGHTS = (0.4, 0.2, 0.4)
_EPS = 1e-12  # torch.nn.functional.normalize's


@dataclass(frozen=True)
class Heads:
    """The two linear layers of a BGE-M3 checkpoint (``sparse_linear.pt``, ``colbert_linear.pt``)."""

    sparse_weight: np.ndarray  # [1, hidden]
    sparse_bias: np.ndarray | None  # [1]
    colbert_weight: np.ndarray  # [dim, hidden]
    colbert_bias: np.ndarray | None  # [dim]

    @property
    def hidden(self) -> int:
        return int(self.colbert_weight.shape[1])

    @property
    def dim(self) -> int:
        return int(self.colbert_weight.shape[0])


def packed_width(hidden: int, dim: int) -> int:
    return max(hidden, dim + 1)


def _i64(value: int | list[int]) -> ov.Node:
    import openvino.opset13 as ops

    return ops.constant(np.array(value, dtype=np.int64))


def _linear(x: ov.Output, weight: np.ndarray, bias: np.ndarray | None) -> ov.Output:
    import openvino.opset13 as ops

    out = ops.matmul(x, ops.constant(np.asarray(weight, dtype=np.float32)), False, True)
    if bias is not None:
        out = ops.add(out, ops.constant(np.asarray(bias, dtype=np.float32)))
    return out.output(0)


def _normalize(x: ov.Output) -> ov.Output:
    import openvino.opset13 as ops

    return ops.normalize_l2(x, _i64([-1]), _EPS * _EPS, "max").output(0)  # x / sqrt(max(sum x^2, eps^2))


def _result(node: ov.Output, name: str) -> ov.Node:
    import openvino.opset13 as ops

    result = ops.result(node)
    result.output(0).get_tensor().set_names({name})
    return result


def _model(model: ov.Model, results: list[ov.Node]) -> ov.Model:
    import openvino as ov

    new_model = ov.Model(results, model.get_parameters(), model.get_friendly_name())
    if model.has_rt_info("ovembed"):
        new_model.set_rt_info(model.get_rt_info("ovembed"), "ovembed")
    return new_model


def _output(model: ov.Model, name: str) -> ov.Output:
    for result in model.get_results():
        if name in result.output(0).get_names():
            return result.input_value(0)
    raise ValueError(f"the model has no {name} output (not a bge_m3 export)")


def add_heads(model: ov.Model, heads: Heads) -> ov.Model:
    """A new ``ov.Model`` over ``last_hidden_state`` with the outputs dense, sparse and colbert (see the module)."""
    import openvino as ov
    import openvino.opset13 as ops

    hidden = _output(model, "last_hidden_state")
    shape = hidden.get_partial_shape()
    if shape.rank.is_static and shape.rank.get_length() != 3:
        raise ValueError(f"a bge_m3 encoder outputs [batch, seq, hidden], this one {shape}")
    if hidden.get_element_type() != ov.Type.f32:
        hidden = ops.convert(hidden, ov.Type.f32).output(0)
    cls = ops.gather(hidden, _i64(0), _i64(1)).output(0)  # [B, H]
    dense = _normalize(cls)
    sparse = ops.squeeze(ops.relu(_linear(hidden, heads.sparse_weight, heads.sparse_bias)), _i64([-1])).output(0)
    after_cls = ops.slice(hidden, _i64([1]), _i64([2**62]), _i64([1]), _i64([1])).output(0)  # [B, S-1, H]
    colbert = _normalize(_linear(after_cls, heads.colbert_weight, heads.colbert_bias))
    return _model(model, [_result(dense, DENSE), _result(sparse, SPARSE), _result(colbert, COLBERT)])


def add_packed_head(model: ov.Model) -> ov.Model:
    """Serving: the exported IR's three outputs packed into one ``[batch, seq, width]`` (see the module)."""
    import openvino.opset13 as ops

    dense, sparse, colbert = (_output(model, n) for n in (DENSE, SPARSE, COLBERT))
    hidden = dense.get_partial_shape()[1].get_length()
    dim = colbert.get_partial_shape()[2].get_length()
    width = packed_width(hidden, dim)

    def padded(x: ov.Output, have: int) -> ov.Output:
        if have == width:
            return x
        return ops.pad(x, _i64([0, 0, 0]), _i64([0, 0, width - have]), "constant",
                       ops.constant(np.float32(0.0))).output(0)

    first = padded(ops.unsqueeze(dense, _i64([1])).output(0), hidden)  # [B, 1, W]
    token_sparse = ops.slice(sparse, _i64([1]), _i64([2**62]), _i64([1]), _i64([1])).output(0)  # [B, S-1]
    tokens = ops.concat([colbert, ops.unsqueeze(token_sparse, _i64([-1])).output(0)], -1).output(0)
    packed = ops.concat([first, padded(tokens, dim + 1)], 1).output(0)  # [B, S, W]
    return _model(model, [_result(packed, PACKED)])


def unpack(rows: np.ndarray, hidden: int, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One document's packed rows ``[n, width]`` -> (dense ``[hidden]``, colbert ``[n - 1, dim]``, sparse weights
    ``[n - 1]`` of tokens ``1..n-1``)."""
    return (np.asarray(rows[0, :hidden], dtype=np.float32), np.asarray(rows[1:, :dim], dtype=np.float32),
            np.asarray(rows[1:, dim], dtype=np.float32))


def lexical_weights(ids: np.ndarray, weights: np.ndarray, unused: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    """(token ids ascending int64, weights float32): each id's largest weight, the ``unused`` ids (cls, eos, pad,
    unk) and weights <= 0 left out."""
    ids = np.asarray(ids, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float32)
    keep = (weights > 0) & ~np.isin(ids, np.fromiter(unused, dtype=np.int64))
    ids, weights = ids[keep], weights[keep]
    if ids.size == 0:
        return ids, weights
    order = np.lexsort((-weights, ids))  # by id, the largest weight first
    ids, weights = ids[order], weights[order]
    first = np.concatenate(([True], ids[1:] != ids[:-1]))
    return ids[first], weights[first]


def prune(ids: np.ndarray, weights: np.ndarray, *, top_k: int | None,
          threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep the weights above ``threshold``, then the ``top_k`` largest (ties: the lower id); ids stay ascending."""
    keep = np.flatnonzero(weights > max(threshold, 0.0))
    if top_k is not None and keep.size > top_k:
        keep = np.sort(keep[np.argsort(-weights[keep], kind="stable")[:top_k]])
    return ids[keep], weights[keep]


def lexical_score(q_ids: np.ndarray, q_w: np.ndarray, p_ids: np.ndarray, p_w: np.ndarray) -> float:
    """Sum over the token ids both have of the product of their weights (``compute_lexical_matching_score``)."""
    _, qi, pi = np.intersect1d(q_ids, p_ids, assume_unique=True, return_indices=True)
    return float(np.dot(q_w[qi].astype(np.float64), p_w[pi].astype(np.float64)))


def colbert_scores(query: np.ndarray, passages: list[np.ndarray]) -> np.ndarray:
    """FlagEmbedding's ``colbert_score`` per passage: MaxSim divided by the number of query vectors."""
    return maxsim(query, passages) / max(len(query), 1)


def combined(dense: np.ndarray, sparse: np.ndarray, colbert: np.ndarray,
             weights: tuple[float, float, float] = DEFAULT_WEIGHTS) -> np.ndarray:
    """``(w0 dense + w1 sparse + w2 colbert) / (w0 + w1 + w2)`` (``compute_score``'s ``colbert+sparse+dense``)."""
    w0, w1, w2 = weights
    return np.asarray((w0 * dense + w1 * sparse + w2 * colbert) / (w0 + w1 + w2), dtype=np.float32)
