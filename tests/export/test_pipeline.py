"""Export pipeline end to end on tiny random models of every family and on the real MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ovembed.config import ExportConfig, Pooling, WeightFormat
from ovembed.errors import ExportError
from ovembed.export import pipeline
from ovembed.export.pipeline import export_model
from ovembed.export.verify import SENTENCES, compare
from ovembed.graphs import read_graph
from ovembed.repository import read_config, read_record

pytestmark = pytest.mark.filterwarnings("ignore")

EXPECTED = {  # family -> (pooling, max_length)
    "bert-mean": (Pooling.MEAN, 64),  # sentence_bert_config.json max_seq_length
    "bert-cls": (Pooling.CLS, 64),
    "xlmr": (Pooling.CLS, 64),  # no 1_Pooling -> CLS; 66 positions - padding offset 2
    "mpnet": (Pooling.MEAN, 64),
    "qwen3": (Pooling.LAST, 128),
}
MODEL_FILES = ("openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "openvino_tokenizer.bin",
               "tokenizer.json", "tokenizer_config.json", "config.json", "graph.pbtxt", "ovembed_model.json")


def _export(source: Path, repo: Path, name: str, fmt: WeightFormat, **kw: object):  # type: ignore[no-untyped-def]
    cfg = ExportConfig(source_model=str(source), model_name=name, model_repository_path=repo, weight_format=fmt, **kw)
    return export_model(cfg)


@pytest.mark.parametrize("fmt", [WeightFormat.FP32, WeightFormat.INT8], ids=str)
@pytest.mark.parametrize("family", list(EXPECTED))
def test_tiny_model_families(tiny_source, tmp_path: Path, family: str, fmt: WeightFormat) -> None:  # type: ignore[no-untyped-def]
    pooling, max_length = EXPECTED[family]
    result = _export(tiny_source(family), tmp_path, f"org/{family}", fmt)
    model_dir = tmp_path / "org" / family
    assert result.model_dir == model_dir and not result.reused
    assert result.pooling is pooling and result.max_length == max_length
    for name in MODEL_FILES:
        assert (model_dir / name).is_file(), name

    options = read_graph(model_dir)
    assert options.pooling is pooling and options.normalize_embeddings and not options.truncate
    assert options.target_device == "CPU" and options.plugin_config == {"NUM_STREAMS": "1"}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config == {"model_config_list": [{"config": {"name": f"org/{family}", "base_path": f"org/{family}"}}]}

    record = read_record(model_dir)
    assert record["weight_format"] == fmt.value and record["pooling"] == pooling.value
    assert record["max_length"] == max_length
    assert {"openvino", "optimum-intel", "nncf", "ovembed"} <= set(record["versions"])
    # Independent check with the fp32 threshold for fp32 exports.
    if fmt is WeightFormat.FP32:
        check = compare(model_dir, tiny_source(family), list(SENTENCES), pooling=pooling, max_length=max_length,
                        threshold=0.9999, trust_remote_code=False, use_sentence_transformers=False)
        assert check.min_cosine >= 0.9999, check.summary()
    else:
        assert (model_dir / "openvino_model.bin").stat().st_size < 0.6 * _fp32_size(tiny_source(family))
    leftovers = [p.name for p in (tmp_path / "org").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def _fp32_size(source: Path) -> int:
    return sum(p.stat().st_size for p in source.glob("*.safetensors"))


def test_last_pooling_is_right_with_left_and_right_padding(tiny_source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Batching texts of different lengths must not change the last-token vectors.

    The server pads on the right (exact: causal attention never sees later padding). With left
    padding the exported IR (no position_ids input) shifts absolute rotary positions, so vectors
    only match closely; the gather must still pick the last real token.
    """
    import openvino as ov

    from ovembed.heads.embeddings import add_pooling

    _export(tiny_source("qwen3"), tmp_path, "q", WeightFormat.FP32, skip_verify=True)
    core = ov.Core()
    model = add_pooling(core.read_model(tmp_path / "q" / "openvino_model.xml"), Pooling.LAST, True)
    compiled = core.compile_model(model, "CPU")
    ids = [[5, 6, 7, 8, 9, 0], [11, 12, 0]]
    alone = [compiled({"input_ids": np.array([r]), "attention_mask": np.ones((1, len(r)), dtype=np.int64)})[0][0]
             for r in ids]
    for side in ("left", "right"):
        width = max(map(len, ids))
        batch = np.zeros((2, width), dtype=np.int64)
        mask = np.zeros((2, width), dtype=np.int64)
        for i, r in enumerate(ids):
            sl = slice(width - len(r), width) if side == "left" else slice(0, len(r))
            batch[i, sl], mask[i, sl] = r, 1
        feed = {"input_ids": batch, "attention_mask": mask}
        if any("position_ids" in i.get_names() for i in compiled.inputs):
            feed["position_ids"] = np.clip(np.cumsum(mask, 1) - 1, 0, None)
        out = compiled(feed)[0]
        for i in range(2):
            if side == "right":
                np.testing.assert_allclose(out[i], alone[i], atol=1e-5)
            else:
                assert float(out[i] @ alone[i]) > 0.999


