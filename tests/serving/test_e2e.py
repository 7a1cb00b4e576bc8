"""End to end: the real ``python -m ovembed serve`` on a free loopback port, called with the
official ``openai`` and ``ollama`` clients, vectors checked against sentence-transformers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from tests.support.live_server import LiveServer, live_server, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXTS = [
    "hello world",
    "OpenVINO runs embedding models fast on CPUs.",
    "The quick brown fox jumps over the lazy dog.",
    "A completely different sentence about cooking pasta with tomatoes and basil.",
]
MIN_COSINE = 0.995

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def server(minilm_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("e2e")
    key_file = tmp / "api_key"
    key_file.write_text(f"{KEY}\n")
    log = tmp / "server.log"
    with live_server(minilm_repo, log, "--api_key_file", str(key_file), "--log_format", "json") as running:
        yield running


@pytest.fixture(scope="module")
def reference(minilm_source: Path) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_source), device="cpu")
    return np.asarray(model.encode(TEXTS, normalize_embeddings=True), dtype=np.float32)


def _min_cosine(got: np.ndarray, ref: np.ndarray) -> float:
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    return float(np.min(np.sum(got * ref, axis=1)))


def test_openai_client_base64_default(server: LiveServer, reference: np.ndarray) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server.base_url}/v3", api_key=KEY)
    resp = client.embeddings.create(model="minilm", input=TEXTS)  # SDK asks for base64
    got = np.array([d.embedding for d in sorted(resp.data, key=lambda d: d.index)], np.float32)
    assert got.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    assert _min_cosine(got, reference) >= MIN_COSINE
    assert resp.model == "minilm"
    assert resp.usage.prompt_tokens > len(TEXTS) * 2


def test_openai_client_float_v1_and_dimensions(server: LiveServer, reference: np.ndarray) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=KEY)
    resp = client.embeddings.create(model="minilm", input=TEXTS, encoding_format="float")
    got = np.array([d.embedding for d in resp.data], np.float32)
    assert _min_cosine(got, reference) >= MIN_COSINE
    small = client.embeddings.create(model="minilm", input=TEXTS[0], dimensions=64)
    vec = np.array(small.data[0].embedding, np.float32)
    assert vec.shape == (64,)
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-4)
    expected = reference[0, :64] / np.linalg.norm(reference[0, :64])
    assert float(vec @ expected) >= MIN_COSINE


def test_openai_client_errors(server: LiveServer) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{server.base_url}/v3", api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError, match="The model 'nope' does not exist"):
        client.embeddings.create(model="nope", input="x")
    long = "word " * 600
    with pytest.raises(openai.BadRequestError, match=r"input\[0\] has \d+ tokens; the model takes at most 256: "):
        client.embeddings.create(model="minilm", input=long, extra_body={"truncate": False})
    cut = client.embeddings.create(model="minilm", input=long, extra_body={"truncate": True})
    assert cut.usage.prompt_tokens == 256
    wrong = openai.OpenAI(base_url=f"{server.base_url}/v3", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="Invalid API key"):
        wrong.embeddings.create(model="minilm", input="x")


def test_ollama_client(server: LiveServer, reference: np.ndarray) -> None:
    import ollama

    client = ollama.Client(host=server.base_url, headers=AUTH)
    resp = client.embed(model="minilm", input=TEXTS)
    got = np.array(resp.embeddings, np.float32)
    assert _min_cosine(got, reference) >= MIN_COSINE
    assert resp.prompt_eval_count and resp.prompt_eval_count > 0
    legacy = client.embeddings(model="minilm", prompt=TEXTS[1])
    assert float(np.array(legacy.embedding, np.float32) @ reference[1]) >= MIN_COSINE
    assert [m.model for m in client.list().models] == ["minilm"]
    with pytest.raises(ollama.ResponseError, match="input length exceeds maximum context length"):
        client.embed(model="minilm", input="word " * 600, truncate=False)


def test_tokenize_and_raw_http(server: LiveServer) -> None:
    tokens = httpx.post(f"{server.base_url}/v3/tokenize", headers=AUTH,
                        json={"model": "minilm", "text": "hello world"})
    assert tokens.json() == {"tokens": [101, 7592, 2088, 102]}
    ids = httpx.post(f"{server.base_url}/v3/embeddings", headers=AUTH,
                     json={"model": "minilm", "input": [7592, 2088]})
    assert ids.status_code == 200
    assert ids.json()["usage"]["prompt_tokens"] == 2
    for header in ("x-tokenization-time", "x-queue-time", "x-inference-time", "x-total-time"):
        assert float(ids.headers[header]) >= 0  # fractional milliseconds
    unauthorized = httpx.get(f"{server.base_url}/v3/models")
    assert unauthorized.status_code == 401
    assert unauthorized.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{server.base_url}/v2/models/minilm/ready").status_code == 200
    assert httpx.get(f"{server.base_url}/").text == "ovembed is running"
    meta = httpx.get(f"{server.base_url}/v2/models/minilm", headers=AUTH).json()
    assert meta["outputs"][0]["shape"] == [-1, 384]


def test_request_id_reaches_the_log(server: LiveServer) -> None:
    resp = httpx.post(f"{server.base_url}/v3/embeddings", headers={**AUTH, "x-request-id": "e2e-rid-7"},
                      json={"model": "minilm", "input": "x"})
    assert resp.headers["x-request-id"] == "e2e-rid-7"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [orjson.loads(line) for line in server.log.read_text().splitlines()
                 if line.startswith("{")]
        hits = [e for e in lines if e.get("request_id") == "e2e-rid-7"]
        if hits:
            assert "POST /v3/embeddings" in hits[0]["message"]
            return
        time.sleep(0.1)
    pytest.fail(f"request id not logged:\n{server.log.read_text()}")


def test_cli_rejects_both_or_neither_mode(tmp_path: Path) -> None:
    for args in ([], ["--config_path", "c.json", "--model_path", "m"]):
        out = subprocess.run([sys.executable, "-m", "ovembed", "serve", *args], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr
        assert "give exactly one of --config_path" in out.stderr


def test_sigterm_stops_cleanly(minilm_repo: Path, tmp_path: Path) -> None:
    running = start_server(minilm_repo, tmp_path / "server.log")
    assert httpx.get(f"{running.base_url}/v3/models").status_code == 200  # no key configured
    # A graceful drain is a success: exit code 0 (tests/serving/test_shutdown.py has the details).
    assert stop_server(running) == 0
    log = running.log.read_text()
    assert "Traceback" not in log
    assert "Application shutdown complete" in log
