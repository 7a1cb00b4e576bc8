"""Pull mode: `ovembed serve --source_model` exports from a (stand-in) Hub, then serves; 503 until warm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from benchmarks.server_process import free_port
from ovembed.config import Pooling, ServeConfig, WeightFormat
from ovembed.errors import ConfigError
from ovembed.serving.pull import export_command, needs_export, pull_config
from tests.hub_stand_in import hub_stand_in

ROOT = Path(__file__).resolve().parents[2]
REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Embeddings from a Hub id in one command."]


def test_pull_config_and_export_command(tmp_path: Path) -> None:
    cfg = pull_config(ServeConfig(source_model="org/m", model_repository_path=tmp_path / "models",
                                  weight_format=WeightFormat.FP16, pooling=Pooling.MEAN, revision="v1"))
    assert cfg.config_path == tmp_path / "models" / "config.json"
    assert json.loads(cfg.config_path.read_text()) == {"model_config_list": []}
    assert needs_export(cfg)
    command = export_command(cfg)
    assert command[1:5] == ["-m", "ovembed", "export", "--quiet"]
    flags = dict(zip(command[5::2], command[6::2], strict=True))
    assert flags["--source_model"] == "org/m" and flags["--model_name"] == "org/m"
    assert flags["--weight-format"] == "fp16" and flags["--pooling"] == "MEAN" and flags["--revision"] == "v1"
    assert flags["--config_file_path"] == str(cfg.config_path)
    with pytest.raises(ConfigError, match="drop --model_path"):
        pull_config(ServeConfig(source_model="org/m", model_path=tmp_path))


def _env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "OVEMBED_", "TRANSFORMERS_", "API_KEY"))}
    env.update(HF_ENDPOINT=endpoint, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(ROOT))
    return env


def _serve(tmp_path: Path, env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "ovembed", "serve", "--source_model", REPO_ID, "--model_name", "minilm",
               "--weight-format", "fp32", "--model_repository_path", str(tmp_path / "models"),
               "--rest_port", str(port)]
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def _wait_ready(proc: subprocess.Popen[bytes], base: str, log: Path, timeout: float = 900) -> list[int]:
    """Poll /v2/health/ready until 200; returns the statuses seen."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited {proc.returncode}:\n{log.read_text()}")
        try:
            status = httpx.get(f"{base}/v2/health/ready", timeout=5).status_code
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        seen.append(status)
        if status == 200:
            return seen
        time.sleep(0.5)
    pytest.fail(f"not ready in {timeout}s:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_serve_from_a_hub_id(minilm_source: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_source), device="cpu").encode(TEXTS, normalize_embeddings=True)
    with hub_stand_in({REPO_ID: minilm_source}) as hub:
        env = _env(tmp_path, hub.base_url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = tmp_path / "serve.log"
        proc = _serve(tmp_path, env, port, log)
        try:
            seen = _wait_ready(proc, base, log)
            assert 503 in seen  # listening, not ready while the export ran
            models = httpx.get(f"{base}/v3/models", timeout=10).json()
            assert [m["id"] for m in models["data"]] == ["minilm"]
            body = httpx.post(f"{base}/v3/embeddings", json={"model": "minilm", "input": TEXTS}, timeout=60).json()
            got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
            cosines = (got * reference).sum(axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
            assert cosines.min() >= 0.9999, cosines
        finally:
            _stop(proc)
        text = log.read_text()
        assert "pull: exporting sentence-transformers/all-MiniLM-L6-v2 as minilm" in text
        assert "export: " in text and "pull: minilm exported and loaded" in text
        record = json.loads((tmp_path / "models" / "minilm" / "ovembed_model.json").read_text())
        assert record["source_commit"] == hub.commit(REPO_ID)
        assert "model.safetensors" in hub.downloaded(REPO_ID)

        # Already in the repository: it starts at once, nothing is exported or downloaded again.
        hub.requests.clear()
        log2 = tmp_path / "serve2.log"
        proc = _serve(tmp_path, env, port, log2)
        try:
            _wait_ready(proc, base, log2)
        finally:
            _stop(proc)
        assert "pull: exporting" not in log2.read_text()
        assert hub.requests == []
