"""Pull mode: `ovembed serve --source_model` exports from a (stand-in) Hub, then serves; 503 until warm."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from ovembed.cli import _join_flag_values, build_config, build_parser
from ovembed.config import ExportConfig, Pooling, ServeConfig, Task, WeightFormat
from ovembed.errors import ConfigError
from ovembed.serving.models.pull import export_command, export_env, needs_export, pull_config
from tests.support.hub_stand_in import hub_env, hub_stand_in
from tests.support.live_server import LiveServer, pulling_server, wait_ready

REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Embeddings from a Hub id in one command."]


def _as_export_config(command: list[str]) -> ExportConfig:
    """The ExportConfig ``ovembed export`` builds from the pull's command line (so it is a valid one)."""
    assert command[1:4] == ["-m", "ovembed", "export"]
    args = build_parser().parse_args(command[3:])
    return build_config(ExportConfig, args)  # type: ignore[no-any-return]


def test_pull_config_and_export_command(tmp_path: Path) -> None:
    cfg = pull_config(ServeConfig(source_model="org/m", model_repository_path=tmp_path / "models",
                                  weight_format=WeightFormat.FP16, pooling=Pooling.MEAN, revision="v1"))
    assert cfg.config_path == tmp_path / "models" / "config.json"
    assert json.loads(cfg.config_path.read_text()) == {"model_config_list": []}
    assert needs_export(cfg)
    command = export_command(cfg)
    assert command[4] == "--quiet"
    export = _as_export_config(command)
    assert export.source_model == "org/m" and export.served_name == "org/m" and export.quiet
    assert export.weight_format is WeightFormat.FP16 and export.pooling is Pooling.MEAN and export.revision == "v1"
    assert export.config_path == cfg.config_path and export.task is Task.EMBEDDINGS
    assert not (export.skip_normalize or export.truncate or export.overwrite_models or export.trust_remote_code)
    assert export.extra_quantization_params is None and export.hf_token is None
    assert export_env(cfg).get("HF_TOKEN") == os.environ.get("HF_TOKEN")
    with pytest.raises(ConfigError, match="drop --model_path"):
        pull_config(ServeConfig(source_model="org/m", model_path=tmp_path))


def test_export_options_pass_through_to_the_export(tmp_path: Path) -> None:
    """What OVMS pull mode takes reaches the export: task, compression, graph and rerank options."""
    args = build_parser().parse_args(_join_flag_values([
        "serve", "--source_model", "org/r", "--task", "rerank_ov", "--hf_token", "hf_secret", "--revision", "v2",
        "--weight-format", "int4", "--extra_quantization_params", "--group-size 64 --ratio 0.8 --sym",
        "--max_doc_length", "512", "--max_allowed_chunks", "8", "--num_streams", "2", "--trust_remote_code",
        "--overwrite_models", "--model_repository_path", str(tmp_path / "models")]))
    cfg = pull_config(build_config(ServeConfig, args))
    assert cfg.task is Task.RERANK
    command = export_command(cfg)
    assert "hf_secret" not in " ".join(command)  # the token travels in the environment
    assert export_env(cfg)["HF_TOKEN"] == "hf_secret"
    export = _as_export_config(command)
    assert export.task is Task.RERANK and export.revision == "v2" and export.weight_format is WeightFormat.INT4
    assert export.extra_quantization_params == "--group-size 64 --ratio 0.8 --sym"
    assert (export.max_doc_length, export.max_allowed_chunks, export.num_streams) == (512, 8, 2)
    assert export.trust_remote_code and export.overwrite_models
    assert needs_export(cfg)  # --overwrite_models exports again even when the model is there

    embed = build_config(ServeConfig, build_parser().parse_args([
        "serve", "--source_model", "org/e", "--pooling", "LAST", "--skip_normalize", "--truncate",
        "--reference_model", "org/e-pt", "--model_repository_path", str(tmp_path / "models")]))
    export = _as_export_config(export_command(pull_config(embed)))
    assert export.pooling is Pooling.LAST and export.skip_normalize and export.truncate
    assert export.reference_model == "org/e-pt" and export.task is Task.EMBEDDINGS

    sparse = build_config(ServeConfig, build_parser().parse_args([
        "serve", "--source_model", "org/s", "--task", "sparse", "--pooling", "LAST",
        "--model_repository_path", str(tmp_path / "models")]))
    export = _as_export_config(export_command(pull_config(sparse)))
    assert export.task is Task.SPARSE and export.pooling is None  # pooling is for embeddings models


