"""Exported families served through the app (in process, the real engine): Dense heads (fp32, int8 and an
export that skipped verification), include_prompt false with prompted requests, a T5 encoder + Dense
converted with openvino.convert_model; vectors against sentence-transformers; a folder whose modules.json
holds a module its graph lacks is not served."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.repository import RECORD_FILENAME, upsert_model
from ovembed.serving.http.app import create_app

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(1800)]
TEXTS = ["what is the capital of france", "the quick brown fox jumps over the lazy dog", "hello world",
         "semantic search clustering retrieval and deduplication of a longer text"]


@pytest.fixture(scope="module")
def client(family_repo: Path) -> Iterator[TestClient]:
    stale = family_repo / "stale"  # the Dense export as an OVMS-style folder: no recorded chain
    shutil.copytree(family_repo / "dense", stale)
    record = json.loads((stale / RECORD_FILENAME).read_text())
    del record["head"]
    (stale / RECORD_FILENAME).write_text(json.dumps(record))
    upsert_model(family_repo / "config.json", "stale", stale)
    cfg = ServeConfig(config_path=family_repo / "config.json", file_system_poll_wait_seconds=0)
    with TestClient(create_app(cfg), base_url="http://localhost") as c:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            states = [v["state"] for m in c.get("/v1/config").json().values() if isinstance(m, dict)
                      for v in m.get("model_version_status", [])]
            if states and all(s in ("AVAILABLE", "UNAVAILABLE", "END") for s in states):
                break
            time.sleep(0.5)
        yield c


def _reference(source: Path, texts: list[str], **kwargs: object) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(source), device="cpu")
    return np.asarray(st.encode(texts, normalize_embeddings=True, **kwargs), dtype=np.float32)  # type: ignore[arg-type]


def _embed(client: TestClient, model: str, **extra: object) -> np.ndarray:
    resp = client.post("/v3/embeddings", json={"model": model, "input": TEXTS, **extra})
    assert resp.status_code == 200, resp.text
    return np.array([row["embedding"] for row in resp.json()["data"]], dtype=np.float32)


def _min_cosine(got: np.ndarray, ref: np.ndarray) -> float:
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    return float(np.min(np.sum(got * ref, axis=1)))


@pytest.mark.parametrize(("model", "family", "min_cos"), [
    ("dense", "bert-dense", 0.9999), ("dense-unverified", "bert-dense", 0.9999), ("dense-int8", "bert-dense", 0.995),
    ("t5", "t5", 0.9999)])
def test_dense_heads_serve_sentence_transformers_vectors(client: TestClient, family_source,  # type: ignore[no-untyped-def]
                                                         model: str, family: str, min_cos: float) -> None:
    got = _embed(client, model)
    assert got.shape == (len(TEXTS), 16)
    assert _min_cosine(got, _reference(family_source(family), TEXTS)) >= min_cos
    card = client.get(f"/v3/models/{model}").json()
    assert card["dimensions"] == 16  # the Dense output, not the transformer's 32


def test_prompt_excluded_from_pooling(client: TestClient, family_source) -> None:  # type: ignore[no-untyped-def]
    source = family_source("bert-no-prompt")
    for name in ("query", "passage"):
        got = _embed(client, "no-prompt", prompt_name=name)
        assert _min_cosine(got, _reference(source, TEXTS, prompt_name=name)) >= 0.9999
    default = _embed(client, "no-prompt")  # the model's default prompt (query), excluded too
    assert _min_cosine(default, _reference(source, TEXTS)) >= 0.9999
    literal = _embed(client, "no-prompt", prompt="passage: ")
    assert _min_cosine(literal, _reference(source, TEXTS, prompt="passage: ")) >= 0.9999


def test_folder_with_a_module_the_graph_lacks_is_not_served(client: TestClient) -> None:
    status = client.get("/v1/config").json()["stale"]["model_version_status"][0]
    assert status["state"] == "UNAVAILABLE"
    message = status["status"]["error_message"]
    assert "2_Dense" in message and "Dense" in message and "not served" in message
    assert client.post("/v3/embeddings", json={"model": "stale", "input": "hello"}).status_code in (404, 503)
