"""A decoder reranker (tiny random Qwen3ForCausalLM, Qwen3-Reranker recipe) exported with ``--task rerank`` and
served in process through the real engine: scores against the model card's transformers recipe computed
here (tests/tiny_rerankers.py), on /v3/rerank, Cohere v2, TEI /rerank and vLLM /score; the per-request
instruction; the template applied on the server; a cross-encoder refusing an instruction; a causal LM
without yes/no tokens refused at export in one line."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.config import ExportConfig, ServeConfig, Task, WeightFormat
from ovembed.errors import ExportError
from ovembed.export.pipeline import export_model
from ovembed.repository import RECORD_FILENAME
from ovembed.serving.http.app import create_app

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(1800)]

QUERY = "what is the capital of france"
DOCS = ["paris is the capital", "the quick brown fox jumps over the lazy dog", "hello world",
        "openvino runs models fast on intel cpus", "le chat dort sur le canapé depuis ce matin"]
INSTRUCTION = "Judge whether the passage is written in French"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from tests.tiny_rerankers import build_qwen3_reranker

    return build_qwen3_reranker(tmp_path_factory.mktemp("qwen3rr-src") / "qwen3-reranker")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, source: Path) -> Path:
    from tests.tiny_models import BUILDERS

    repo = tmp_path_factory.mktemp("qwen3rr-repo")
    export_model(ExportConfig(source_model=str(source), model_name="qwen3rr", model_repository_path=repo,
                              task=Task.RERANK, weight_format=WeightFormat.FP32))
    from tests.tiny_rerankers import build_seq_cls_copy

    seq_cls = build_seq_cls_copy(source, tmp_path_factory.mktemp("seqcls-src") / "qwen3-reranker-seq-cls")
    export_model(ExportConfig(source_model=str(seq_cls), model_name="qwen3rr-seq-cls", model_repository_path=repo,
                              task=Task.RERANK, weight_format=WeightFormat.FP32))
    cross = BUILDERS["bert-rerank"](tmp_path_factory.mktemp("ce-src") / "bert")
    export_model(ExportConfig(source_model=str(cross), model_name="ce", model_repository_path=repo,
                              task=Task.RERANK, weight_format=WeightFormat.FP32))
    return repo


@pytest.fixture(scope="module")
def client(repo: Path) -> Iterator[TestClient]:
    cfg = ServeConfig(config_path=repo / "config.json", file_system_poll_wait_seconds=0)
    with TestClient(create_app(cfg), base_url="http://localhost") as c:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            states = [v["state"] for m in c.get("/v1/config").json().values() if isinstance(m, dict)
                      for v in m.get("model_version_status", [])]
            if states and all(s in ("AVAILABLE", "UNAVAILABLE", "END") for s in states):
                break
            time.sleep(0.5)
        yield c


def _reference(source: Path, instruction: str | None = None) -> np.ndarray:
    from tests.tiny_rerankers import recipe_scores

    return np.asarray(recipe_scores(source, [(QUERY, d) for d in DOCS], instruction), dtype=np.float32)


def _by_index(results: list[dict[str, float]], key: str = "relevance_score") -> np.ndarray:
    out = np.zeros(len(results), dtype=np.float32)
    for r in results:
        out[int(r["index"])] = r[key]
    return out


def test_export_records_the_head_the_template_and_the_verification(repo: Path) -> None:
    record = json.loads((repo / "qwen3rr" / RECORD_FILENAME).read_text())
    assert record["task"] == "rerank"
    assert record["rerank_template"]["instruction"] == \
        "Given a web search query, retrieve relevant passages that answer the query"
    assert record["rerank_template"]["suffix"] == "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert record["decoder_head"]["score"] == "sigmoid(yes - no)"
    assert record["verification"]["rank_agreement"] == 1.0
    assert record["verification"]["max_score_diff"] < 1e-4
    assert record["verification"]["reference"] == "transformers recipe"
    import openvino as ov

    model = ov.Core().read_model(repo / "qwen3rr" / "openvino_model.xml")
    assert [o.get_partial_shape()[1].get_length() for o in model.outputs] == [1]  # [batch, 1], no vocabulary


def test_v3_rerank_matches_the_recipe(client: TestClient, source: Path) -> None:
    ref = _reference(source)
    resp = client.post("/v3/rerank", json={"model": "qwen3rr", "query": QUERY, "documents": DOCS})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    got = _by_index(results)
    assert float(np.max(np.abs(got - ref))) < 1e-4
    assert [r["index"] for r in results] == np.argsort(-ref, kind="stable").tolist()  # rank agreement 1.0


def test_seq_cls_copy_serves_the_same_scores_with_the_server_side_template(client: TestClient, source: Path,
                                                                          repo: Path) -> None:
    record = json.loads((repo / "qwen3rr-seq-cls" / RECORD_FILENAME).read_text())
    assert record["decoder_head"]["rows"] == "score (seq-cls)"
    assert record["verification"]["rank_agreement"] == 1.0
    for instruction in (None, INSTRUCTION):
        ref = _reference(source, instruction)
        body = {"model": "qwen3rr-seq-cls", "query": QUERY, "documents": DOCS}
        resp = client.post("/v3/rerank", json={**body, "instruction": instruction} if instruction else body)
        assert resp.status_code == 200, resp.text
        assert float(np.max(np.abs(_by_index(resp.json()["results"]) - ref))) < 1e-4


def test_instruction_override_matches_the_recipe_with_that_instruction(client: TestClient, source: Path) -> None:
    ref = _reference(source, INSTRUCTION)
    assert float(np.max(np.abs(ref - _reference(source)))) > 1e-3  # the instruction changes the scores
    for path, body, key in (
        ("/v3/rerank", {"model": "qwen3rr", "query": QUERY, "documents": DOCS}, "relevance_score"),
        ("/v2/rerank", {"model": "qwen3rr", "query": QUERY, "documents": DOCS}, "relevance_score"),
        ("/rerank", {"query": QUERY, "texts": DOCS, "model": "qwen3rr"}, "score"),
    ):
        resp = client.post(path, json={**body, "instruction": INSTRUCTION})
        assert resp.status_code == 200, (path, resp.text)
        data = resp.json()
        got = _by_index(data if isinstance(data, list) else data["results"], key)
        assert float(np.max(np.abs(got - ref))) < 1e-4, path
    resp = client.post("/v1/score", json={"model": "qwen3rr", "text_1": QUERY, "text_2": DOCS,
                                          "instruction": INSTRUCTION})
    assert resp.status_code == 200, resp.text
    got = np.array([d["score"] for d in resp.json()["data"]], dtype=np.float32)
    assert float(np.max(np.abs(got - ref))) < 1e-4


def test_template_is_applied_on_the_server(client: TestClient, source: Path, repo: Path) -> None:
    """What the server tokenizes is the recipe's ids: the chunker's ids equal the recipe's, token for token."""
    from transformers import AutoTokenizer

    from ovembed.rerank_template import RerankTemplate
    from ovembed.serving.tasks.template_chunker import TemplateChunker
    from tests.tiny_rerankers import MAX_LENGTH, recipe_inputs

    record = json.loads((repo / "qwen3rr" / RECORD_FILENAME).read_text())
    chunker = TemplateChunker((repo / "qwen3rr" / "tokenizer.json").read_text(), max_length=MAX_LENGTH,
                              template=RerankTemplate.from_record(record["rerank_template"]))
    hf_tok = AutoTokenizer.from_pretrained(str(source), padding_side="left")
    long_doc = " ".join(["paris has many museums bridges and cafes"] * 40)
    for instruction in (None, INSTRUCTION):
        pairs = [(QUERY, d) for d in [*DOCS, long_doc]]
        expected = recipe_inputs(hf_tok, pairs, instruction)
        for (q, d), ids, mask in zip(pairs, expected["input_ids"], expected["attention_mask"], strict=True):
            want = ids[mask.bool()].tolist()
            got = chunker.chunk(q, [d], truncate=True, instruction=instruction).ids
            assert got == [want]
    # The server counts those tokens: usage is the recipe's length, prefix and suffix included.
    resp = client.post("/v3/rerank", json={"model": "qwen3rr", "query": QUERY, "documents": DOCS[:1]})
    want = int(recipe_inputs(hf_tok, [(QUERY, DOCS[0])])["attention_mask"].sum())
    assert resp.json()["usage"]["prompt_tokens"] == want


