"""An OpenVINO IR source (the OpenVINO/*-ov repositories): used as it is, no conversion, no torch."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from ovembed.config import ExportConfig, ServeConfig, WeightFormat
from ovembed.errors import ExportError
from ovembed.export.ir_source import ir_weight_format, is_ir_folder
from ovembed.export.pipeline import export_model
from ovembed.repository import upsert_model
from tests.support.hub_stand_in import hub_env, hub_stand_in

TEXTS = ["Hello world", "OpenVINO IR straight from the Hub.", "Der schnelle braune Fuchs."]

# Runs the CLI in a fresh interpreter and reports whether anything imported torch.
_NO_TORCH = """
import sys
from ovembed.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "optimum", "nncf") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
sys.exit(code)
"""


@pytest.fixture(scope="module")
def exported(tiny_source, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """The tiny MEAN BERT exported at int8; returns its model folder (in a repository)."""
    repo = tmp_path_factory.mktemp("orig")
    export_model(ExportConfig(source_model=str(tiny_source("bert-mean")), model_name="orig",
                              model_repository_path=repo, weight_format=WeightFormat.INT8))
    return repo / "orig"


def _as_published(exported: Path, out: Path, *, tokenizer_ir: bool = True) -> Path:
    """The export as an OpenVINO/*-ov repository holds it: IR, tokenizer files, 1_Pooling; no ovembed files."""
    shutil.copytree(exported, out)
    for name in ("graph.pbtxt", "ovembed_model.json"):
        (out / name).unlink()
    if not tokenizer_ir:
        for name in ("openvino_tokenizer.xml", "openvino_tokenizer.bin"):
            (out / name).unlink()
    assert is_ir_folder(out)
    return out


async def _served(config: Path, names: list[str]) -> dict[str, np.ndarray]:
    from ovembed.serving.http.app import create_app

    app = create_app(ServeConfig(config_path=config), environ={})
    out = {}
    async with app.router.lifespan_context(app):
        assert await app.state.registry.wait_ready(120)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=120) as client:
            for name in names:
                resp = await client.post("/v3/embeddings", json={"model": name, "input": TEXTS})
                assert resp.status_code == 200, resp.text
                out[name] = np.array([d["embedding"] for d in resp.json()["data"]], np.float32)
    return out


def test_hub_ir_repository_is_used_as_is_without_torch(exported: Path, tmp_path: Path) -> None:
    published = _as_published(exported, tmp_path / "tiny-ov")
    assert (published / "1_Pooling" / "config.json").is_file()
    (published / "onnx").mkdir()
    (published / "onnx" / "model.onnx").write_bytes(b"not needed")
    repo = tmp_path / "models"
    with hub_stand_in({"OpenVINO/tiny-ov": published}) as hub:
        done = subprocess.run(
            [sys.executable, "-c", _NO_TORCH, "export", "--source_model", "OpenVINO/tiny-ov",
             "--model_repository_path", str(repo)],
            env=hub_env(tmp_path, hub.base_url), capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        downloaded = hub.downloaded("OpenVINO/tiny-ov")
    assert "HEAVY=\n" in done.stdout, done.stdout  # no torch, optimum or nncf imported
    assert "using the OpenVINO IR as published: no conversion, weights int8, tokenizer IR from the source" \
        in done.stdout
    assert "not verified: the source holds no PyTorch weights" in done.stdout
    assert "from the Hugging Face Hub (OpenVINO IR, " in done.stdout
    assert {"openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "tokenizer.json",
            "1_Pooling/config.json"} <= downloaded
    assert "onnx/model.onnx" not in downloaded

    model = repo / "OpenVINO" / "tiny-ov"
    assert (model / "graph.pbtxt").is_file()
    record = json.loads((model / "ovembed_model.json").read_text())
    assert record["source_format"] == "openvino_ir" and record["pooling"] == "MEAN"  # from 1_Pooling
    assert record["weight_format"] == "int8" and record["source_commit"] == hub.commit("OpenVINO/tiny-ov")
    assert "verification" not in record
    assert (model / "openvino_model.bin").read_bytes() == (exported / "openvino_model.bin").read_bytes()
    assert not list(repo.rglob(".*ovembed-tmp-*"))

    config = repo / "config.json"
    upsert_model(config, "orig", exported)
    vectors = asyncio.run(_served(config, ["OpenVINO/tiny-ov", "orig"]))
    np.testing.assert_array_equal(vectors["OpenVINO/tiny-ov"], vectors["orig"])


def test_local_ir_folder_converts_a_missing_tokenizer_and_verifies_against_given_reference(
        exported: Path, tiny_source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    published = _as_published(exported, tmp_path / "tiny-ov", tokenizer_ir=False)
    result = export_model(ExportConfig(source_model=str(published), model_name="ir", model_repository_path=tmp_path /
                                       "models", reference_model=str(tiny_source("bert-mean"))))
    assert result.weight_format is WeightFormat.INT8
    record = json.loads((result.model_dir / "ovembed_model.json").read_text())
    assert record["tokenizer_ir"] == "converted with openvino-tokenizers"
    assert (result.model_dir / "openvino_tokenizer.xml").is_file()
    assert record["verification"]["min_cosine"] >= 0.995 and result.min_cosine == record["verification"]["min_cosine"]
    assert record["reference_model"] == str(tiny_source("bert-mean"))


def test_ir_source_refuses_compression_options(exported: Path, tmp_path: Path) -> None:
    published = _as_published(exported, tmp_path / "tiny-ov")
    with pytest.raises(ExportError, match="--extra_quantization_params does not apply to an OpenVINO IR source"):
        export_model(ExportConfig(source_model=str(published), model_repository_path=tmp_path / "models",
                                  extra_quantization_params="--sym"))
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_ir_weight_format(exported: Path) -> None:
    assert ir_weight_format(exported / "openvino_model.xml") is WeightFormat.INT8


async def _scores(config: Path, names: list[str], query: str, docs: list[str]) -> dict[str, list[float]]:
    from ovembed.serving.http.app import create_app

    app = create_app(ServeConfig(config_path=config), environ={})
    out = {}
    async with app.router.lifespan_context(app):
        assert await app.state.registry.wait_ready(120)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=120) as client:
            for name in names:
                resp = await client.post("/v3/rerank", json={"model": name, "query": query, "documents": docs})
                assert resp.status_code == 200, resp.text
                by_index = {r["index"]: r["relevance_score"] for r in resp.json()["results"]}
                out[name] = [by_index[i] for i in range(len(docs))]
    return out


def test_rerank_ir_is_used_as_is_and_verified_against_its_cross_encoder(
        rerank_sources: dict[str, Path], tmp_path: Path) -> None:
    from ovembed.config import Task

    source = rerank_sources["bert-rerank"]
    repo = tmp_path / "models"
    original = export_model(ExportConfig(source_model=str(source), model_name="orig", model_repository_path=repo,
                                         task=Task.RERANK, weight_format=WeightFormat.FP32))
    published = _as_published(original.model_dir, tmp_path / "rerank-ov")
    with pytest.raises(ExportError, match=r"is a cross-encoder .*--task rerank"):
        export_model(ExportConfig(source_model=str(published), model_name="wrong", model_repository_path=repo))
    result = export_model(ExportConfig(source_model=str(published), model_name="ir", model_repository_path=repo,
                                       task=Task.RERANK, reference_model=str(source), max_doc_length=300))
    record = json.loads((result.model_dir / "ovembed_model.json").read_text())
    assert record["task"] == "rerank" and record["source_format"] == "openvino_ir"
    assert record["rerank_head"] == json.loads((original.model_dir / "ovembed_model.json").read_text())["rerank_head"]
    assert record["max_doc_length"] == 300 and record["weight_format"] == "fp32"
    assert record["verification"]["max_score_diff"] < 1e-4 and result.max_score_diff is not None
    docs = ["Paris is the capital of France.", "Berlin is in Germany.", "a cat on a mat"]
    scores = asyncio.run(_scores(repo / "config.json", ["ir", "orig"], "capital of France?", docs))
    assert scores["ir"] == scores["orig"]


def test_ir_without_hidden_states_is_refused(exported: Path, tmp_path: Path) -> None:
    import openvino as ov
    import openvino.opset13 as ops

    published = _as_published(exported, tmp_path / "odd-ov")
    ids = ops.parameter([-1, -1], ov.Type.i64, name="input_ids")
    axis = ops.constant(np.array([1], dtype=np.int64))
    score = ops.reduce_sum(ops.convert(ids, ov.Type.f32), axis, keep_dims=False)  # [batch]: no vector at all
    odd = ov.Model([ops.result(score)], [ids], "odd")
    odd.outputs[0].get_tensor().set_names({"logits"})
    ov.save_model(odd, published / "openvino_model.xml")
    with pytest.raises(ExportError, match="outputs neither hidden states"):
        export_model(ExportConfig(source_model=str(published), model_repository_path=tmp_path / "models"))
    assert not (tmp_path / "models" / str(published).lstrip("/")).exists()


def test_serve_pulls_an_ir_repository(exported: Path, tmp_path: Path) -> None:
    """`serve --source_model OpenVINO/tiny-ov`: the IR is used as is and serves the original's vectors."""
    from tests.support.live_server import pulling_server, wait_ready

    published = _as_published(exported, tmp_path / "tiny-ov")
    repo = tmp_path / "models"
    log = tmp_path / "serve.log"
    with hub_stand_in({"OpenVINO/tiny-ov": published}) as hub:
        flags = ("--source_model", "OpenVINO/tiny-ov", "--model_name", "tiny", "--model_repository_path", str(repo))
        with pulling_server(log, hub_env(tmp_path, hub.base_url), *flags) as server:
            wait_ready(server, 300)
            resp = httpx.post(f"{server.base_url}/v3/embeddings", json={"model": "tiny", "input": TEXTS}, timeout=60)
            assert resp.status_code == 200, resp.text
            got = np.array([d["embedding"] for d in resp.json()["data"]], np.float32)
    assert "export: using the OpenVINO IR as published" in log.read_text()
    config = tmp_path / "orig-config.json"
    upsert_model(config, "orig", exported)
    np.testing.assert_allclose(got, asyncio.run(_served(config, ["orig"]))["orig"], rtol=0, atol=1e-6)
