"""Tiny random BertForSequenceClassification models with three labels, built offline and seeded: an NLI-style
one (softmax) and a multi-label guard-style one (sigmoid). Exported fp32 with --task classify next to an
embeddings model, served in process, and compared with transformers: TEI's /predict (texts, pairs, batches,
raw_scores) and vLLM's /classify, probabilities within 1e-4; the record; task mix-ups; export refusals."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.serving.http.app import create_app
from tests.tiny_models import GUARD_LABELS, NLI_LABELS

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]
TEXTS = ["the quick brown fox jumps over the lazy dog", "hello world", "paris is the capital of france",
         " ".join(["openvino runs models fast on intel cpus"] * 12)]  # longer than the 64-token window
PAIRS = [("what is the capital of france", "paris is the capital"),
         ("hello world", "le chat dort sur le canapé depuis ce matin"),
         ("a b c", "the lazy dog")]
MAX_DIFF = 1e-4


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("torch")
    from tests.tiny_models import BUILDERS

    root = tmp_path_factory.mktemp("classify-src")
    return {name: BUILDERS[name](root / name) for name in ("bert-classify", "bert-multilabel", "bert-mean")}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, sources: dict[str, Path]) -> Path:
    from ovembed.config import ExportConfig, Task, WeightFormat
    from ovembed.export.pipeline import export_model

    root = tmp_path_factory.mktemp("classify-repo")
    for name, source, task in (("nli", "bert-classify", Task.CLASSIFY), ("guard", "bert-multilabel", Task.CLASSIFY),
                               ("embed", "bert-mean", Task.EMBEDDINGS)):
        export_model(ExportConfig(source_model=str(sources[source]), model_name=name, model_repository_path=root,
                                  task=task, weight_format=WeightFormat.FP32))
    return root


@pytest.fixture(scope="module")
def client(repo: Path) -> Iterator[TestClient]:
    cfg = ServeConfig(config_path=repo / "config.json", file_system_poll_wait_seconds=0)
    with TestClient(create_app(cfg), base_url="http://localhost") as c:
        deadline = time.monotonic() + 300
        while c.get("/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield c


def reference(source: Path, inputs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """transformers' logits and probabilities (softmax, or sigmoid for multi-label), one input at a time."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(source))
    model = AutoModelForSequenceClassification.from_pretrained(str(source)).eval()
    rows = []
    with torch.inference_mode():
        for item in inputs:
            enc = tok(*((item,) if isinstance(item, str) else item), truncation=True, max_length=64,
                      return_tensors="pt")
            rows.append(model(**enc).logits[0].numpy())
    logits = np.stack(rows)
    if model.config.problem_type == "multi_label_classification":
        return logits, 1 / (1 + np.exp(-logits))
    return logits, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def _by_label(predictions: list[dict[str, Any]], labels: tuple[str, ...]) -> np.ndarray:
    scores = {p["label"]: p["score"] for p in predictions}
    assert set(scores) == set(labels)
    assert [p["score"] for p in predictions] == sorted(scores.values(), reverse=True)  # best first
    return np.array([scores[x] for x in labels])


def test_record(repo: Path) -> None:
    record = json.loads((repo / "nli" / "ovembed_model.json").read_text())
    assert record["task"] == "classify"
    assert record["classify_head"]["labels"] == list(NLI_LABELS)
    assert record["classify_head"]["problem_type"] == "single_label_classification"
    assert record["classify_head"]["activation"] == "softmax"
    assert record["verification"]["max_logit_diff"] <= 1e-3 and record["verification"]["top_label_agreement"] == 1.0
    assert record["verification"]["pairs"] > 0
    guard = json.loads((repo / "guard" / "ovembed_model.json").read_text())["classify_head"]
    assert guard["problem_type"] == "multi_label_classification" and guard["activation"] == "sigmoid"
    assert "ClassificationCalculatorOV" in (repo / "nli" / "graph.pbtxt").read_text()


@pytest.mark.parametrize(("model", "source", "labels"), [("nli", "bert-classify", NLI_LABELS),
                                                        ("guard", "bert-multilabel", GUARD_LABELS)])