def _pull_flags(tmp_path: Path) -> tuple[str, ...]:
    return ("--source_model", REPO_ID, "--model_name", "minilm", "--weight-format", "fp32",
            "--model_repository_path", str(tmp_path / "models"))


def test_serve_from_a_hub_id(minilm_source: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_source), device="cpu").encode(TEXTS, normalize_embeddings=True)
    with hub_stand_in({REPO_ID: minilm_source}) as hub:
        env = hub_env(tmp_path, hub.base_url)
        log = tmp_path / "serve.log"
        with pulling_server(log, env, *_pull_flags(tmp_path)) as server:
            _wait_listening(server)  # the export takes tens of seconds: the model shows as being pulled
            listed = httpx.get(f"{server.base_url}/v3/models", timeout=10).json()["data"]
            assert [(m["id"], m["state"]) for m in listed] == [("minilm", "LOADING")]
            assert listed[0]["reason"].startswith(f"exporting {REPO_ID} from the Hugging Face Hub")
            early = httpx.post(f"{server.base_url}/v3/embeddings", json={"model": "minilm", "input": "x"}, timeout=10)
            assert early.status_code == 503 and early.headers["retry-after"] == "5"
            assert early.json()["error"]["message"].startswith(
                f"The model 'minilm' is still loading (exporting {REPO_ID} from the Hugging Face Hub")
            not_ready = httpx.get(f"{server.base_url}/v2/health/ready", timeout=10)
            assert not_ready.status_code == 503 and not_ready.json()["models"][0]["state"] == "LOADING"
            seen = wait_ready(server)
            assert 503 in seen  # listening, not ready while the export ran
            base = server.base_url
            models = httpx.get(f"{base}/v3/models", timeout=10).json()
            assert [m["id"] for m in models["data"]] == ["minilm"]
            body = httpx.post(f"{base}/v3/embeddings", json={"model": "minilm", "input": TEXTS}, timeout=60).json()
            got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
            cosines = (got * reference).sum(axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
            assert cosines.min() >= 0.9999, cosines
        text = log.read_text()
        assert "pull: exporting sentence-transformers/all-MiniLM-L6-v2 as minilm" in text
        assert "export: " in text and "pull: minilm exported; loading it" in text
        record = json.loads((tmp_path / "models" / "minilm" / "ovembed_model.json").read_text())
        assert record["source_commit"] == hub.commit(REPO_ID)
        assert "model.safetensors" in hub.downloaded(REPO_ID)

        # Already in the repository: it starts at once, nothing is exported or downloaded again.
        hub.requests.clear()
        log2 = tmp_path / "serve2.log"
        with pulling_server(log2, env, *_pull_flags(tmp_path)) as server:
            wait_ready(server)
        assert "pull: exporting" not in log2.read_text()
        assert hub.requests == []


def test_serve_a_reranker_from_a_hub_id(rerank_sources: dict[str, Path], tmp_path: Path) -> None:
    """`serve --source_model org/tiny-rerank --task rerank`: exported as a cross-encoder, served on /v3/rerank."""
    from sentence_transformers import CrossEncoder

    source = rerank_sources["bert-rerank"]
    query, docs = "capital of France?", ["Paris is the capital of France.", "Berlin is in Germany.", "a cat"]
    reference = np.asarray(CrossEncoder(str(source), device="cpu").predict([(query, d) for d in docs],
                                                                          show_progress_bar=False))
    with hub_stand_in({"org/tiny-rerank": source}) as hub:
        flags = ("--source_model", "org/tiny-rerank", "--task", "rerank", "--weight-format", "fp32",
                 "--max_allowed_chunks", "16", "--model_repository_path", str(tmp_path / "models"))
        with pulling_server(tmp_path / "serve.log", hub_env(tmp_path, hub.base_url), *flags) as server:
            wait_ready(server)
            base = server.base_url
            resp = httpx.post(f"{base}/v3/rerank", json={"model": "org/tiny-rerank", "query": query,
                                                         "documents": docs}, timeout=60)
            assert resp.status_code == 200, resp.text
            got = {r["index"]: r["relevance_score"] for r in resp.json()["results"]}
            assert sorted(got) == [0, 1, 2]
            assert max(abs(got[i] - reference[i]) for i in got) < 1e-4
            too_many = httpx.post(f"{base}/v3/rerank", json={"model": "org/tiny-rerank", "query": query,
                                                             "documents": ["doc"] * 17}, timeout=60)
            assert too_many.status_code == 400 and "16" in too_many.text  # --max_allowed_chunks reached the graph
    record = json.loads((tmp_path / "models" / "org" / "tiny-rerank" / "ovembed_model.json").read_text())
    assert record["task"] == "rerank" and record["source_commit"] == hub.commit("org/tiny-rerank")


def _wait_listening(server: LiveServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert server.process.poll() is None and time.monotonic() < deadline
        try:
            if httpx.get(f"{server.base_url}/v2/health/live", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)


def test_a_failed_pull_is_one_log_line_exits_1_and_leaves_nothing(tmp_path: Path) -> None:
    """Not found on the Hub: the export's one error line is logged; with nothing else to serve, serve exits 1
    naming the reason, and leaves no empty config.json."""
    with hub_stand_in({}) as hub:
        log = tmp_path / "serve.log"
        flags = ("--source_model", "org/missing", "--model_repository_path", str(tmp_path / "models"))
        with pulling_server(log, hub_env(tmp_path, hub.base_url), *flags) as server:
            assert server.process.wait(timeout=300) == 1, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if "export: " in line]
    assert len(errors) == 1 and "model 'org/missing' was not found on the Hugging Face Hub" in errors[0], text
    [nothing] = [line for line in text.splitlines() if "nothing to serve" in line]
    assert "model 'org/missing': exporting org/missing failed: " in nothing and "--allow_empty" in nothing
    models = tmp_path / "models"
    assert not models.exists() or list(models.iterdir()) == []


def test_a_failed_pull_with_allow_empty_stays_up_and_says_why(tmp_path: Path) -> None:
    with hub_stand_in({}) as hub:
        log = tmp_path / "serve.log"
        flags = ("--source_model", "org/missing", "--model_repository_path", str(tmp_path / "models"),
                 "--allow_empty")
        with pulling_server(log, hub_env(tmp_path, hub.base_url), *flags) as server:
            deadline = time.monotonic() + 300
            while "pull: exporting org/missing failed" not in log.read_text():
                assert server.process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
            base = server.base_url
            ready = httpx.get(f"{base}/v2/health/ready", timeout=10)
            assert ready.status_code == 503 and httpx.get(f"{base}/v2/health/live", timeout=10).status_code == 200
            [model] = ready.json()["models"]
            assert model["name"] == "org/missing" and model["state"] == "UNAVAILABLE"
            assert "was not found on the Hugging Face Hub" in model["reason"]
            resp = httpx.post(f"{base}/v3/embeddings", json={"model": "org/missing", "input": "x"}, timeout=10)
            assert resp.status_code == 503
            assert "was not found on the Hugging Face Hub" in resp.json()["error"]["message"]
            assert not (tmp_path / "models" / "config.json").exists()
