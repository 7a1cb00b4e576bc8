"""Every peer's rerank body on every rerank path, and vLLM's /score, over the fake reranker.

Written from vLLM's, Jina's, Cohere's and TEI's documented APIs: the shape of each answer, which
defaults each path keeps, and the 400s (bodies and messages pinned)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from starlette.testclient import TestClient

from tests.serving.fakes import FakeRegistry, FakeServable, expected_logit, expected_vector, make_app, text_ids

QUERY = "capital of france"
DOCS = ["paris is the capital of france", "the quick brown fox", "france has a capital"]
MAX_LEN = 16  # queries of at most 8 words


@pytest.fixture
def servable() -> FakeServable:
    return FakeServable("rr", task="rerank", max_length=MAX_LEN)


@pytest.fixture
def client(servable: FakeServable) -> Iterator[TestClient]:
    registry = FakeRegistry(servable, FakeServable("emb", dimensions=8))
    with TestClient(make_app(registry, max_inputs=8)) as c:
        yield c


def _sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-np.float32(x))))


LOGITS = [expected_logit(QUERY, d) for d in DOCS]
ORDER = sorted(range(len(DOCS)), key=lambda i: -LOGITS[i])


@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank"])
def test_vllm_and_jina_body_returns_documents_by_default(client: TestClient, path: str) -> None:
    resp = client.post(path, json={"model": "rr", "query": QUERY, "documents": DOCS, "top_n": 2})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [r["index"] for r in body["results"]] == ORDER[:2]
    for r in body["results"]:
        assert r["document"] == {"text": DOCS[r["index"]]}
        assert r["relevance_score"] == pytest.approx(_sigmoid(LOGITS[r["index"]]), abs=1e-6)
    assert body["model"] == "rr" and body["id"] == resp.headers["x-request-id"]
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    off = client.post(path, json={"model": "rr", "query": QUERY, "documents": DOCS, "return_documents": False})
    assert all("document" not in r for r in off.json()["results"])


def test_vllm_top_n_zero_means_every_document(client: TestClient) -> None:
    body = client.post("/rerank", json={"model": "rr", "query": QUERY, "documents": DOCS, "top_n": 0}).json()
    assert [r["index"] for r in body["results"]] == ORDER


@pytest.mark.parametrize("path", ["/v2/rerank", "/v3/rerank", "/v3/v1/rerank", "/v3/v2/rerank"])
def test_cohere_and_ovms_paths_keep_their_defaults(client: TestClient, path: str) -> None:
    body = client.post(path, json={"model": "rr", "query": QUERY, "documents": DOCS}).json()
    assert [r["index"] for r in body["results"]] == ORDER and all("document" not in r for r in body["results"])
    assert body["meta"]["tokens"]["input_tokens"] == body["usage"]["prompt_tokens"]
    zero = client.post(path, json={"model": "rr", "query": QUERY, "documents": DOCS, "top_n": 0})
    assert zero.status_code == 400 and zero.json()["error"]["message"] == "'top_n' must be at least 1, got 0"


@pytest.mark.parametrize("field", ["use_activation", "activation"])
def test_use_activation_false_returns_logits(client: TestClient, field: str) -> None:
    body = client.post("/rerank", json={"model": "rr", "query": QUERY, "documents": DOCS, field: False}).json()
    assert {r["index"]: r["relevance_score"] for r in body["results"]} == pytest.approx(dict(enumerate(LOGITS)))
    assert [r["index"] for r in body["results"]] == ORDER


@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank", "/v2/rerank", "/v3/rerank"])
def test_tei_body_on_every_path_gets_tei_answer(client: TestClient, path: str) -> None:
    body = client.post(path, json={"query": QUERY, "texts": DOCS, "raw_scores": True, "return_text": True}).json()
    assert body == [{"index": i, "score": pytest.approx(LOGITS[i]), "text": DOCS[i]} for i in ORDER]
    bad = client.post(path, json={"query": QUERY, "texts": []})
    assert bad.json() == {"error": "`texts` cannot be empty", "error_type": "empty"}


def test_documents_body_on_rerank_gets_openai_error_envelope(client: TestClient) -> None:
    resp = client.post("/rerank", json={"model": "rr", "query": QUERY, "documents": []})
    assert resp.status_code == 400
    assert resp.json() == {"error": {"message": "'documents' must not be empty", "type": "invalid_request_error",
                                     "param": "documents", "code": None}}


LONG = " ".join(["word"] * 9)  # over the fake's 8-word query limit
TOO_LONG = ("'query' has 9 tokens; the model takes queries of at most 8 (half its 16-token window): shorten it, "
            "or let it be cut (truncate_prompt_tokens: -1; TEI: truncate: true)")


def test_long_query_per_front_end(client: TestClient, servable: FakeServable) -> None:
    vllm = client.post("/rerank", json={"model": "rr", "query": LONG, "documents": DOCS})
    assert vllm.status_code == 400 and vllm.json()["error"] == {
        "message": TOO_LONG, "type": "invalid_request_error", "param": "query", "code": None}
    assert client.post("/v1/rerank", json={"model": "rr", "query": LONG, "documents": DOCS}).status_code == 400
    cut = client.post("/rerank", json={"model": "rr", "query": LONG, "documents": DOCS, "truncate_prompt_tokens": -1})
    assert cut.status_code == 200 and servable.rerank_calls[-1][2].truncate is True
    assert client.post("/v2/rerank", json={"model": "rr", "query": LONG, "documents": DOCS}).status_code == 200
    assert client.post("/v3/rerank", json={"model": "rr", "query": LONG, "documents": DOCS}).status_code == 200
    tei = client.post("/rerank", json={"query": LONG, "texts": DOCS})
    assert tei.status_code == 400 and tei.json() == {"error": TOO_LONG, "error_type": "validation"}
    assert client.post("/rerank", json={"query": LONG, "texts": DOCS, "truncate": True}).status_code == 200


@pytest.mark.parametrize(("value", "message"), [
    (0, "'truncate_prompt_tokens' must be -1 (the model's maximum) or a positive integer"),
    (-2, "'truncate_prompt_tokens' must be -1 (the model's maximum) or a positive integer"),
    ("5", "'truncate_prompt_tokens' must be -1 (the model's maximum) or a positive integer"),
    (17, "'truncate_prompt_tokens' (17) is greater than the model's maximum length (16): "
         "request a smaller truncation size"),
    (5, "'truncate_prompt_tokens' below the model's window (5 < 16) is not supported for rerank: send -1 "
        "(one window per pair), or max_tokens_per_doc to cut documents"),
])
def test_truncate_prompt_tokens_errors(client: TestClient, value: object, message: str) -> None:
    resp = client.post("/rerank", json={"model": "rr", "query": QUERY, "documents": DOCS,
                                        "truncate_prompt_tokens": value})
    assert resp.status_code == 400 and resp.json()["error"]["message"] == message
    assert resp.json()["error"]["param"] == "truncate_prompt_tokens"
    assert client.post("/rerank", json={"model": "rr", "query": QUERY, "documents": DOCS,
                                        "truncate_prompt_tokens": MAX_LEN}).status_code == 200


# -- /score --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/score", "/v1/score"])
def test_score_one_to_n(client: TestClient, path: str) -> None:
    resp = client.post(path, json={"model": "rr", "text_1": QUERY, "text_2": DOCS})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "list" and body["model"] == "rr" and isinstance(body["created"], int)
    assert [d["index"] for d in body["data"]] == [0, 1, 2] and {d["object"] for d in body["data"]} == {"score"}
    assert [d["score"] for d in body["data"]] == pytest.approx([_sigmoid(v) for v in LOGITS], abs=1e-6)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    assert body["usage"]["completion_tokens"] == 0


def test_score_n_to_n_pairs_and_names(client: TestClient) -> None:
    firsts = ["paris", "fox brown", "paris"]
    seconds = ["paris is nice", "the quick brown fox", "nothing here"]
    expected = [expected_logit(a, b) for a, b in zip(firsts, seconds, strict=True)]
    for names in (("text_1", "text_2"), ("queries", "documents"), ("queries", "items"), ("data_1", "data_2")):
        body = client.post("/score", json={"model": "rr", names[0]: firsts, names[1]: seconds,
                                           "use_activation": False}).json()
        assert [d["score"] for d in body["data"]] == pytest.approx(expected), names
    one = client.post("/score", json={"text_1": ["paris"], "text_2": "paris is nice", "activation": False}).json()
    assert one["data"][0]["score"] == pytest.approx(expected_logit("paris", "paris is nice"))


@pytest.mark.parametrize(("body", "param", "message"), [
    ({"text_1": ["a", "b"], "text_2": ["c"]}, "text_1", "Input lengths must be either 1:1, 1:N or N:N"),
    ({"text_1": [], "text_2": ["c"]}, "text_1", "At least one text element must be given"),
    ({"text_1": "a", "text_2": []}, "text_2", "At least one text_pair element must be given"),
    ({"text_1": "a"}, "text_1", "Missing required fields 'text_1' and 'text_2' (or 'queries' and 'documents')"),
    ({"text_1": 3, "text_2": "b"}, "text_1", "'text_1' must be a string or a list of strings"),
    ({"text_1": "a", "text_2": ["b"] * 9}, "text_2", "Too many inputs: 9 in one request, the limit is 8"),
    ({"text_1": LONG, "text_2": "b"}, "query", TOO_LONG),
])
def test_score_errors(client: TestClient, body: dict[str, object], param: str, message: str) -> None:
    resp = client.post("/score", json=body)
    assert resp.status_code in (400, 413), resp.text
    error = resp.json()["error"]
    assert error["message"] == message and error["param"] == param


def test_score_with_an_embeddings_model_is_cosine(client: TestClient) -> None:
    firsts, seconds = ["a b", "c"], ["a b", "d e f"]
    body = client.post("/score", json={"model": "emb", "text_1": firsts, "text_2": seconds}).json()
    want = [float(expected_vector(text_ids(a), 8, True) @ expected_vector(text_ids(b), 8, True))
            for a, b in zip(firsts, seconds, strict=True)]
    assert [d["score"] for d in body["data"]] == pytest.approx(want, abs=1e-6)
    assert want[0] == pytest.approx(1.0)
    assert body["usage"]["prompt_tokens"] == (4 + 4) + (3 + 5)


@pytest.mark.parametrize(("path", "body"), [
    ("/v3/rerank", {"model": "rr", "query": QUERY, "documents": DOCS}),
    ("/v2/rerank", {"model": "rr", "query": QUERY, "documents": DOCS}),
    ("/v1/rerank", {"model": "rr", "query": QUERY, "documents": DOCS}),
    ("/rerank", {"query": QUERY, "texts": DOCS}),
    ("/v1/score", {"model": "rr", "text_1": QUERY, "text_2": DOCS}),
])
def test_every_rerank_body_carries_the_instruction(client: TestClient, servable: FakeServable, path: str,
                                                    body: dict[str, object]) -> None:
    """A decoder reranker's per-request instruction reaches the servable from every body; absent, None."""
    assert client.post(path, json=body).status_code == 200
    assert servable.rerank_calls[-1][2].instruction is None
    resp = client.post(path, json={**body, "instruction": "find french text"})
    assert resp.status_code == 200, resp.text
    assert servable.rerank_calls[-1][2].instruction == "find french text"
    bad = client.post(path, json={**body, "instruction": ""})
    assert bad.status_code == 400
    assert "'instruction' must be a non-empty string" in bad.text


def test_score_with_an_instruction_on_an_embeddings_model_is_a_400(client: TestClient) -> None:
    resp = client.post("/v1/score", json={"model": "emb", "text_1": "a", "text_2": ["b"], "instruction": "x"})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "instruction"
