"""The Python API and ``ovembed embed`` on MiniLM: the same vectors as the server, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import ovembed
from ovembed.offline.model import Model
from tests.support.live_server import clean_env, live_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
TEXTS = ["hello world", "OpenVINO runs embedding models fast on CPUs.", "cooking pasta " * 30, "a"]


@pytest.fixture(scope="module")
def model(minilm_repo: Path) -> Iterator[Model]:
    # MiniLM was not trained for shorter vectors: 'dimensions' needs --allow_any_dimensions on both sides
    with ovembed.load("minilm", config_path=minilm_repo, allow_any_dimensions=True) as m:
        yield m


def test_api_returns_the_servers_vectors(model: Model, minilm_repo: Path, tmp_path: Path) -> None:
    with live_server(minilm_repo, tmp_path / "server.log", "--allow_any_dimensions") as server:
        def post(**body: object) -> np.ndarray:
            r = httpx.post(f"{server.base_url}/v3/embeddings", json={"model": "minilm", "input": TEXTS, **body},
                           timeout=120)
            r.raise_for_status()
            return np.array([d["embedding"] for d in r.json()["data"]])

        np.testing.assert_allclose(model.embed(TEXTS), post(), atol=2e-6)
        np.testing.assert_allclose(model.embed(TEXTS, dimensions=64, batch_size=1), post(dimensions=64), atol=2e-6)
        assert np.array_equal(model.embed(TEXTS, precision="int8"), post(encoding_format="int8"))
    assert model.dimensions == 384 and model.task == "embeddings"
    with pytest.raises(Exception, match="not a rerank model"):
        model.rerank("q", ["d"])


def _embed_cli(*args: str) -> subprocess.Popen[str]:
    env = clean_env()
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return subprocess.Popen([sys.executable, "-m", "ovembed", "embed", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_cli_job_resumes_after_sigkill(model: Model, minilm_repo: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    docs = [f"document {i} about " + "topic " * (i % 37) for i in range(1200)]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"doc-{i}", "text": t}) + "\n" for i, t in enumerate(docs)))
    out = tmp_path / "vectors.parquet"
    args = ["--config_path", str(minilm_repo), "--model_name", "minilm", "--input", str(corpus), "--id_field", "id",
            "--output", str(out), "--rows_per_group", "50"]
    manifest = tmp_path / "vectors.parquet.parts" / "manifest.json"
    first = _embed_cli(*args)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and first.poll() is None:
        if manifest.is_file() and len(json.loads(manifest.read_text())["groups"]) >= 3:
            break
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    done = len(json.loads(manifest.read_text())["groups"])
    assert 3 <= done < 24 and not out.exists()
    second = _embed_cli(*args)
    _, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    assert f"(resumed after {done * 50})" in err.splitlines()[-1] and "rows/s" in err
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == [f"doc-{i}" for i in range(len(docs))]  # each once, in order
    np.testing.assert_allclose(np.array(table.column("embedding").to_pylist()), model.embed(docs), atol=2e-6)


def test_cli_bad_input_is_one_line(minilm_repo: Path, tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text('{"body": "x"}\n')
    proc = _embed_cli("--config_path", str(minilm_repo), "--model_name", "minilm", "--input",
                      str(tmp_path / "c.jsonl"), "--output", str(tmp_path / "v.parquet"))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].startswith("ovembed embed: error: ") and "Traceback" not in err
    assert "no field 'text'" in err
