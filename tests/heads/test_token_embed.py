"""The token head in OpenVINO against its numpy formula, and MaxSim against the loop ColBERT writes."""

from __future__ import annotations

import numpy as np

from ovembed.heads.token_embed import OUTPUT_NAME, add_projection, add_token_head, maxsim, reference_token_vectors


def _encoder(hidden: int) -> object:
    import openvino as ov
    import openvino.opset13 as ops

    ids = ops.parameter([-1, -1], ov.Type.i64, name="input_ids")
    mask = ops.parameter([-1, -1], ov.Type.i64, name="attention_mask")
    ids.output(0).get_tensor().set_names({"input_ids"})
    mask.output(0).get_tensor().set_names({"attention_mask"})
    table = np.random.default_rng(0).standard_normal((50, hidden)).astype(np.float32)
    gathered = ops.gather(ops.constant(table), ids, ops.constant(np.int64(0)))
    result = ops.result(gathered)
    result.output(0).get_tensor().set_names({"last_hidden_state"})
    return ov.Model([result], [ids, mask], "encoder"), table


def test_projection_and_normalisation_in_graph_match_numpy() -> None:
    import openvino as ov

    model, table = _encoder(8)
    rng = np.random.default_rng(1)
    weight, bias = rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    headed = add_token_head(add_projection(model, weight, bias))  # type: ignore[arg-type]
    assert OUTPUT_NAME in headed.outputs[0].get_names()
    ids = np.array([[1, 2, 3, 0], [4, 5, 0, 0]], dtype=np.int64)
    compiled = ov.Core().compile_model(headed, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled({"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)})[0]
    want = reference_token_vectors(table[ids], weight, bias)
    assert got.shape == (2, 4, 4)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, atol=1e-5)


def test_maxsim_is_the_colbert_loop() -> None:
    rng = np.random.default_rng(2)
    query = rng.standard_normal((5, 6)).astype(np.float32)
    docs = [rng.standard_normal((n, 6)).astype(np.float32) for n in (3, 1, 9)] + [np.zeros((0, 6), np.float32)]
    want = [sum(max(float(q @ d) for d in doc) for q in query) if len(doc) else 0.0 for doc in docs]
    np.testing.assert_allclose(maxsim(query, docs), want, rtol=1e-5)
    assert maxsim(query, []).shape == (0,)