@pytest.mark.parametrize(("fmt", "threshold"), [(WeightFormat.FP32, 0.9999), (WeightFormat.INT8, 0.995),
                                                 (WeightFormat.INT4, 0.98)], ids=["fp32", "int8", "int4"])
def test_minilm(minilm_source: Path, tmp_path: Path, fmt: WeightFormat, threshold: float) -> None:
    result = _export(minilm_source, tmp_path, "sentence-transformers/all-MiniLM-L6-v2", fmt)
    assert result.pooling is Pooling.MEAN  # auto-detected from 1_Pooling/config.json
    assert result.max_length == 256  # sentence_bert_config.json, not the 128 of tokenizer.json
    assert len(SENTENCES) >= 20
    assert result.min_cosine is not None and result.min_cosine >= threshold
    check = compare(result.model_dir, minilm_source, list(SENTENCES), pooling=Pooling.MEAN, max_length=256,
                    threshold=threshold, trust_remote_code=False, use_sentence_transformers=True)
    assert check.min_cosine >= threshold, check.summary()
    tok = json.loads((result.model_dir / "tokenizer.json").read_text())
    assert tok["padding"] is None and tok["truncation"] is None


def test_reexport_is_idempotent_and_overwrite_replaces(tiny_source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tiny_source("bert-cls")
    first = _export(src, tmp_path, "m", WeightFormat.FP32)
    weights = tmp_path / "m" / "openvino_model.bin"
    stamp = weights.stat().st_mtime_ns
    second = _export(src, tmp_path, "m", WeightFormat.FP32, truncate=True, num_streams=2)
    assert second.reused and not first.reused
    assert weights.stat().st_mtime_ns == stamp  # model files untouched
    options = read_graph(tmp_path / "m")
    assert options.truncate and options.plugin_config == {"NUM_STREAMS": "2"}  # graph refreshed
    assert [e.name for e in read_config(tmp_path / "config.json")] == ["m"]
    third = _export(src, tmp_path, "m", WeightFormat.INT8, overwrite_models=True)
    assert not third.reused and weights.stat().st_mtime_ns != stamp
    assert read_record(tmp_path / "m")["weight_format"] == "int8"


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_failed_export_leaves_nothing(tiny_source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      error: type[BaseException]) -> None:  # type: ignore[no-untyped-def]
    import ovembed.export.quantize as quantize

    def boom(*args: object, **kwargs: object) -> None:
        raise error("simulated failure mid-export")

    monkeypatch.setattr(quantize, "compress_and_save", boom)
    with pytest.raises(error):
        _export(tiny_source("bert-mean"), tmp_path, "org/broken", WeightFormat.INT8)
    assert list(tmp_path.iterdir()) == []  # no model folder, no namespace folder, no config.json


def test_failed_overwrite_keeps_the_old_model(tiny_source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    _export(tiny_source("bert-mean"), tmp_path, "keep", WeightFormat.FP32)
    before = sorted(p.name for p in (tmp_path / "keep").iterdir())
    monkeypatch.setattr(pipeline, "_swap_into_place", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        _export(tiny_source("bert-mean"), tmp_path, "keep", WeightFormat.INT8, overwrite_models=True)
    assert sorted(p.name for p in (tmp_path / "keep").iterdir()) == before
    assert read_record(tmp_path / "keep")["weight_format"] == "fp32"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_verification_failure_writes_nothing(tiny_source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExportError, match="verification failed"):
        _export(tiny_source("bert-mean"), tmp_path, "strict", WeightFormat.INT8, min_cosine=1.01)
    assert list(tmp_path.iterdir()) == []


def test_upsert_two_models_and_explicit_pooling(tiny_source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _export(tiny_source("bert-mean"), tmp_path, "a", WeightFormat.FP32, skip_verify=True)
    _export(tiny_source("mpnet"), tmp_path, "b/c", WeightFormat.FP32, pooling=Pooling.CLS, skip_normalize=True)
    entries = {e.name: e.base_path for e in read_config(tmp_path / "config.json")}
    assert entries == {"a": (tmp_path / "a").resolve(), "b/c": (tmp_path / "b" / "c").resolve()}
    options = read_graph(tmp_path / "b" / "c")
    assert options.pooling is Pooling.CLS and not options.normalize_embeddings


def test_missing_source_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="model 'no-such-org/no-such-model' is not in the Hugging Face cache "
                       r"\(.*\) and HF_HUB_OFFLINE is set"):
        _export(Path("no-such-org/no-such-model"), tmp_path, "x", WeightFormat.FP32)
    assert list(tmp_path.iterdir()) == []
