"""Pooling and L2 normalisation appended to the model graph, so they run inside OpenVINO.

The exported IR outputs ``last_hidden_state`` ``[batch, seq, hidden]``; :func:`add_pooling`
returns a model whose single output ``sentence_embedding`` is ``[batch, hidden]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ovembed.config import Pooling

if TYPE_CHECKING:
    import openvino as ov

OUTPUT_NAME = "sentence_embedding"


def _hidden_state_output(model: ov.Model) -> ov.Output:
    """The tensor feeding the ``last_hidden_state`` Result (not the Result node itself)."""
    results = model.get_results()
    chosen = next((r for r in results if "last_hidden_state" in r.output(0).get_names()), results[0])
    return chosen.input_value(0)


def add_pooling(model: ov.Model, pooling: Pooling, normalize: bool) -> ov.Model:
    """A new ``ov.Model`` computing pooled (and optionally normalised) embeddings in-graph.

    - CLS: the first position.
    - MEAN: sum of hidden states over real tokens / number of real tokens.
    - LAST: the last real token, found from the attention mask as the highest position whose
      mask is 1, which is right for both left and right padding.
    """
    import openvino as ov
    import openvino.opset13 as ops

    hidden = _hidden_state_output(model)
    if hidden.get_element_type() != ov.Type.f32:
        hidden = ops.convert(hidden, ov.Type.f32).output(0)
    mask_param = next((p for p in model.get_parameters() if "attention_mask" in p.output(0).get_names()), None)
    if mask_param is None and pooling is not Pooling.CLS:
        raise ValueError(f"{pooling.value} pooling needs an attention_mask input")

    def i64(value: int | list[int]) -> ov.Node:
        return ops.constant(np.array(value, dtype=np.int64))

    if pooling is Pooling.CLS:
        pooled = ops.gather(hidden, i64(0), i64(1))
    elif pooling is Pooling.MEAN:
        assert mask_param is not None
        mask = ops.convert(ops.unsqueeze(mask_param.output(0), i64([-1])), ov.Type.f32)  # [B, S, 1]
        summed = ops.reduce_sum(ops.multiply(hidden, mask), i64([1]), keep_dims=False)
        counts = ops.maximum(ops.reduce_sum(mask, i64([1]), keep_dims=False), ops.constant(np.float32(1e-9)))
        pooled = ops.divide(summed, counts)
    elif pooling is Pooling.LAST:
        assert mask_param is not None
        mask = ops.convert(mask_param.output(0), ov.Type.i64)  # [B, S]
        seq_len = ops.gather(ops.shape_of(mask, "i64"), i64(1), i64(0))
        positions = ops.range(i64(0), seq_len, i64(1), "i64")
        last = ops.reduce_max(ops.multiply(mask, positions), i64([1]), keep_dims=False)  # [B]
        pooled = ops.gather(hidden, last, i64(1), batch_dims=1)
    else:  # pragma: no cover - the enum is closed
        raise ValueError(f"unknown pooling {pooling}")

    out = pooled.output(0)
    if normalize:
        out = ops.normalize_l2(out, i64([1]), 1e-12, "max").output(0)
    result = ops.result(out)
    result.output(0).get_tensor().set_names({OUTPUT_NAME})
    new_model = ov.Model([result], model.get_parameters(), model.get_friendly_name())
    for key in ("ovembed",):
        if model.has_rt_info(key):
            new_model.set_rt_info(model.get_rt_info(key), key)
    return new_model