def test_predict_matches_transformers(client: TestClient, sources: dict[str, Path], model: str, source: str,
                                      labels: tuple[str, ...]) -> None:
    inputs: list[Any] = [*TEXTS, *PAIRS]
    logits, probs = reference(sources[source], inputs)
    batch = client.post("/predict", json={"model": model, "inputs": [[t] if isinstance(t, str) else list(t)
                                                                      for t in inputs], "truncate": True})
    assert batch.status_code == 200, batch.text
    got = np.stack([_by_label(row, labels) for row in batch.json()])
    assert np.abs(got - probs).max() < MAX_DIFF, np.abs(got - probs).max()
    assert (got.argmax(axis=1) == probs.argmax(axis=1)).all()
    raw = client.post("/predict", json={"model": model, "inputs": list(PAIRS[0]), "raw_scores": True})
    assert raw.status_code == 200, raw.text
    assert np.abs(_by_label(raw.json(), labels) - logits[len(TEXTS)]).max() < MAX_DIFF  # one pair: one flat list
    one = client.post("/predict", json={"model": model, "inputs": TEXTS[0]}).json()
    assert np.abs(_by_label(one, labels) - probs[0]).max() < MAX_DIFF


def test_vllm_classify_matches_transformers(client: TestClient, sources: dict[str, Path]) -> None:
    texts = TEXTS[:3]
    logits, probs = reference(sources["bert-classify"], texts)
    resp = client.post("/v1/classify", json={"model": "nli", "input": texts})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "list" and body["model"] == "nli" and body["usage"]["prompt_tokens"] > 0
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert [d["num_classes"] for d in body["data"]] == [3, 3, 3]
    got = np.array([d["probs"] for d in body["data"]])
    assert np.abs(got - probs).max() < MAX_DIFF
    assert [d["label"] for d in body["data"]] == [NLI_LABELS[i] for i in probs.argmax(axis=1)]
    raw = client.post("/classify", json={"model": "nli", "input": texts[0], "use_activation": False}).json()
    assert np.abs(np.array(raw["data"][0]["probs"]) - logits[0]).max() < MAX_DIFF


def test_too_long_without_truncate(client: TestClient) -> None:
    resp = client.post("/predict", json={"model": "nli", "inputs": TEXTS[3]})
    assert resp.status_code == 400
    assert "the model takes at most 64" in resp.json()["error"]
    vllm = client.post("/classify", json={"model": "nli", "input": [TEXTS[0], TEXTS[3]]})
    assert vllm.status_code == 400 and "input[1] has" in vllm.json()["error"]["message"]
    cut = client.post("/classify", json={"model": "nli", "input": TEXTS[3], "truncate_prompt_tokens": -1})
    assert cut.status_code == 200 and cut.json()["usage"]["prompt_tokens"] == 64


def test_wrong_task_both_ways(client: TestClient) -> None:
    resp = client.post("/v3/embeddings", json={"model": "nli", "input": "hello"})
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == ("The model 'nli' is a classify model, not an embeddings model "
                                               "(use /predict or /classify)")
    resp = client.post("/classify", json={"model": "embed", "input": "hello"})
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == ("The model 'embed' is an embeddings model, not a classify model "
                                               "(use /v3/embeddings)")
    tei = client.post("/predict", json={"model": "embed", "inputs": "hello"})
    assert tei.status_code == 400 and tei.json()["error_type"] == "validation"


def test_export_refuses_one_logit_and_writes_nothing(tmp_path: Path) -> None:
    from ovembed.config import ExportConfig, Task
    from ovembed.errors import ExportError
    from ovembed.export.pipeline import export_model
    from tests.tiny_models import BUILDERS

    source = BUILDERS["bert-rerank"](tmp_path / "ce")
    repo = tmp_path / "repo"
    with pytest.raises(ExportError) as err:
        export_model(ExportConfig(source_model=str(source), model_name="ce", model_repository_path=repo,
                                  task=Task.CLASSIFY))
    assert "\n" not in err.value.message and "has one logit" in err.value.message
    assert not (repo / "ce").exists() and not (repo / "config.json").exists()


def test_offline_model_classifies_as_predict(repo: Path, sources: dict[str, Path]) -> None:
    import ovembed

    inputs: list[Any] = [TEXTS[0], PAIRS[0]]
    _, probs = reference(sources["bert-classify"], inputs)
    with ovembed.load("nli", config_path=repo / "config.json") as model:
        assert model.task == "classify"
        rows = model.classify(inputs)
        single = model.classify(PAIRS[0])
    assert [list(r) for r in rows] == [[NLI_LABELS[i] for i in np.argsort(-p, kind="stable")] for p in probs]
    got = np.array([[row[x] for x in NLI_LABELS] for row in rows])
    assert np.abs(got - probs).max() < MAX_DIFF
    assert len(single) == 1 and list(single[0]) == list(rows[1])  # one pair: a list of one (alone: no padding)
    assert max(abs(single[0][x] - rows[1][x]) for x in NLI_LABELS) < MAX_DIFF
