"""Rerank routes on the real engine: two tiny cross-encoders and an embeddings model served from
one config.json. Scores are checked against sentence-transformers' CrossEncoder, long documents
against the PyTorch model run on the very chunks, and every error path of both request schemas."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.serving.http.app import create_app
from tests.tiny_models import TINY_INT8_MAX_SCORE_DIFF

pytestmark = pytest.mark.filterwarnings("ignore")
QUERY = "what is the capital of france"
DOCS = ["paris is the capital", "the quick brown fox jumps over the lazy dog", "hello world",
        "openvino runs models fast on intel cpus", "le chat dort sur le canapé"]
MAX_DOCS = 16


@pytest.fixture(scope="module")
def client(rerank_repo: Path) -> Iterator[TestClient]:
    cfg = ServeConfig(config_path=rerank_repo, file_system_poll_wait_seconds=0, max_inputs=MAX_DOCS)
    with TestClient(create_app(cfg), base_url="http://localhost") as c:
        deadline = time.monotonic() + 300
        while c.get("/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield c


@pytest.fixture(scope="module")
def cross_encoders(rerank_sources: dict[str, Path]):  # type: ignore[no-untyped-def]
    from sentence_transformers import CrossEncoder

    return {name: CrossEncoder(str(path), device="cpu") for name, path in
            (("rerank/bert", rerank_sources["bert-rerank"]), ("rerank/xlmr", rerank_sources["xlmr-rerank"]))}


def _reference(cross_encoders, model: str, docs: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(cross_encoders[model].predict([(QUERY, d) for d in docs], show_progress_bar=False))


@pytest.mark.parametrize(("model", "tolerance"), [("rerank/bert", 1e-4), ("rerank/xlmr", TINY_INT8_MAX_SCORE_DIFF)])
def test_scores_and_order_equal_cross_encoder(client: TestClient, cross_encoders, model: str,  # type: ignore[no-untyped-def]
                                              tolerance: float) -> None:
    resp = client.post("/v3/rerank", json={"model": model, "query": QUERY, "documents": DOCS})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    ref = _reference(cross_encoders, model, DOCS)
    got = {r["index"]: r["relevance_score"] for r in body["results"]}
    assert sorted(got) == list(range(len(DOCS)))
    assert max(abs(got[i] - ref[i]) for i in got) < tolerance
    scores = [r["relevance_score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    if model == "rerank/bert":  # fp32: the ranking is CrossEncoder's exactly
        assert [r["index"] for r in body["results"]] == np.argsort(-ref, kind="stable").tolist()
    assert body["model"] == model and body["id"] == resp.headers["x-request-id"]
    tokens = body["usage"]["prompt_tokens"]
    assert tokens == body["usage"]["total_tokens"] == body["meta"]["tokens"]["input_tokens"]
    tok = cross_encoders[model].tokenizer
    assert tokens == sum(len(tok(QUERY, d)["input_ids"]) for d in DOCS)
    for header in ("x-tokenization-time", "x-queue-time", "x-inference-time", "x-total-time"):
        assert float(resp.headers[header]) >= 0  # fractional milliseconds


@pytest.mark.parametrize("path", ["/v3/rerank", "/v1/rerank", "/v2/rerank", "/v3/v1/rerank", "/v3/v2/rerank"])
def test_top_n_and_return_documents_on_every_path(client: TestClient, path: str) -> None:
    docs = ["plain text", {"text": "object text", "title": "kept as sent"}, "third"]
    body = client.post(path, json={"model": "rerank/bert", "query": QUERY, "documents": docs, "top_n": 2,
                                   "return_documents": True}).json()
    assert len(body["results"]) == 2
    for item in body["results"]:
        sent = docs[item["index"]]
        assert item["document"] == ({"text": sent} if isinstance(sent, str) else sent)
    full = client.post(path, json={"model": "rerank/bert", "query": QUERY, "documents": docs, "top_n": 10}).json()
    assert len(full["results"]) == 3 and all("document" not in r for r in full["results"])
    assert [r["index"] for r in full["results"]][:2] == [r["index"] for r in body["results"]]


def test_rank_fields_rank_on_the_named_fields(client: TestClient) -> None:
    docs = [{"title": "paris", "text": "capital"}, {"title": "fox", "text": "dog"}]
    by_fields = client.post("/v1/rerank", json={"model": "rerank/bert", "query": QUERY, "documents": docs,
                                                "rank_fields": ["title", "text"]}).json()
    as_text = client.post("/v1/rerank", json={"model": "rerank/bert", "query": QUERY, "documents": [
        "title: paris\ntext: capital", "title: fox\ntext: dog"]}).json()
    assert by_fields["results"] == as_text["results"]


def test_long_document_scores_its_best_chunk(client: TestClient, rerank_repo: Path, rerank_sources) -> None:  # type: ignore[no-untyped-def]
    """The relevant sentence sits past the first window. The reference, the PyTorch model run on
    every chunk, shows the chunk holding it scores clearly above the first window (which is all a
    truncating CrossEncoder sees); the served score is exactly that best chunk's."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ovembed.heads.rerank import _derived_types
    from ovembed.serving.tasks.pair_chunker import PairChunker

    source = rerank_sources["bert-rerank"]
    model = AutoModelForSequenceClassification.from_pretrained(str(source)).eval()
    tok = AutoTokenizer.from_pretrained(str(source))

    def torch_scores(pairs: list[list[int]]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for ids in pairs:
                arr = np.array([ids])
                types = _derived_types(arr, tok.sep_token_id)
                logit = model(input_ids=torch.tensor(arr), token_type_ids=torch.tensor(types)).logits[0, 0]
                out.append(float(torch.sigmoid(logit)))
        return np.array(out)

    candidates = ["paris is the capital", "the quick brown fox jumps over the lazy dog", "hello world",
                  "openvino runs models fast on intel cpus", "numbers like 1 2 3 42 and 2026 appear in text",
                  "semantic search clustering retrieval and deduplication", "le chat dort sur le canapé"]
    alone = torch_scores([tok(QUERY, c)["input_ids"] for c in candidates])
    relevant, filler = candidates[int(np.argmax(alone))], candidates[int(np.argmin(alone))]
    fillers = [filler]
    while len(tok(" ".join(fillers), add_special_tokens=False)["input_ids"]) < 120:  # past two windows
        fillers.append(filler)
    relevants = [relevant]
    while len(tok(" ".join(relevants), add_special_tokens=False)["input_ids"]) < 40:  # most of a window
        relevants.append(relevant)
    document = " ".join([*fillers, *relevants])
    chunker = PairChunker((rerank_repo.parent / "rerank" / "bert" / "tokenizer.json").read_text(), max_length=64)
    chunks = chunker.chunk(QUERY, [document])
    assert chunks.chunk_counts[0] >= 3
    per_chunk = torch_scores(chunks.ids)
    first_window = torch_scores([tok(QUERY, document, truncation=True, max_length=64)["input_ids"]])[0]
    assert per_chunk[0] == pytest.approx(first_window, abs=1e-6)
    # the reference shows the case: the best chunk is past the first window and far above it
    assert int(np.argmax(per_chunk)) > 0 and per_chunk.max() - first_window > 0.1, (per_chunk, first_window)

    body = client.post("/v3/rerank", json={"model": "rerank/bert", "query": QUERY, "documents": [document]}).json()
    assert body["results"][0]["relevance_score"] == pytest.approx(float(per_chunk.max()), abs=1e-4)
    assert body["usage"]["prompt_tokens"] == sum(len(c) for c in chunks.ids)
    cut = client.post("/v3/rerank", json={"model": "rerank/bert", "query": QUERY, "documents": [document],
                                          "max_tokens_per_doc": 10}).json()
    cut_ids = chunker.chunk(QUERY, [document], max_doc_tokens=10).ids
    assert len(cut_ids) == 1 and cut["usage"]["prompt_tokens"] == len(cut_ids[0])
    assert cut["results"][0]["relevance_score"] == pytest.approx(float(torch_scores(cut_ids)[0]), abs=1e-4)


def test_more_chunks_than_allowed_is_a_400_naming_the_limit(client: TestClient) -> None:
    docs = [" ".join(["the quick brown fox jumps over the lazy dog"] * 10)] * 3  # 3+ chunks each, limit 8
    resp = client.post("/v3/rerank", json={"model": "rerank/xlmr", "query": QUERY, "documents": docs})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert "more than the model's max_allowed_chunks (8)" in error["message"] and error["param"] == "documents"
    ok = client.post("/v3/rerank", json={"model": "rerank/xlmr", "query": QUERY, "documents": docs,
                                         "max_tokens_per_doc": 20})
    assert ok.status_code == 200 and len(ok.json()["results"]) == 3
    tei = client.post("/rerank", json={"model": "rerank/xlmr", "query": QUERY, "texts": docs, "truncate": True})
    assert tei.status_code == 200


@pytest.mark.parametrize(("body", "status", "param", "message"), [
    ({"query": QUERY, "documents": DOCS}, 400, "model", "Missing required field 'model'"),
    ({"model": 3, "query": QUERY, "documents": DOCS}, 400, "model", "'model' must be a string"),
    ({"model": "rerank/bert", "documents": DOCS}, 400, "query", "Missing required field 'query'"),
    ({"model": "rerank/bert", "query": ["x"], "documents": DOCS}, 400, "query", "'query' must be a string"),
    ({"model": "rerank/bert", "query": "", "documents": DOCS}, 400, "query", "'query' must not be empty"),
    ({"model": "rerank/bert", "query": QUERY}, 400, "documents", "Missing required field 'documents'"),
    ({"model": "rerank/bert", "query": QUERY, "documents": "text"}, 400, "documents", "must be a list"),
    ({"model": "rerank/bert", "query": QUERY, "documents": []}, 400, "documents", "'documents' must not be empty"),
    ({"model": "rerank/bert", "query": QUERY, "documents": ["a", 3]}, 400, "documents",
     "'documents[1]' must be a string or an object with a string 'text'"),
    ({"model": "rerank/bert", "query": QUERY, "documents": [{"title": "t"}]}, 400, "documents",
     "'documents[0]' must be a string or an object with a string 'text'"),
    ({"model": "rerank/bert", "query": QUERY, "documents": [{"text": "t"}], "rank_fields": ["title"]}, 400,
     "documents", "has no string field 'title'"),
    ({"model": "rerank/bert", "query": QUERY, "documents": DOCS, "rank_fields": "title"}, 400, "rank_fields",
     "'rank_fields' must be a non-empty list"),
    ({"model": "rerank/bert", "query": QUERY, "documents": DOCS, "top_n": 0}, 400, "top_n",
     "'top_n' must be at least 1, got 0"),
    ({"model": "rerank/bert", "query": QUERY, "documents": DOCS, "top_n": "2"}, 400, "top_n",
     "'top_n' must be an integer"),
    ({"model": "rerank/bert", "query": QUERY, "documents": DOCS, "return_documents": "yes"}, 400,
     "return_documents", "'return_documents' must be a boolean"),
    ({"model": "rerank/bert", "query": QUERY, "documents": DOCS, "max_tokens_per_doc": 0}, 400,
     "max_tokens_per_doc", "'max_tokens_per_doc' must be at least 1"),
    ({"model": "rerank/bert", "query": QUERY, "documents": ["d"] * (MAX_DOCS + 1)}, 413, "documents",
     f"Too many inputs: {MAX_DOCS + 1} in one request, the limit is {MAX_DOCS}"),
    ({"model": "nope", "query": QUERY, "documents": DOCS}, 404, "model", "The model 'nope' does not exist"),
    ({"model": "embed/bert", "query": QUERY, "documents": DOCS}, 400, "model",
     "The model 'embed/bert' is an embeddings model, not a rerank model (use /v3/embeddings)"),
])
def test_cohere_schema_errors(client: TestClient, body: dict[str, object], status: int, param: str,
                              message: str) -> None:
    resp = client.post("/v3/rerank", json=body)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert message in error["message"] and error["param"] == param


def test_invalid_json_body(client: TestClient) -> None:
    resp = client.post("/v3/rerank", content=b"{not json")
    assert resp.status_code == 400 and "Invalid JSON body" in resp.json()["error"]["message"]


def test_rerank_model_refuses_embeddings(client: TestClient) -> None:
    resp = client.post("/v3/embeddings", json={"model": "rerank/bert", "input": "x"})
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == ("The model 'rerank/bert' is a rerank model, not an embeddings "
                                               "model (use /v3/rerank)")
    assert client.post("/v3/embeddings", json={"model": "embed/bert", "input": "x"}).status_code == 200


def test_tei_rerank(client: TestClient, cross_encoders) -> None:  # type: ignore[no-untyped-def]
    ref = _reference(cross_encoders, "rerank/bert", DOCS)
    body = client.post("/rerank", json={"model": "rerank/bert", "query": QUERY, "texts": DOCS}).json()
    assert [r["index"] for r in body] == np.argsort(-ref, kind="stable").tolist()
    assert all("text" not in r for r in body)
    assert max(abs(r["score"] - ref[r["index"]]) for r in body) < 1e-4
    raw = client.post("/rerank", json={"model": "rerank/bert", "query": QUERY, "texts": DOCS, "raw_scores": True,
                                       "return_text": True}).json()
    logits = np.log(ref / (1 - ref))
    assert max(abs(r["score"] - logits[r["index"]]) for r in raw) < 1e-3
    assert [r["text"] for r in raw] == [DOCS[r["index"]] for r in raw]


def test_tei_truncation_direction(client: TestClient) -> None:
    long = " ".join(["paris is the capital"] * 20) + " " + " ".join(["the quick brown fox"] * 20)
    scores = {}
    for direction in ("Right", "left"):
        body = client.post("/rerank", json={"model": "rerank/bert", "query": QUERY, "texts": [long, "x"],
                                            "truncate": True, "truncation_direction": direction}).json()
        scores[direction] = next(r["score"] for r in body if r["index"] == 0)
    chunked = client.post("/rerank", json={"model": "rerank/bert", "query": QUERY, "texts": [long]}).json()[0]
    assert scores["Right"] != pytest.approx(scores["left"], abs=1e-3)
    assert chunked["score"] >= max(scores.values()) - 1e-4  # the best chunk is at least either end


@pytest.mark.parametrize(("body", "status", "error_type", "message"), [
    ({"model": "rerank/bert", "query": QUERY, "texts": []}, 400, "empty", "`texts` cannot be empty"),
    ({"model": "rerank/bert", "texts": ["a"]}, 400, "validation", "Missing required field 'query'"),
    ({"model": "rerank/bert", "query": QUERY, "texts": "a"}, 400, "validation", "'texts' must be a list of strings"),
    ({"model": "rerank/bert", "query": QUERY, "texts": ["a"], "raw_scores": 1}, 400, "validation",
     "'raw_scores' must be a boolean"),
    ({"model": "rerank/bert", "query": QUERY, "texts": ["a"], "truncation_direction": "up"}, 400, "validation",
     "'truncation_direction' must be 'right' or 'left'"),
    ({"query": QUERY, "texts": ["a"]}, 400, "validation",
     "Several rerank models are served (rerank/bert, rerank/xlmr): name one in 'model'"),
    ({"model": "gone", "query": QUERY, "texts": ["a"]}, 404, "validation", "The model 'gone' does not exist"),
])
def test_tei_errors(client: TestClient, body: dict[str, object], status: int, error_type: str,
                    message: str) -> None:
    resp = client.post("/rerank", json=body)
    assert resp.status_code == status
    assert resp.json() == {"error": message, "error_type": error_type}


def test_models_show_their_task_and_kserve_metadata(client: TestClient) -> None:
    cards = {m["id"]: m for m in client.get("/v3/models").json()["data"]}
    assert {name: card["task"] for name, card in cards.items()} == {
        "rerank/bert": "rerank", "rerank/xlmr": "rerank", "embed/bert": "embeddings"}
    meta = client.get("/v2/models/rerank/bert").json()
    assert meta["name"] == "rerank/bert" and meta["inputs"] == [] and meta["outputs"] == []
    assert client.get("/v2/models/rerank/bert/ready").status_code == 200
    infer = client.post("/v2/models/rerank/bert/infer", json={"inputs": [
        {"name": "input", "datatype": "BYTES", "shape": [1], "data": ["x"]}]})
    assert infer.status_code == 400 and "is a rerank model" in infer.json()["error"]


def test_metrics_count_rerank_requests(client: TestClient) -> None:
    client.post("/v3/rerank", json={"model": "rerank/xlmr", "query": QUERY, "documents": DOCS})
    text = client.get("/metrics").text
    lines = [line for line in text.splitlines() if 'model="rerank/xlmr"' in line and not line.startswith("#")]
    assert any("/v3/rerank" in line for line in lines), lines[:5]


def test_reload_adds_and_removes_a_rerank_model(rerank_repo: Path, tmp_path: Path) -> None:
    import json

    root = rerank_repo.parent
    config = tmp_path / "config.json"

    def write(names: list[str]) -> None:
        entries = [{"config": {"name": n, "base_path": str(root / n)}} for n in names]
        config.write_text(json.dumps({"model_config_list": entries}))

    write(["embed/bert"])
    cfg = ServeConfig(config_path=config, file_system_poll_wait_seconds=0)
    with TestClient(create_app(cfg), base_url="http://localhost") as c:
        deadline = time.monotonic() + 300
        while c.get("/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        body = {"model": "rerank/bert", "query": QUERY, "documents": DOCS}
        assert c.post("/v3/rerank", json=body).status_code == 404
        write(["embed/bert", "rerank/bert"])
        assert c.post("/v1/config/reload").status_code == 201
        resp = c.post("/v3/rerank", json=body)
        assert resp.status_code == 200 and len(resp.json()["results"]) == len(DOCS)
        assert c.post("/rerank", json={"query": QUERY, "texts": DOCS}).status_code == 200  # the only reranker
        write(["embed/bert"])
        assert c.post("/v1/config/reload").status_code == 201
        assert c.post("/v3/rerank", json=body).status_code == 404
        assert c.post("/rerank", json={"query": QUERY, "texts": DOCS}).json() == {
            "error": "No rerank model is being served", "error_type": "validation"}


def test_serves_an_ovms_written_rerank_folder(rerank_repo: Path, tmp_path: Path, cross_encoders) -> None:  # type: ignore[no-untyped-def]
    """No ovembed_model.json, OVMS's export_model.py graph: the head comes from the model's own files."""
    import shutil

    folder = tmp_path / "ovms-bert"
    shutil.copytree(rerank_repo.parent / "rerank" / "bert", folder)
    (folder / "ovembed_model.json").unlink()
    (folder / "graph.pbtxt").write_text(
        "# OVMS_GRAPH_QUEUE_MAX_SIZE: AUTO\n"
        'input_stream: "REQUEST_PAYLOAD:input"\noutput_stream: "RESPONSE_PAYLOAD:output"\n'
        'node {\n  name: "RerankExecutor"\n  input_side_packet: "RERANK_NODE_RESOURCES:rerank_servable"\n'
        '  calculator: "RerankCalculatorOV"\n  input_stream: "REQUEST_PAYLOAD:input"\n'
        '  output_stream: "RESPONSE_PAYLOAD:output"\n  node_options: {\n'
        '    [type.googleapis.com / mediapipe.RerankCalculatorOVOptions]: {\n'
        '      models_path: "./",\n      plugin_config: \'{"NUM_STREAMS": "1" }\',\n      target_device: "CPU"\n'
        "    }\n  }\n}\n")
    cfg = ServeConfig(model_path=folder, model_name="ovms", file_system_poll_wait_seconds=0)
    with TestClient(create_app(cfg), base_url="http://localhost") as c:
        deadline = time.monotonic() + 300
        while c.get("/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        body = c.post("/rerank", json={"query": QUERY, "texts": DOCS}).json()
    ref = _reference(cross_encoders, "rerank/bert", DOCS)
    assert max(abs(r["score"] - ref[r["index"]]) for r in body) < 1e-4