def test_long_document_is_chunked_and_truncate_gives_the_recipe(client: TestClient, source: Path) -> None:
    from tests.tiny_rerankers import recipe_scores

    long_doc = " ".join(["paris has many museums bridges and cafes"] * 40)
    ref = recipe_scores(source, [(QUERY, long_doc)])[0]
    resp = client.post("/rerank", json={"model": "qwen3rr", "query": QUERY, "texts": [long_doc], "truncate": True})
    assert resp.status_code == 200, resp.text
    assert abs(resp.json()[0]["score"] - ref) < 1e-4
    resp = client.post("/v3/rerank", json={"model": "qwen3rr", "query": QUERY, "documents": [long_doc]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["results"][0]["relevance_score"] >= ref - 1e-4  # the best chunk, the first among them


def test_instruction_on_a_cross_encoder_is_a_400(client: TestClient) -> None:
    resp = client.post("/v3/rerank", json={"model": "ce", "query": QUERY, "documents": DOCS,
                                           "instruction": INSTRUCTION})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "instruction"
    assert "cross-encoder" in resp.json()["error"]["message"]
    resp = client.post("/v3/rerank", json={"model": "qwen3rr", "query": QUERY, "documents": DOCS, "instruction": 3})
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == "'instruction' must be a non-empty string"


def test_causal_lm_without_yes_no_tokens_is_refused_in_one_line(tmp_path: Path) -> None:
    from tests.tiny_rerankers import build_qwen3_reranker

    source = build_qwen3_reranker(tmp_path / "src", with_yes_no=False)
    cfg = ExportConfig(source_model=str(source), model_repository_path=tmp_path / "repo", task=Task.RERANK)
    with pytest.raises(ExportError) as info:
        export_model(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert "needs the tokens 'yes' and 'no' in its vocabulary" in message
    assert not (tmp_path / "repo" / "config.json").exists()
    assert not any(p.name != "config.json" for p in (tmp_path / "repo").glob("*")) \
        if (tmp_path / "repo").exists() else True


@pytest.mark.parametrize("kind", ["llama", "gemma"])
def test_llama_and_gemma_causal_lms_take_the_same_head(tmp_path: Path, kind: str) -> None:
    """Same head layout on other decoders (convert_model route), verified against the recipe at export."""
    from tests.tiny_rerankers import build_qwen3_reranker

    source = build_qwen3_reranker(tmp_path / "src", kind=kind, seed=32)
    result = export_model(ExportConfig(source_model=str(source), model_name=kind, model_repository_path=tmp_path,
                                       task=Task.RERANK, weight_format=WeightFormat.FP32))
    record = json.loads((result.model_dir / RECORD_FILENAME).read_text())
    assert record["route"] == "convert_model"
    assert record["verification"]["rank_agreement"] == 1.0
    assert record["verification"]["max_score_diff"] < 1e-4
    ref = _reference(source)
    assert float(ref.max() - ref.min()) > 0.1  # scores spread: the comparison means something


def test_ovembed_compare_uses_the_recipe_for_a_decoder_folder(repo: Path) -> None:
    from ovembed.config import CompareConfig
    from ovembed.export.verify import compare_folder

    for name in ("qwen3rr", "qwen3rr-seq-cls"):
        lines: list[str] = []
        result = compare_folder(CompareConfig(model_path=repo / name, query=QUERY, input=list(DOCS)), lines.append)
        assert result.passed and result.max_diff < 1e-4 and result.rank_agreement == 1.0
        assert "transformers recipe" in lines[0]


def test_offline_load_takes_the_instruction(repo: Path, source: Path) -> None:
    import ovembed

    ref = _reference(source, INSTRUCTION)
    with ovembed.load(repo / "qwen3rr") as model:
        ranked = model.rerank(QUERY, DOCS, instruction=INSTRUCTION)
    got = np.zeros(len(DOCS), dtype=np.float32)
    for r in ranked:
        got[r["index"]] = r["score"]
    assert float(np.max(np.abs(got - ref))) < 1e-4
