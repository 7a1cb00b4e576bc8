"""The SPLADE head in-graph against its numpy reference, on a synthetic masked LM (logits = a row of a
random table per token), with padding; and pruning (top-k, threshold, ties)."""

from __future__ import annotations

import numpy as np
import pytest

from ovembed.heads.sparse import OUTPUT_NAME, add_sparse_head, prune, reference_weights

VOCAB = 50


def _masked_lm(table: np.ndarray):  # type: ignore[no-untyped-def]
    import openvino as ov
    import openvino.opset13 as ops

    ids = ops.parameter([-1, -1], ov.Type.i64, name="input_ids")
    ids.output(0).get_tensor().set_names({"input_ids"})
    mask = ops.parameter([-1, -1], ov.Type.i64, name="attention_mask")
    mask.output(0).get_tensor().set_names({"attention_mask"})
    logits = ops.gather(ops.constant(table), ids, ops.constant(np.array(0, dtype=np.int64)))
    result = ops.result(logits)
    result.output(0).get_tensor().set_names({"logits"})
    return ov.Model([result], [ids, mask], "tiny-mlm")


def test_head_equals_reference_and_ignores_padding() -> None:
    import openvino as ov

    rng = np.random.default_rng(0)
    table = rng.standard_normal((VOCAB, VOCAB)).astype(np.float32)
    model = add_sparse_head(_masked_lm(table))
    assert [o.get_any_name() for o in model.outputs] == [OUTPUT_NAME]
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ids = np.array([[1, 5, 7, 2, 0, 0], [1, 9, 9, 9, 3, 2]], dtype=np.int64)
    mask = (np.arange(6) < np.array([[4], [6]])).astype(np.int64)
    got = np.asarray(compiled({"input_ids": ids, "attention_mask": mask})[0])
    ref = reference_weights(table[ids], mask)
    assert got.shape == (2, VOCAB)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert (got >= 0).all() and (got > 0).any()
    # padding (id 0 at positions 4, 5) does not contribute: the same text without padding is equal
    alone = np.asarray(compiled({"input_ids": ids[:1, :4], "attention_mask": mask[:1, :4]})[0])
    np.testing.assert_allclose(got[0], alone[0], rtol=1e-6)
    with_pad = reference_weights(table[ids[:1]], np.ones_like(mask[:1]))
    assert not np.allclose(with_pad[0], got[0])  # the pad token's logits would have changed it


def test_head_refuses_non_mlm_outputs() -> None:
    import openvino as ov
    import openvino.opset13 as ops

    ids = ops.parameter([-1, -1], ov.Type.i64, name="input_ids")
    mask = ops.parameter([-1, -1], ov.Type.i64, name="attention_mask")
    flat = ops.result(ops.convert(ids, ov.Type.f32))
    with pytest.raises(ValueError, match=r"logits \[batch, seq, vocab\]"):
        add_sparse_head(ov.Model([flat], [ids, mask], "not-mlm"))


def test_prune_threshold_top_k_and_ties() -> None:
    row = np.array([0.0, 0.5, 2.0, 0.5, 0.1, 3.0, 0.0], dtype=np.float32)
    idx, val = prune(row, top_k=None, threshold=0.0)
    assert idx.tolist() == [1, 2, 3, 4, 5] and val.tolist() == pytest.approx([0.5, 2.0, 0.5, 0.1, 3.0])
    idx, val = prune(row, top_k=None, threshold=0.5)  # strictly above
    assert idx.tolist() == [2, 5]
    idx, val = prune(row, top_k=3, threshold=0.0)  # 3.0, 2.0 and the lower-index 0.5; indices ascending
    assert idx.tolist() == [1, 2, 5] and val.tolist() == pytest.approx([0.5, 2.0, 3.0])
    idx, _ = prune(row, top_k=10, threshold=0.0)
    assert idx.tolist() == [1, 2, 3, 4, 5]
    idx, val = prune(np.zeros(4, dtype=np.float32), top_k=2, threshold=0.0)
    assert idx.size == 0 and val.dtype == np.float32 and idx.dtype == np.int64
