"""Classification routes over the fake registry: TEI's /predict (text, pair, batch, raw_scores; TEI's error
body) and vLLM's /classify and /v1/classify (the OpenAI envelope): shapes, order, usage, errors, task mix-ups
both ways. Then the real ClassifyServable over the real Batcher with a fake engine: a pair's ids come from the
model's own pair template, truncation cuts the longer side, an over-long input without truncate is a 400."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from tests.serving.fakes import (
    FAKE_LABELS,
    FakeRegistry,
    FakeServable,
    classify_ids,
    expected_class_logits,
    make_app,
    softmax,
    text_ids,
)

MAX_LEN = 12


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(FakeServable("nli", task="classify", max_length=MAX_LEN),
                        FakeServable("dense", max_length=MAX_LEN))


@pytest.fixture
def client(registry: FakeRegistry) -> Iterator[TestClient]:
    with TestClient(make_app(registry, max_inputs=4)) as test_client:
        yield test_client


def _expected(item: Any, *, raw: bool = False, truncate: bool = False) -> list[dict[str, Any]]:
    logits = expected_class_logits(classify_ids(item, MAX_LEN, truncate, 0))
    scores = logits if raw else softmax(logits)
    order = np.argsort(-scores, kind="stable")
    return [{"score": pytest.approx(float(scores[i]), abs=1e-6), "label": FAKE_LABELS[i]} for i in order]


def test_tei_predict_single_text_is_one_flat_list_best_first(client: TestClient) -> None:
    resp = client.post("/predict", json={"inputs": "paris is nice"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body == _expected("paris is nice")
    assert [list(p) for p in body] == [["score", "label"]] * 3  # TEI's field order
    assert sum(p["score"] for p in body) == pytest.approx(1.0, abs=1e-6)
    assert resp.headers["x-prompt-tokens"] == str(len(text_ids("paris is nice")))
    assert "x-inference-time" in resp.headers


def test_tei_predict_pair_and_one_element_list(client: TestClient) -> None:
    pair = client.post("/predict", json={"inputs": ["a man sleeps", "a person rests"]}).json()
    assert pair == _expected(("a man sleeps", "a person rests"))
    one = client.post("/predict", json={"inputs": ["a man sleeps"]}).json()
    assert one == _expected("a man sleeps")


def test_tei_predict_batch_of_texts_and_pairs(client: TestClient, registry: FakeRegistry) -> None:
    resp = client.post("/predict", json={"inputs": [["hello"], ["a b", "c d"]], "model": "nli"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == [_expected("hello"), _expected(("a b", "c d"))]
    assert registry.servables["nli"].classify_calls[-1] == (["hello", ("a b", "c d")], False, "right")


def test_tei_predict_raw_scores_are_logits(client: TestClient) -> None:
    body = client.post("/predict", json={"inputs": "hello world", "raw_scores": True}).json()
    assert body == _expected("hello world", raw=True)


def test_tei_predict_truncate(client: TestClient, registry: FakeRegistry) -> None:
    long = " ".join(["w"] * 20)
    refused = client.post("/predict", json={"inputs": long})
    assert refused.status_code == 400
    assert refused.json() == {"error": f"input[0] has 22 tokens; the model takes at most {MAX_LEN}: send "
                              "truncate=true (or chunking) or shorten it", "error_type": "validation"}
    ok = client.post("/predict", json={"inputs": long, "truncate": True, "truncation_direction": "Left"})
    assert ok.status_code == 200 and ok.json() == _expected(long, truncate=True)
    assert registry.servables["nli"].classify_calls[-1][1:] == (True, "left")


@pytest.mark.parametrize(("body", "message", "error_type"), [
    ({}, "Missing required field 'inputs'", "validation"),
    ({"inputs": []}, "`inputs` cannot be empty", "empty"),
    ({"inputs": ""}, "`inputs` cannot be empty", "empty"),
    ({"inputs": [["a"], ["", "b"]]}, "`inputs[1]` cannot be empty", "empty"),
    ({"inputs": ["a", "b", "c"]}, "'inputs' must be a string, a pair of strings [string, string] or a batch of "
     "mixed strings and pairs [[string], [string, string], ...]", "validation"),
    ({"inputs": [["a", "b", "c"]]}, "'inputs' must be a string, a pair of strings [string, string] or a batch of "
     "mixed strings and pairs [[string], [string, string], ...]", "validation"),
    ({"inputs": [["a"], "b"]}, "'inputs' must be a string, a pair of strings [string, string] or a batch of "
     "mixed strings and pairs [[string], [string, string], ...]", "validation"),
    ({"inputs": 3}, "'inputs' must be a string, a pair of strings [string, string] or a batch of "
     "mixed strings and pairs [[string], [string, string], ...]", "validation"),
    ({"inputs": "a", "truncation_direction": "up"}, "'truncation_direction' must be 'right' or 'left'",
     "validation"),
    ({"inputs": "a", "model": "nope"}, "The model 'nope' does not exist", "validation"),
])
def test_tei_predict_errors_in_tei_body(client: TestClient, body: dict[str, Any], message: str,
                                        error_type: str) -> None:
    resp = client.post("/predict", json=body)
    assert resp.status_code == (404 if "does not exist" in message else 400)
    got = resp.json()
    assert got["error"] == message
    if resp.status_code == 400:
        assert got["error_type"] == error_type


def test_tei_predict_too_many_inputs(client: TestClient) -> None:
    resp = client.post("/predict", json={"inputs": [["a"]] * 5})
    assert resp.status_code == 413 and "inputs" in resp.json()["error"]


def test_vllm_classify_shape(client: TestClient) -> None:
    for path in ("/classify", "/v1/classify"):
        resp = client.post(path, json={"model": "nli", "input": ["hello", "paris is nice"]})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert set(body) == {"id", "object", "created", "model", "data", "usage"}
        assert body["object"] == "list" and body["model"] == "nli" and isinstance(body["created"], int)
        assert body["id"] == resp.headers["x-request-id"]
        for index, text in enumerate(["hello", "paris is nice"]):
            probs = softmax(expected_class_logits(text_ids(text)))
            item = body["data"][index]
            assert item == {"index": index, "label": FAKE_LABELS[int(np.argmax(probs))],
                            "probs": pytest.approx(probs.tolist(), abs=1e-6), "num_classes": 3}
        tokens = len(text_ids("hello")) + len(text_ids("paris is nice"))
        assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0}


def test_vllm_classify_single_string_model_optional_and_raw(client: TestClient) -> None:
    body = client.post("/classify", json={"input": "hello", "use_activation": False}).json()
    assert body["model"] == "nli" and len(body["data"]) == 1
    assert body["data"][0]["probs"] == pytest.approx(expected_class_logits(text_ids("hello")).tolist(), abs=1e-6)


@pytest.mark.parametrize(("body", "message", "param"), [
    ({"model": "nli"}, "Missing required field 'input'", "input"),
    ({"model": "nli", "input": []}, "'input' cannot be empty", "input"),
    ({"model": "nli", "input": ["a", ""]}, "input[1] cannot be empty", "input"),
    ({"model": "nli", "input": [1, 2]}, "'input' must be a string or a list of strings", "input"),
    ({"model": "nli", "input": "a", "truncate_prompt_tokens": 0},
     "'truncate_prompt_tokens' must be -1 (the model's maximum) or a positive integer", "truncate_prompt_tokens"),
    ({"model": "nli", "input": "a", "truncate_prompt_tokens": 13},
     "'truncate_prompt_tokens' (13) is greater than the model's maximum length (12): request a smaller "
     "truncation size", "truncate_prompt_tokens"),
    ({"model": "nli", "input": "a", "truncate_prompt_tokens": 5},
     "'truncate_prompt_tokens' below the model's window (5 < 12) is not supported for classify: send -1 "
     "(truncate at the window)", "truncate_prompt_tokens"),
    ({"model": "nli", "input": " ".join(["w"] * 20)},
     "input[0] has 22 tokens; the model takes at most 12: send truncate=true (or chunking) or shorten it", "input"),
])
def test_vllm_classify_errors_in_openai_envelope(client: TestClient, body: dict[str, Any], message: str,
                                                 param: str) -> None:
    resp = client.post("/v1/classify", json=body)
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == message and resp.json()["error"]["param"] == param


def test_vllm_truncate_prompt_tokens_minus_one_truncates(client: TestClient, registry: FakeRegistry) -> None:
    resp = client.post("/classify", json={"model": "nli", "input": " ".join(["w"] * 20), "truncate_prompt_tokens": -1})
    assert resp.status_code == 200 and resp.json()["usage"]["prompt_tokens"] == MAX_LEN
    assert registry.servables["nli"].classify_calls[-1][1] is True


def test_wrong_task_both_ways(client: TestClient) -> None:
    resp = client.post("/v3/embeddings", json={"model": "nli", "input": "hello"})
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == ("The model 'nli' is a classify model, not an embeddings model "
                                               "(use /predict or /classify)")
    resp = client.post("/classify", json={"model": "dense", "input": "hello"})
    assert resp.status_code == 400
    assert resp.json()["error"] == {"message": "The model 'dense' is an embeddings model, not a classify model "
                                    "(use /v3/embeddings)", "type": "invalid_request_error", "param": "model",
                                    "code": None}
    tei = client.post("/predict", json={"model": "dense", "inputs": "hello"})
    assert tei.status_code == 400 and tei.json() == {
        "error": "The model 'dense' is an embeddings model, not a classify model (use /v3/embeddings)",
        "error_type": "validation"}
    kserve = client.post("/v2/models/nli/infer", json={"inputs": [
        {"name": "input", "datatype": "BYTES", "shape": [1], "data": ["hello"]}]})
    assert kserve.status_code == 400 and "is a classify model" in kserve.text


def test_no_classifier_served(registry: FakeRegistry) -> None:
    only_dense = FakeRegistry(registry.servables["dense"])  # type: ignore[arg-type]
    with TestClient(make_app(only_dense)) as c:
        resp = c.post("/predict", json={"inputs": "hello"})
    assert resp.status_code == 400 and "export one with `ovembed export --task classify`" in resp.json()["error"]


def test_model_card_lists_the_labels(client: TestClient) -> None:
    card = client.get("/v1/models/nli").json()
    assert card["task"] == "classify" and card["labels"] == list(FAKE_LABELS) and card["dimensions"] == 3


def test_kserve_metadata_lists_no_tensors_for_a_classifier(client: TestClient) -> None:
    meta = client.get("/v2/models/nli").json()
    assert meta["inputs"] == [] and meta["outputs"] == []


# --- the real servable over the real batcher ------------------------------------------------------------

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "c", "d", "man", "sleeps", "person", "rests"]
IDS = {w: i for i, w in enumerate(WORDS)}
LABELS = 3


def _pair_tokenizer_json() -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tok = Tokenizer(models.WordLevel(IDS, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A:0 [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", IDS["[CLS]"]), ("[SEP]", IDS["[SEP]"])])
    return str(tok.to_str())


class ClassEngine:
    """[batch, 2 * LABELS]: logits (sum of ids, count of real tokens, first id), then their softmax."""

    dimensions = 2 * LABELS
    pad_lone = True
    slots = 1

    def __init__(self) -> None:
        self.seen: list[list[int]] = []

    def start(self, input_ids: np.ndarray, attention_mask: np.ndarray, on_done: Callable[[Any], None]) -> None:
        for row, mask in zip(input_ids, attention_mask, strict=True):
            self.seen.append(row[mask.astype(bool)].tolist())
        logits = np.stack([(input_ids * attention_mask).sum(1), attention_mask.sum(1), input_ids[:, 1]], 1) / 10
        on_done(np.concatenate([logits, softmax(logits.astype(np.float32))], 1).astype(np.float32))


def _make_servable() -> Any:
    from ovembed.config import Pooling, Task
    from ovembed.serving.api import ModelInfo
    from ovembed.serving.batching.batcher import Batcher
    from ovembed.serving.batching.policy import BatchPolicy
    from ovembed.serving.tasks.classify import ClassifyServable, PairEncoder
    from ovembed.serving.tasks.tokenizer import ServingTokenizer

    text = _pair_tokenizer_json()
    info = ModelInfo(name="real", dimensions=LABELS, max_length=8, pooling=Pooling.CLS, normalize=False,
                     truncate=False, device="CPU", precision="fp32", created=0, task=Task.CLASSIFY,
                     endpoint="/predict or /classify", labels=("x", "y", "z"))
    engine = ClassEngine()
    batcher = Batcher(engine, BatchPolicy(max_batch_tokens=64), max_queue=100, pad_id=0)  # type: ignore[arg-type]
    servable = ClassifyServable(info, ServingTokenizer(text, max_length=8), PairEncoder(text, max_length=8), batcher)
    servable.engine = engine
    return servable


def test_real_servable_pairs_use_the_pair_template() -> None:
    import asyncio

    servable: Any = None

    async def run() -> Any:
        nonlocal servable
        servable = _make_servable()
        try:
            return await servable.classify(["a b", ("man sleeps", "person rests")])
        finally:
            await servable.batcher.stop()

    result = asyncio.run(run())
    cls, sep = IDS["[CLS]"], IDS["[SEP]"]
    want = [[cls, IDS["a"], IDS["b"], sep],
            [cls, IDS["man"], IDS["sleeps"], sep, IDS["person"], IDS["rests"], sep]]
    assert sorted(servable.engine.seen) == sorted(want)
    assert result.labels == ("x", "y", "z") and result.token_counts == [4, 7]
    assert result.logits.shape == (2, 3) and result.probs.shape == (2, 3)
    np.testing.assert_allclose(result.logits[1], np.array([sum(want[1]), 7, IDS["man"]]) / 10, rtol=1e-6)
    np.testing.assert_allclose(result.probs.sum(1), 1.0, rtol=1e-6)


def test_real_servable_too_long_pair_and_truncation() -> None:
    import asyncio

    from ovembed.errors import InputTooLong

    pair = ("a b c d a b", "man sleeps")  # 1 + 6 + 1 + 2 + 1 = 11 > 8
    servable: Any = None

    async def run() -> Any:
        nonlocal servable
        servable = _make_servable()
        try:
            with pytest.raises(InputTooLong) as err:
                await servable.classify(["a", pair])
            assert err.value.index == 1 and err.value.length == 11
            return await servable.classify([pair], truncate=True)
        finally:
            await servable.batcher.stop()

    result = asyncio.run(run())
    cls, sep = IDS["[CLS]"], IDS["[SEP]"]
    # longest_first: the longer side loses tokens until the pair fits
    assert servable.engine.seen[-1] == [cls, IDS["a"], IDS["b"], IDS["c"], sep, IDS["man"], IDS["sleeps"], sep]
    assert result.token_counts == [8]
