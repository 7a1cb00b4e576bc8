"""MUVERA on /v3/embeddings over the real token servable and batcher (the fake per-token engine of
test_token_embed_routes): one fixed-size vector per input equal to ovembed.heads.muvera over the expected token
vectors, query sums vs document averages, the parameters echoed, the model's defaults, encodings, and errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.config import Pooling, Task
from ovembed.heads.muvera import Muvera, MuveraParams
from ovembed.serving.api import ModelInfo
from ovembed.serving.batching.batcher import Batcher
from ovembed.serving.batching.policy import BatchPolicy
from ovembed.serving.tasks.token_embed import TokenEmbedServable
from ovembed.serving.tasks.tokenizer import ServingTokenizer
from tests.serving.fakes import FakeRegistry, FakeServable, make_app
from tests.serving.http.test_token_embed_routes import DIM, MAX_LEN, SETTINGS, TokenEngine, _tokenizer_json, expected

DEFAULTS = MuveraParams(k_sim=2, dim_proj=2, r_reps=3, seed=7)  # the model's (record token_embed.muvera)
TEXTS = ["the capital of france is paris.", "hello, world"]


@pytest.fixture
def client() -> Iterator[TestClient]:
    class Registry(FakeRegistry):
        async def start(self) -> None:
            info = ModelInfo(name="colbert", dimensions=DIM, max_length=MAX_LEN - 1, pooling=Pooling.CLS,
                             normalize=True, truncate=False, device="CPU", precision="fp32", created=0,
                             task=Task.TOKEN_EMBED, endpoint="/embed_all", serves=(Task.RERANK,), muvera=DEFAULTS)
            batcher = Batcher(TokenEngine(), BatchPolicy(max_batch_tokens=4096), max_queue=64, name="colbert")
            tokenizer = ServingTokenizer(_tokenizer_json(), max_length=MAX_LEN - 1)
            self.servables["colbert"] = TokenEmbedServable(info, tokenizer, batcher, settings=SETTINGS)  # type: ignore[assignment]
            self.states["colbert"] = self.states["dense"]
            await super().start()

    with TestClient(make_app(Registry(FakeServable("dense", max_length=MAX_LEN)), max_inputs=8)) as test_client:
        yield test_client


def _post(client: TestClient, **fields: Any) -> Any:
    return client.post("/v3/embeddings", json={"model": "colbert", "input": TEXTS, **fields})


def test_true_uses_the_model_defaults_documents_by_default(client: TestClient) -> None:
    resp = _post(client, muvera=True)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    m = Muvera(DIM, DEFAULTS)
    assert body["muvera"] == {"k_sim": 2, "dim_proj": 2, "r_reps": 3, "seed": 7, "final_dim": None,
                              "input_type": "document", "dimensions": 4 * 2 * 3}
    assert [d["index"] for d in body["data"]] == [0, 1] and "embeddings" not in body["data"][0]
    for item, text in zip(body["data"], TEXTS, strict=True):
        assert len(item["embedding"]) == 24
        np.testing.assert_allclose(item["embedding"], m.encode(expected(text, "document"), "document"), atol=1e-6)


def test_model_card_shows_the_defaults(client: TestClient) -> None:
    card = client.get("/v3/models/colbert").json()
    assert card["muvera"] == {"k_sim": 2, "dim_proj": 2, "r_reps": 3, "seed": 7, "final_dim": None}
    assert "muvera" not in client.get("/v3/models/dense").json()


def test_request_parameters_and_query_side(client: TestClient) -> None:
    fields = {"k_sim": 3, "dim_proj": 4, "r_reps": 2, "seed": 1}
    body = _post(client, muvera=fields, input_type="query").json()
    m = Muvera(DIM, MuveraParams(**fields))
    assert body["muvera"] == {**fields, "final_dim": None, "input_type": "query", "dimensions": 8 * 4 * 2}
    for item, text in zip(body["data"], TEXTS, strict=True):
        np.testing.assert_allclose(item["embedding"], m.encode(expected(text, "query"), "query"), atol=1e-6)
    partial = _post(client, muvera={"seed": 9, "final_dim": 10}).json()["muvera"]
    assert partial == {"k_sim": 2, "dim_proj": 2, "r_reps": 3, "seed": 9, "final_dim": 10, "input_type": "document",
                       "dimensions": 10}  # the model's defaults with the request's changes


def test_encodings_and_muvera_off(client: TestClient) -> None:
    floats = np.array([d["embedding"] for d in _post(client, muvera=True).json()["data"]], dtype=np.float32)
    b64 = _post(client, muvera=True, encoding_format="base64").json()["data"]
    np.testing.assert_array_equal([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in b64], floats)
    packed = _post(client, muvera=True, encoding_format="binary").json()["data"]
    assert len(packed[0]["embedding"]) == 24 // 8
    off = _post(client, muvera=False).json()
    assert "muvera" not in off and len(off["data"][0]["embeddings"]) == len(expected(TEXTS[0], "document"))


@pytest.mark.parametrize(("muvera", "fields", "param", "words"), [
    ({"k": 3}, {}, "muvera.k", "unknown field(s) k"),
    ({"dim_proj": 8}, {}, "muvera.dim_proj", "4 dimensions"),
    ({"k_sim": "3"}, {}, "muvera.k_sim", "must be an integer"),
    ({"k_sim": 10, "dim_proj": 4, "r_reps": 64}, {}, "muvera", "more than 65536"),
    ("yes", {}, "muvera", "true or an object"),
    (True, {"encoding_format": "sparse"}, "encoding_format", "MUVERA"),
    (True, {"input_type": "passage"}, "input_type", "input_type"),
])
def test_bad_requests_are_400_naming_the_field(client: TestClient, muvera: Any, fields: dict[str, Any], param: str,
                                               words: str) -> None:
    resp = _post(client, muvera=muvera, **fields)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == param and words in error["message"]


def test_muvera_on_a_dense_model_names_its_task(client: TestClient) -> None:
    resp = client.post("/v3/embeddings", json={"model": "dense", "input": "hello", "muvera": True})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["param"] == "muvera"
    assert "token_embed model" in error["message"] and "'dense' is an embeddings model" in error["message"]
    missing = client.post("/v3/embeddings", json={"model": "nope", "input": "hello", "muvera": True})
    assert missing.status_code == 404
