"""BGE-M3's heads in OpenVINO against FlagEmbedding's formulas written out here (dense CLS normalised, relu(linear)
token weights, colbert over the tokens after CLS normalised), the packing the server reads, and the scores."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from ovembed.heads.bge_m3 import (
    COLBERT,
    DENSE,
    PACKED,
    SPARSE,
    Heads,
    add_heads,
    add_packed_head,
    colbert_scores,
    combined,
    lexical_score,
    lexical_weights,
    prune,
    unpack,
)
from tests.heads.test_token_embed import _encoder

UNUSED = (0, 1, 2, 3)  # cls, pad, eos, unk


def _heads(hidden: int, dim: int, seed: int) -> Heads:
    rng = np.random.default_rng(seed)
    return Heads(rng.standard_normal((1, hidden)).astype(np.float32), np.float32([0.2]),
                 rng.standard_normal((dim, hidden)).astype(np.float32), rng.standard_normal(dim).astype(np.float32))


def _flag_reference(hidden: np.ndarray, h: Heads) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FlagEmbedding's M3 forward, in numpy: dense, token weights, colbert vectors."""
    cls = hidden[:, 0]
    dense = cls / np.linalg.norm(cls, axis=-1, keepdims=True)
    weights = np.maximum(hidden @ h.sparse_weight.T + h.sparse_bias, 0)[..., 0]
    colbert = hidden[:, 1:] @ h.colbert_weight.T + h.colbert_bias
    return dense, weights, colbert / np.linalg.norm(colbert, axis=-1, keepdims=True)


def _flag_lexical(weights: np.ndarray, ids: list[int]) -> dict[int, float]:
    """FlagEmbedding's ``_process_token_weights``."""
    result: dict[int, float] = defaultdict(int)
    for w, idx in zip(weights, ids, strict=True):
        if idx not in UNUSED and w > 0 and w > result[idx]:
            result[idx] = float(w)
    return dict(result)


@pytest.mark.parametrize(("hidden", "dim"), [(8, 8), (8, 4)])
def test_three_outputs_and_packing_match_the_formulas(hidden: int, dim: int) -> None:
    import openvino as ov

    model, table = _encoder(hidden)
    h = _heads(hidden, dim, 3)
    three = add_heads(model, h)  # type: ignore[arg-type]
    assert [next(iter(o.get_names())) for o in three.outputs] == [DENSE, SPARSE, COLBERT]
    ids = np.array([[0, 5, 7, 5, 2], [0, 9, 2, 1, 1]], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": (ids != 1).astype(np.int64)}
    core = ov.Core()
    got = core.compile_model(three, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(feed)
    want = _flag_reference(table[ids], h)
    for name, ref in zip((DENSE, SPARSE, COLBERT), want, strict=True):
        np.testing.assert_allclose(got[name], ref, atol=1e-5)
    packed_model = add_packed_head(three)
    assert PACKED in packed_model.outputs[0].get_names()
    packed = core.compile_model(packed_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(feed)[0]
    assert packed.shape == (2, 5, max(hidden, dim + 1))
    dense, colbert, weights = unpack(packed[0], hidden, dim)
    np.testing.assert_allclose(dense, want[0][0], atol=1e-5)
    np.testing.assert_allclose(colbert, want[2][0], atol=1e-5)
    np.testing.assert_allclose(weights, want[1][0, 1:], atol=1e-5)


def test_lexical_weights_are_flag_embeddings_dict() -> None:
    ids = [0, 7, 9, 7, 3, 11, 2, 1]
    weights = np.float32([0.9, 0.3, 0.0, 0.5, 0.8, 0.2, 0.7, 0.4])
    got_ids, got_w = lexical_weights(np.array(ids), weights, UNUSED)
    assert dict(zip(got_ids.tolist(), got_w.tolist(), strict=True)) == pytest.approx(_flag_lexical(weights, ids))
    assert got_ids.tolist() == sorted(got_ids.tolist())
    kept = prune(got_ids, got_w, top_k=1, threshold=0.0)
    assert kept[0].tolist() == [7] and kept[1].tolist() == pytest.approx([0.5])


def test_scores_are_compute_scores() -> None:
    rng = np.random.default_rng(4)
    q = rng.standard_normal((3, 4)).astype(np.float32)
    docs = [rng.standard_normal((n, 4)).astype(np.float32) for n in (2, 5)]
    want = [sum(max(float(qi @ dj) for dj in d) for qi in q) / len(q) for d in docs]  # colbert_score
    np.testing.assert_allclose(colbert_scores(q, docs), want, rtol=1e-5)
    assert lexical_score(np.array([3, 5, 9]), np.float32([0.5, 1.0, 2.0]), np.array([5, 9, 12]),
                         np.float32([0.25, 0.5, 3.0])) == pytest.approx(1.0 * 0.25 + 2.0 * 0.5)
    got = combined(np.float32([0.5]), np.float32([0.25]), np.float32([0.75]))
    assert got[0] == pytest.approx((0.4 * 0.5 + 0.2 * 0.25 + 0.4 * 0.75) / 1.0)
    assert combined(np.float32([1.0]), np.float32([0.0]), np.float32([0.0]), (1, 1, 2))[0] == pytest.approx(0.25)
