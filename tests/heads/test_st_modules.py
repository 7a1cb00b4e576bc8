"""The sentence-transformers head in-graph (heads.embeddings.add_head) against numpy versions of
sentence-transformers' Pooling/Dense/LayerNorm on a synthetic 'transformer', and the serving-side check
of a folder's modules.json against the recorded chain (heads.st_modules)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ovembed.config import Pooling
from ovembed.heads.st_modules import (
    HeadSpec,
    Layer,
    UnmappableModule,
    load_head,
    mark_prompt,
    prompt_token_count,
    served_head,
)

ov = pytest.importorskip("openvino")
H = 6


def _fake_transformer() -> ov.Model:
    """last_hidden_state[b, s, :] = embedding[input_ids[b, s]] + s / 10 (position-dependent, mask-free)."""
    import openvino.opset13 as ops

    ids = ops.parameter([-1, -1], ov.Type.i64, name="input_ids")
    mask = ops.parameter([-1, -1], ov.Type.i64, name="attention_mask")
    ids.output(0).get_tensor().set_names({"input_ids"})
    mask.output(0).get_tensor().set_names({"attention_mask"})
    table = np.random.default_rng(0).normal(size=(50, H)).astype(np.float32)
    emb = ops.gather(ops.constant(table), ids, ops.constant(np.int64(0)))
    seq = ops.gather(ops.shape_of(ids, "i64"), ops.constant(np.int64(1)), ops.constant(np.int64(0)))
    pos = ops.convert(ops.range(ops.constant(np.int64(0)), seq, ops.constant(np.int64(1)), "i64"), ov.Type.f32)
    hidden = ops.add(emb, ops.unsqueeze(ops.unsqueeze(ops.multiply(pos, ops.constant(np.float32(0.1))),
                                                      ops.constant(np.int64(0))), ops.constant(np.int64(-1))))
    result = ops.result(hidden)
    result.output(0).get_tensor().set_names({"last_hidden_state"})
    model = ov.Model([result], [ids, mask], "fake")
    model.get_rt_info()  # touch
    return model, table


def _hidden(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    return table[ids] + (np.arange(ids.shape[1], dtype=np.float32) * 0.1)[None, :, None]


def _st_pool(hidden: np.ndarray, mask: np.ndarray, mode: str, prompt: int) -> np.ndarray:
    """sentence-transformers 6.3 Pooling._forward_padded, in numpy, for one batch."""
    original = mask.copy()
    pool = mask.copy()
    first = np.argmax(original > 0, axis=1)
    if prompt:
        for b in range(len(pool)):
            pool[b, : first[b] + prompt] = 0
    m = pool[..., None].astype(np.float32)
    if mode == "cls":
        return hidden[np.arange(len(hidden)), np.argmax(pool, axis=1)]
    if mode == "lasttoken":
        last = pool.shape[1] - 1 - np.argmax(pool[:, ::-1], axis=1)
        return hidden[np.arange(len(hidden)), last]
    if mode == "max":
        return np.where(m > 0, hidden, -np.inf).max(axis=1)
    if mode in ("mean", "mean_sqrt_len_tokens"):
        counts = np.maximum(m.sum(axis=1), 1e-9)
        return (hidden * m).sum(axis=1) / (counts if mode == "mean" else np.sqrt(counts))
    weights = (np.arange(1, hidden.shape[1] + 1)[None, :] - first[:, None])[..., None] * m
    return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def _run(spec: HeadSpec, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from ovembed.heads.embeddings import add_head

    model, _ = _fake_transformer()
    compiled = ov.Core().compile_model(add_head(model, spec), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.asarray(compiled({"input_ids": ids, "attention_mask": mask})[0])


@pytest.mark.parametrize("left", [False, True])
@pytest.mark.parametrize("prompt", [0, 2])
@pytest.mark.parametrize("mode", ["cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"])
def test_pooling_modes_match_sentence_transformers(mode: str, prompt: int, left: bool) -> None:
    _, table = _fake_transformer()
    ids = np.array([[3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 0, 0]], dtype=np.int64)
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=np.int64)
    if left:
        ids, mask = ids.copy(), mask.copy()
        ids[1] = [0, 0, 9, 10, 11, 12]
        mask[1] = [0, 0, 1, 1, 1, 1]
    spec = HeadSpec((mode,), include_prompt=prompt == 0, normalize=False)
    fed = mark_prompt(ids, mask, prompt) if prompt else ids
    got = _run(spec, fed, mask)
    ref = _st_pool(_hidden(ids, table), mask, mode, prompt)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_concatenated_modes_dense_layernorm_normalize() -> None:
    _, table = _fake_transformer()
    rng = np.random.default_rng(1)
    w1, b1 = rng.normal(size=(5, 2 * H)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    ln_w, ln_b = rng.normal(size=5).astype(np.float32), rng.normal(size=5).astype(np.float32)
    w2 = rng.normal(size=(3, 5)).astype(np.float32)
    spec = HeadSpec(("cls", "mean"), True,
                    (Layer("dense", "2_Dense", activation="tanh"), Layer("layernorm", "3_LayerNorm", eps=1e-5),
                     Layer("dense", "4_Dense", activation="gelu_tanh"), Layer("normalize", "5_Normalize")),
                    normalize=False,
                    weights={"2_Dense/weight": w1, "2_Dense/bias": b1, "3_LayerNorm/weight": ln_w,
                             "3_LayerNorm/bias": ln_b, "4_Dense/weight": w2})
    ids = np.array([[3, 4, 5, 6], [9, 10, 0, 0]], dtype=np.int64)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=np.int64)
    hidden = _hidden(ids, table)
    x = np.concatenate([_st_pool(hidden, mask, "cls", 0), _st_pool(hidden, mask, "mean", 0)], axis=1)
    x = np.tanh(x @ w1.T + b1)
    x = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5) * ln_w + ln_b
    x = x @ w2.T
    x = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(_run(spec, ids, mask), x, rtol=1e-4, atol=1e-5)
    assert spec.output_dim(H) == 3 and not spec.is_simple


def test_prompt_marks() -> None:
    assert prompt_token_count([2, 7, 8, 3], {2, 3}) == 3  # [CLS] p p [SEP]: the trailing special is not prompt
    assert prompt_token_count([7, 8], {2, 3}) == 2
    ids = np.array([[5, 6, 7], [0, 5, 6]])
    got = mark_prompt(ids, np.array([[1, 1, 1], [0, 1, 1]]), 2)
    assert got.tolist() == [[-6, -7, 7], [0, -6, -7]]


def _folder(tmp_path: Path, *modules: tuple[str, str]) -> Path:
    entries = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    entries += [{"idx": i + 1, "name": str(i + 1), "path": p, "type": t} for i, (p, t) in enumerate(modules)]
    (tmp_path / "modules.json").write_text(json.dumps(entries))
    (tmp_path / "1_Pooling").mkdir(exist_ok=True)
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "mean"}))
    return tmp_path


def test_serving_refuses_modules_the_graph_lacks(tmp_path: Path) -> None:
    folder = _folder(tmp_path, ("1_Pooling", "sentence_transformers.models.Pooling"),
                     ("2_Dense", "sentence_transformers.models.Dense"))
    with pytest.raises(UnmappableModule, match=r"2_Dense \(sentence_transformers.models.Dense\)"):
        served_head(folder, {}, Pooling.MEAN, True)  # an OVMS export, or ovembed's before module chains
    recorded = HeadSpec(("mean",), True, (Layer("dense", "2_Dense", activation="tanh"),), True,
                        {"2_Dense/weight": np.ones((4, H), np.float32)})
    recorded.save_weights(folder)
    head = served_head(folder, {"head": recorded.record()}, Pooling.MEAN, True)
    assert head.output_dim(H) == 4 and head.layers[0].activation == "tanh"
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": "mean", "include_prompt": False}))
    with pytest.raises(UnmappableModule, match="include_prompt"):
        served_head(folder, {"head": recorded.record()}, Pooling.MEAN, True)


def test_plain_folders_still_serve(tmp_path: Path) -> None:
    folder = _folder(tmp_path, ("1_Pooling", "sentence_transformers.models.Pooling"),
                     ("2_Normalize", "sentence_transformers.models.Normalize"))
    assert served_head(folder, {}, Pooling.MEAN, True) == HeadSpec.simple(Pooling.MEAN, True)
    assert load_head(folder, {}, True) is None
    head = served_head(folder, {"head": HeadSpec(("mean",)).record()}, Pooling.CLS, True)
    assert head.modes == ("cls",)  # graph.pbtxt's pooling wins over a single recorded OVMS pooling


_LAYER_NORM_ON_ISA = """
import numpy as np, openvino as ov, openvino.opset13 as ops
from ovembed.heads.embeddings import _layer
from ovembed.heads.st_modules import HeadSpec, Layer
rng = np.random.default_rng(0)
for width in (8, 24, 40):
    x = ops.parameter([-1, width], ov.Type.f32)
    spec = HeadSpec(("cls",), True, (), normalize=False, weights={
        "n/weight": rng.normal(size=width).astype(np.float32), "n/bias": rng.normal(size=width).astype(np.float32)})
    out = _layer(x.output(0), Layer("layernorm", "n", eps=1e-5), spec)
    compiled = ov.Core().compile_model(ov.Model([ops.result(out)], [x]), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    xs = rng.normal(size=(3, width)).astype(np.float32) * 3 + 1
    ref = (xs - xs.mean(1, keepdims=True)) / np.sqrt(xs.var(1, keepdims=True) + 1e-5)
    ref = ref * spec.weights["n/weight"] + spec.weights["n/bias"]
    np.testing.assert_allclose(np.asarray(compiled({0: xs})[0]), ref, rtol=1e-4, atol=1e-5)
print("ok")
"""


@pytest.mark.parametrize("isa", ["AVX2", "AVX512_CORE", ""])
def test_layer_norm_head_on_each_isa(isa: str) -> None:
    """LayerNorm widths that are not multiples of 16 (openvino 2026.4's MVN kernel segfaults on them under
    AVX2), in a subprocess with the CPU plugin limited to ``isa`` (ONEDNN_MAX_CPU_ISA is honoured)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa} if isa else dict(os.environ)
    done = subprocess.run([sys.executable, "-c", _LAYER_NORM_ON_ISA], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr[-2000:])
