"""Sparse routes over the fake engine: TEI's /embed_sparse and encoding_format "sparse" on the OpenAI
route: shapes, pruning, prompts, usage, errors in each API's envelope (and task mix-ups both ways)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.prompts import PromptSet
from ovembed.serving.api import SparseOptions
from tests.serving.fakes import FakeRegistry, FakeServable, expected_sparse, make_app, seen_ids, text_ids

MAX_LEN = 8


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(
        FakeServable("splade", task="sparse", max_length=MAX_LEN,
                     prompts=PromptSet({"query": "query: "}, None)),
        FakeServable("dense", max_length=MAX_LEN),
    )


@pytest.fixture
def client(registry: FakeRegistry) -> Iterator[TestClient]:
    with TestClient(make_app(registry, max_inputs=4)) as test_client:
        yield test_client


def _pairs(ids: list[int]) -> list[dict[str, float]]:
    row = expected_sparse(ids)
    return [{"index": int(i), "value": pytest.approx(float(row[i]))} for i in np.flatnonzero(row)]


def test_tei_shape_one_list_per_input_indices_ascending(client: TestClient) -> None:
    resp = client.post("/embed_sparse", json={"inputs": ["paris is nice", "hello"]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body) == 2
    assert body[0] == _pairs(text_ids("paris is nice")) and body[1] == _pairs(text_ids("hello"))
    assert [p["index"] for p in body[0]] == sorted(p["index"] for p in body[0])
    assert resp.headers["x-prompt-tokens"] == str(len(text_ids("paris is nice")) + len(text_ids("hello")))
    assert "x-inference-time" in resp.headers
    single = client.post("/v3/embed_sparse", json={"inputs": "hello", "model": "splade"}).json()
    assert single == [body[1]]


def test_pruning_fields_and_prompt_name(client: TestClient, registry: FakeRegistry) -> None:
    resp = client.post("/embed_sparse", json={"inputs": "a b c d e", "top_k": 2, "threshold": 0.55,
                                              "prompt_name": "query"})
    assert resp.status_code == 200, resp.text
    servable = registry.servables["splade"]
    assert servable.pruning[-1] == SparseOptions(top_k=2, threshold=0.55)
    assert servable.options[-1].prompt == "query: "
    row = expected_sparse(text_ids("query: a b c d e"))
    heaviest = sorted(np.argsort(-row, kind="stable")[:2].tolist())
    assert [p["index"] for p in resp.json()[0]] == heaviest


def test_truncation_fields(client: TestClient, registry: FakeRegistry) -> None:
    long = " ".join(f"w{i}" for i in range(20))
    resp = client.post("/embed_sparse", json={"inputs": long})
    assert resp.status_code == 413 or resp.status_code == 400
    assert set(resp.json()) == {"error", "error_type"}
    resp = client.post("/embed_sparse", json={"inputs": long, "truncate": True, "truncation_direction": "Left"})
    assert resp.status_code == 200, resp.text
    assert resp.json()[0] == _pairs(seen_ids(long, MAX_LEN, True, "left"))


def test_openai_sparse_variant(client: TestClient) -> None:
    resp = client.post("/v3/embeddings", json={"model": "splade", "input": ["paris is nice", "hello"],
                                               "encoding_format": "sparse", "top_k": 3})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == "splade" and [d["index"] for d in body["data"]] == [0, 1]
    first = body["data"][0]["embedding"]
    row = expected_sparse(text_ids("paris is nice"))
    assert first["indices"] == sorted(np.argsort(-row, kind="stable")[:3].tolist())
    assert first["values"] == pytest.approx([float(row[i]) for i in first["indices"]])
    tokens = len(text_ids("paris is nice")) + len(text_ids("hello"))
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/embed_sparse", {}, "inputs"),
    ("/embed_sparse", {"inputs": []}, "inputs"),
    ("/embed_sparse", {"inputs": [1, 2]}, "inputs"),
    ("/embed_sparse", {"inputs": "x", "top_k": 0}, "top_k"),
    ("/embed_sparse", {"inputs": "x", "threshold": -1}, "threshold"),
    ("/embed_sparse", {"inputs": "x", "threshold": "high"}, "threshold"),
    ("/embed_sparse", {"inputs": "x", "truncation_direction": "up"}, "truncation_direction"),
    ("/embed_sparse", {"inputs": "x", "prompt_name": "nope"}, "prompt_name"),
])
def test_tei_errors_in_tei_envelope(client: TestClient, path: str, body: dict[str, object], param: str) -> None:
    resp = client.post(path, json=body)
    assert resp.status_code == 400, resp.text
    err = resp.json()
    assert set(err) == {"error", "error_type"} and err["error_type"] in ("validation", "empty")
    assert err["error"]


def test_too_many_inputs_is_413(client: TestClient) -> None:
    resp = client.post("/embed_sparse", json={"inputs": ["a"] * 5})
    assert resp.status_code == 413 and "limit is 4" in resp.json()["error"]


def test_task_mixups_are_clear_400s(client: TestClient) -> None:
    resp = client.post("/v3/embeddings", json={"model": "splade", "input": "hello"})
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert "is a sparse model, not an embeddings model" in err["message"]
    assert "encoding_format 'sparse'" in err["message"]
    assert err["param"] == "model"
    resp = client.post("/v3/embeddings", json={"model": "dense", "input": "hello", "encoding_format": "sparse"})
    assert resp.status_code == 400
    assert "is an embeddings model, not a sparse model" in resp.json()["error"]["message"]
    resp = client.post("/embed_sparse", json={"inputs": "hello", "model": "dense"})
    assert resp.status_code == 400 and "not a sparse model" in resp.json()["error"]
    resp = client.post("/api/embed", json={"model": "splade", "input": "hello"})  # Ollama's envelope
    assert resp.status_code == 400 and "is a sparse model" in resp.json()["error"]


@pytest.mark.parametrize(("body", "param"), [
    ({"encoding_format": "sparse", "dimensions": 4}, "dimensions"),
    ({"top_k": 3}, "top_k"),
    ({"threshold": 0.1, "encoding_format": "float"}, "threshold"),
    ({"encoding_format": "sparse", "chunking": {"size": 4}}, "chunking"),
])
def test_openai_sparse_field_errors(client: TestClient, body: dict[str, object], param: str) -> None:
    resp = client.post("/v3/embeddings", json={"model": "splade", "input": "hello", **body})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param


def test_default_model_needs_exactly_one_sparse_model() -> None:
    two = FakeRegistry(FakeServable("a", task="sparse"), FakeServable("b", task="sparse"))
    with TestClient(make_app(two)) as c:
        resp = c.post("/embed_sparse", json={"inputs": "x"})
        assert resp.status_code == 400 and "Several sparse models" in resp.json()["error"]
        assert c.post("/embed_sparse", json={"inputs": "x", "model": "b"}).status_code == 200
    none = FakeRegistry(FakeServable("dense"))
    with TestClient(make_app(none)) as c:
        resp = c.post("/embed_sparse", json={"inputs": "x"})
        assert resp.status_code == 400 and "No sparse model is being served" in resp.json()["error"]


def test_model_cards_say_task_and_output_types(client: TestClient) -> None:
    cards = {c["id"]: c for c in client.get("/v3/models").json()["data"]}
    assert cards["splade"]["task"] == "sparse" and cards["splade"]["encoding_formats"] == ["sparse"]
    assert cards["splade"]["prompts"] == {"query": "query: "} and cards["splade"]["dimensions"] == 30522
    assert cards["dense"]["task"] == "embeddings" and "sparse" not in cards["dense"]["encoding_formats"]
    assert cards["dense"]["chunking"] == ["mean", "none"] and "chunking" not in cards["splade"]
    assert cards["splade"]["pruning"] == {"top_k": None, "threshold": 0.0} and "pruning" not in cards["dense"]


def test_openai_sdk_through_extra_body(client: TestClient) -> None:
    """The official SDK: encoding_format "sparse" passed as-is, pruning and prompts in extra_body."""
    from openai import OpenAI

    sdk = OpenAI(base_url="http://testserver/v3", api_key="unused", http_client=client)
    resp = sdk.embeddings.create(model="splade", input=["paris is nice"], encoding_format="sparse",  # type: ignore[arg-type]
                                 extra_body={"top_k": 2, "prompt_name": "query"})
    vector = resp.data[0].embedding
    assert isinstance(vector, dict) and len(vector["indices"]) == 2 and len(vector["values"]) == 2  # type: ignore[unreachable]
    assert resp.usage.prompt_tokens == len(text_ids("query: paris is nice"))
    raw = sdk.embeddings.with_raw_response.create(model="splade", input="hello",
                                                  extra_body={"encoding_format": "sparse"})
    assert raw.http_response.json()["data"][0]["embedding"]["indices"]
