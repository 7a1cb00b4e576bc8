"""The embeddings head appended to the model graph, so it runs inside OpenVINO.

The exported IR outputs ``last_hidden_state`` ``[batch, seq, hidden]``; :func:`add_head` returns a model
whose single output ``sentence_embedding`` is ``[batch, dim]``: the sentence-transformers chain a
:class:`~ovembed.heads.st_modules.HeadSpec` describes (pooling modes concatenated, then Dense, LayerNorm
and Normalize layers), then the optional L2 normalisation. :func:`add_pooling` is the head OVMS's graph
describes (one pooling, normalisation).

Prompt tokens excluded from pooling (``include_prompt: false``) are marked in-band: the server sends
their ids as ``-1 - id``; the graph restores the ids for the transformer and drops the marked positions
from the pooling mask. Nothing else changes for a model whose head pools every token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ovembed.config import Pooling
from ovembed.heads.st_modules import HeadSpec, Layer

if TYPE_CHECKING:
    import openvino as ov

OUTPUT_NAME = "sentence_embedding"


def _hidden_state_output(model: ov.Model) -> ov.Output:
    """The tensor feeding the ``last_hidden_state`` Result (not the Result node itself)."""
    results = model.get_results()
    chosen = next((r for r in results if "last_hidden_state" in r.output(0).get_names()), results[0])
    return chosen.input_value(0)


def _parameter(model: ov.Model, name: str) -> ov.Node | None:
    return next((p for p in model.get_parameters() if name in p.output(0).get_names()), None)


def _i64(value: int | list[int]) -> ov.Node:
    import openvino.opset13 as ops

    return ops.constant(np.array(value, dtype=np.int64))


def _f32(value: float | np.ndarray) -> ov.Node:
    import openvino.opset13 as ops

    return ops.constant(np.asarray(value, dtype=np.float32))


def _unmark_prompt_ids(model: ov.Model) -> ov.Output:
    """Restore ``-1 - id`` marked ids for every consumer of input_ids; returns the i64 'not a prompt' mask."""
    import openvino as ov
    import openvino.opset13 as ops

    ids_param = _parameter(model, "input_ids")
    if ids_param is None:
        raise ValueError("include_prompt false needs an input_ids input")
    ids = ids_param.output(0)
    targets = list(ids.get_target_inputs())
    zero = ops.constant(np.array(0, dtype=ids.get_element_type().to_dtype()))
    minus_one = ops.constant(np.array(-1, dtype=ids.get_element_type().to_dtype()))
    marked = ops.less(ids, zero)
    restored = ops.select(marked, ops.subtract(minus_one, ids), ids)
    for target in targets:
        target.replace_source_output(restored.output(0))
    return ops.convert(ops.logical_not(marked), ov.Type.i64).output(0)


def _pool(hidden: ov.Output, mask: ov.Output | None, keep: ov.Output | None, mode: str) -> ov.Output:
    """One sentence-transformers pooling mode; ``mask`` the i64 attention mask ``[B, S]``, ``keep`` the
    i64 not-a-prompt mask (None: every token)."""
    import openvino as ov
    import openvino.opset13 as ops

    if mask is None:
        if mode != "cls":
            raise ValueError(f"{mode} pooling needs an attention_mask input")
        return ops.gather(hidden, _i64(0), _i64(1)).output(0)
    pool = mask if keep is None else ops.multiply(mask, keep).output(0)
    seq_len = ops.gather(ops.shape_of(mask, "i64"), _i64(1), _i64(0))
    positions = ops.range(_i64(0), seq_len, _i64(1), "i64")  # [S]
    maskf = ops.unsqueeze(ops.convert(pool, ov.Type.f32), _i64([-1]))  # [B, S, 1]
    if mode == "cls":  # the first pooled position (sentence-transformers: argmax of the mask)
        beyond = ops.select(ops.greater(pool, _i64(0)), ops.broadcast(positions, ops.shape_of(pool, "i64")),
                            ops.broadcast(seq_len, ops.shape_of(pool, "i64")))
        first = ops.minimum(ops.reduce_min(beyond, _i64([1]), keep_dims=False), ops.subtract(seq_len, _i64(1)))
        return ops.gather(hidden, first, _i64(1), batch_dims=1).output(0)
    if mode == "lasttoken":
        last = ops.reduce_max(ops.multiply(pool, positions), _i64([1]), keep_dims=False)  # [B]
        return ops.gather(hidden, last, _i64(1), batch_dims=1).output(0)
    if mode in ("mean", "mean_sqrt_len_tokens"):
        summed = ops.reduce_sum(ops.multiply(hidden, maskf), _i64([1]), keep_dims=False)
        counts = ops.maximum(ops.reduce_sum(maskf, _i64([1]), keep_dims=False), _f32(1e-9))
        return ops.divide(summed, counts if mode == "mean" else ops.sqrt(counts)).output(0)
    if mode == "max":
        neg = ops.broadcast(_f32(-np.inf), ops.shape_of(hidden, "i64"))
        picked = ops.select(ops.greater(maskf, _f32(0.0)), hidden, neg)
        return ops.reduce_max(picked, _i64([1]), keep_dims=False).output(0)
    if mode == "weightedmean":  # weights 1, 2, ... from the first real token (left padding)
        ones = ops.broadcast(positions, ops.shape_of(mask, "i64"))
        real = ops.select(ops.greater(mask, _i64(0)), ones, ops.broadcast(seq_len, ops.shape_of(mask, "i64")))
        pad = ops.reduce_min(real, _i64([1]), keep_dims=True)  # [B, 1]
        weights = ops.convert(ops.subtract(ops.add(ones, _i64(1)), pad), ov.Type.f32)
        wmask = ops.multiply(maskf, ops.unsqueeze(weights, _i64([-1])))
        summed = ops.reduce_sum(ops.multiply(hidden, wmask), _i64([1]), keep_dims=False)
        total = ops.maximum(ops.reduce_sum(wmask, _i64([1]), keep_dims=False), _f32(1e-9))
        return ops.divide(summed, total).output(0)
    raise ValueError(f"unknown pooling mode {mode!r}")


def _activation(x: ov.Output, name: str) -> ov.Output:
    import openvino.opset13 as ops

    if name == "identity":
        return x
    if name == "tanh":
        return ops.tanh(x).output(0)
    if name == "relu":
        return ops.relu(x).output(0)
    if name == "sigmoid":
        return ops.sigmoid(x).output(0)
    if name == "silu":
        return ops.swish(x).output(0)
    if name in ("gelu", "gelu_tanh"):
        return ops.gelu(x, "erf" if name == "gelu" else "tanh").output(0)
    raise ValueError(f"unknown activation {name!r}")


def _layer_norm(x: ov.Output, width: int, eps: float) -> ov.Output:
    """(x - mean) / sqrt(var + eps) over the last axis, the means as MatMuls with a 1/width column.

    Not ``MVN`` (nor the ReduceMean form OpenVINO fuses into it): the CPU plugin's MVN kernel on AVX2
    segfaults when the axis is not a multiple of 16 (openvino 2026.4.1, 2-D [B, 24] seen under
    ONEDNN_MAX_CPU_ISA=AVX2); head widths are whatever the Dense layer chose. Same values to 1e-6.
    """
    import openvino.opset13 as ops

    average = _f32(np.full((width, 1), 1.0 / width))
    centred = ops.subtract(x, ops.matmul(x, average, False, False))
    variance = ops.matmul(ops.multiply(centred, centred), average, False, False)
    return ops.divide(centred, ops.sqrt(ops.add(variance, _f32(eps)))).output(0)


def _layer(x: ov.Output, layer: Layer, spec: HeadSpec) -> ov.Output:
    import openvino.opset13 as ops

    if layer.kind == "normalize":
        return ops.normalize_l2(x, _i64([1]), 1e-12, "max").output(0)
    weight = spec.weights[f"{layer.name}/weight"]
    bias = spec.weights.get(f"{layer.name}/bias")
    if layer.kind == "layernorm":
        out = _layer_norm(x, weight.shape[-1], layer.eps)
        out = ops.multiply(out, _f32(weight))
        return (ops.add(out, _f32(bias)) if bias is not None else out).output(0)
    if layer.kind != "dense":
        raise ValueError(f"unknown head layer {layer.kind!r}")
    y = ops.matmul(x, _f32(weight), False, True)
    if bias is not None:
        y = ops.add(y, _f32(bias))
    y_out = _activation(y.output(0), layer.activation)
    if layer.residual:
        projection = spec.weights.get(f"{layer.name}/residual")
        skip = x if projection is None else ops.matmul(x, _f32(projection), False, True).output(0)
        y_out = ops.add(y_out, skip).output(0)
    return y_out


def add_head(model: ov.Model, spec: HeadSpec) -> ov.Model:
    """A new ``ov.Model`` computing ``spec``'s embeddings in-graph (output ``sentence_embedding``)."""
    import openvino as ov
    import openvino.opset13 as ops

    hidden = _hidden_state_output(model)
    if hidden.get_element_type() != ov.Type.f32:
        hidden = ops.convert(hidden, ov.Type.f32).output(0)
    mask_param = _parameter(model, "attention_mask")
    mask = ops.convert(mask_param.output(0), ov.Type.i64).output(0) if mask_param is not None else None
    keep = None if spec.include_prompt else _unmark_prompt_ids(model)
    pooled = [_pool(hidden, mask, keep, mode) for mode in spec.modes]
    out = pooled[0] if len(pooled) == 1 else ops.concat(pooled, 1).output(0)
    for layer in spec.layers:
        out = _layer(out, layer, spec)
    if spec.normalize:
        out = ops.normalize_l2(out, _i64([1]), 1e-12, "max").output(0)
    result = ops.result(out)
    result.output(0).get_tensor().set_names({OUTPUT_NAME})
    new_model = ov.Model([result], model.get_parameters(), model.get_friendly_name())
    for key in ("ovembed",):
        if model.has_rt_info(key):
            new_model.set_rt_info(model.get_rt_info(key), key)
    return new_model


def add_pooling(model: ov.Model, pooling: Pooling, normalize: bool) -> ov.Model:
    """The head OVMS's graph describes: CLS (the first position), MEAN (over real tokens) or LAST (the
    last real token, for left and right padding), then optionally L2 normalisation."""
    return add_head(model, HeadSpec.simple(pooling, normalize))
