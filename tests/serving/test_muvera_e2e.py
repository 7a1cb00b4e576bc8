"""MUVERA through the real loader: the tiny ColBERT-style model of test_token_embed_e2e exported with --task
token_embed, its record given MUVERA defaults (``token_embed.muvera``), served in process: ``"muvera": true``
uses the record's parameters, and each vector is ovembed.heads.muvera over the model's own token vectors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.heads.muvera import Muvera, MuveraParams
from ovembed.serving.http.app import create_app
from tests.serving.test_token_embed_e2e import DOCS, QUERY, build_colbert

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]
RECORDED = {"k_sim": 3, "dim_proj": 8, "r_reps": 4, "seed": 11}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    import torch

    from ovembed.config import ExportConfig, Task, WeightFormat
    from ovembed.export.pipeline import export_model

    torch.manual_seed(5)
    source = build_colbert(tmp_path_factory.mktemp("colbert") / "colbert")
    root = tmp_path_factory.mktemp("muvera-repo")
    export_model(ExportConfig(source_model=str(source), model_name="colbert", model_repository_path=root,
                              task=Task.TOKEN_EMBED, weight_format=WeightFormat.FP32))
    record_path = root / "colbert" / "ovembed_model.json"
    record = json.loads(record_path.read_text())
    record["token_embed"]["muvera"] = RECORDED
    record_path.write_text(json.dumps(record))
    cfg = ServeConfig(config_path=root / "config.json", file_system_poll_wait_seconds=0)
    with TestClient(create_app(cfg), base_url="http://localhost") as c:
        deadline = time.monotonic() + 300
        while c.get("/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield c


def _tokens(client: TestClient, texts: list[str], kind: str) -> list[np.ndarray]:
    resp = client.post("/embed_all", json={"inputs": texts, "input_type": kind})
    assert resp.status_code == 200, resp.text
    return [np.array(v, dtype=np.float32) for v in resp.json()]


def test_record_defaults_and_vectors(client: TestClient) -> None:
    resp = client.post("/v3/embeddings", json={"model": "colbert", "input": DOCS, "muvera": True})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["muvera"] == {**RECORDED, "final_dim": None, "input_type": "document", "dimensions": 8 * 8 * 4}
    m = Muvera(16, MuveraParams(**RECORDED))
    for item, tokens in zip(body["data"], _tokens(client, DOCS, "document"), strict=True):
        np.testing.assert_allclose(item["embedding"], m.encode(tokens, "document"), atol=1e-5)
    query = client.post("/v3/embeddings", json={"model": "colbert", "input": QUERY, "input_type": "query",
                                                "muvera": {"r_reps": 20, "dim_proj": 16}}).json()
    assert query["muvera"]["dimensions"] == 8 * 16 * 20
    want = Muvera(16, MuveraParams(**{**RECORDED, "r_reps": 20, "dim_proj": 16})).encode(
        _tokens(client, [QUERY], "query")[0], "query")
    np.testing.assert_allclose(query["data"][0]["embedding"], want, atol=1e-5)
