"""The classify head: labels and problem type read from config.json, record parsing, and the in-graph
logits + softmax/sigmoid (and pair token types) against numpy, on a small hand-built OpenVINO model."""

from __future__ import annotations

import numpy as np
import pytest

from ovembed.heads.classify import (
    OUTPUT_NAME,
    ClassifyHead,
    activate,
    add_classify_head,
    labels_of,
    problem_type_of,
)

W = np.random.default_rng(3).standard_normal((3, 3)).astype(np.float32)


def test_labels_in_column_order_and_defaults() -> None:
    assert labels_of({"id2label": {"1": "neutral", "0": "contradiction", "2": "entailment"}}) == (
        "contradiction", "neutral", "entailment")
    assert labels_of({"num_labels": 3}) == ("LABEL_0", "LABEL_1", "LABEL_2")
    with pytest.raises(ValueError, match=r"not 0\.\.1"):
        labels_of({"id2label": {"0": "a", "2": "b"}})
    assert problem_type_of({}) == "single_label_classification"
    assert problem_type_of({"problem_type": "multi_label_classification"}) == "multi_label_classification"
    with pytest.raises(ValueError, match="'regression' is not a classification"):
        problem_type_of({"problem_type": "regression"})


def test_record_round_trip_and_refusals() -> None:
    head = ClassifyHead(("neg", "pos", "mixed"), "multi_label_classification", 102)
    assert head.activation == "sigmoid"
    assert ClassifyHead.from_record(head.describe()) == head
    with pytest.raises(ValueError, match="no classify_head"):
        ClassifyHead.from_record(None)
    with pytest.raises(ValueError, match="at least two names"):
        ClassifyHead.from_record({"labels": ["only"]})
    with pytest.raises(ValueError, match="problem_type 'regression'"):
        ClassifyHead.from_record({"labels": ["a", "b"], "problem_type": "regression"})


def _model():  # type: ignore[no-untyped-def]
    """logits = onehot-ish features of (ids, types) @ W: [batch, 3], outputs named 'logits'."""
    import openvino as ov
    import openvino.opset13 as ops

    ids = ops.parameter([-1, -1], ov.Type.i64, name="input_ids")
    mask = ops.parameter([-1, -1], ov.Type.i64, name="attention_mask")
    types = ops.parameter([-1, -1], ov.Type.i64, name="token_type_ids")
    for p, name in ((ids, "input_ids"), (mask, "attention_mask"), (types, "token_type_ids")):
        p.output(0).get_tensor().set_names({name})
    f32 = ov.Type.f32
    feats = ops.concat([ops.reduce_sum(ops.convert(ids, f32), [1], True),
                        ops.reduce_sum(ops.convert(mask, f32), [1], True),
                        ops.reduce_sum(ops.convert(types, f32), [1], True)], 1)
    logits = ops.matmul(feats, ops.constant(W / 10), False, False)
    result = ops.result(logits)
    result.output(0).get_tensor().set_names({"logits"})
    return ov.Model([result], [ids, mask, types], "toy")


@pytest.mark.parametrize("problem", ["single_label_classification", "multi_label_classification"])
def test_in_graph_head_matches_numpy(problem: str) -> None:
    import openvino as ov

    sep = 9
    head = ClassifyHead(("a", "b", "c"), problem, sep)  # type: ignore[arg-type]
    model = add_classify_head(_model(), head)
    assert [sorted(p.get_names()) for p in model.inputs] == [["input_ids"], ["attention_mask"]]
    assert OUTPUT_NAME in model.outputs[0].get_names()
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ids = np.array([[1, 4, sep, 5, 6, sep], [1, 7, sep, 0, 0, 0]], dtype=np.int64)
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=np.int64)
    out = compiled({"input_ids": ids, "attention_mask": mask})[0]
    types = np.array([[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0]])  # 1 after the first separator, padding 0
    logits = (np.stack([ids.sum(1), mask.sum(1), types.sum(1)], 1).astype(np.float32) @ W / 10)
    assert out.shape == (2, 6)
    np.testing.assert_allclose(out[:, :3], logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[:, 3:], activate(logits, problem), rtol=1e-5, atol=1e-6)  # type: ignore[arg-type]
    if problem == "single_label_classification":
        np.testing.assert_allclose(out[:, 3:].sum(1), 1.0, rtol=1e-6)


def test_head_refuses_a_label_count_the_model_does_not_output() -> None:
    with pytest.raises(ValueError, match="outputs 3 logits, the head names 2 labels"):
        add_classify_head(_model(), ClassifyHead(("a", "b")))
