"""POST /v3/tokenize (ovembed/serving/http/routes/tokenize.py, protocol/tokenize.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.serving.fakes import PAD, FakeRegistry, FakeServable, make_app, text_ids


@pytest.fixture
def servable() -> FakeServable:
    return FakeServable("fake")


@pytest.fixture
def client(servable: FakeServable) -> Iterator[TestClient]:
    registry = FakeRegistry(servable, loading=["slow"])
    with TestClient(make_app(registry, max_inputs=3)) as test_client:
        yield test_client


@pytest.mark.parametrize("path", ["/v3/tokenize", "/v1/tokenize", "/v3/v1/tokenize"])
def test_string_gives_flat_list(client: TestClient, servable: FakeServable, path: str) -> None:
    resp = client.post(path, json={"model": "fake", "text": "hello world"})
    assert resp.status_code == 200
    assert resp.json() == {"tokens": text_ids("hello world")}
    assert servable.tokenize_calls[-1] == {
        "texts": ["hello world"], "add_special_tokens": True, "max_length": None,
        "pad_to_max_length": False, "padding_side": "right"}


def test_list_gives_list_of_lists(client: TestClient) -> None:
    body = client.post("/v3/tokenize", json={"model": "fake", "text": ["a", "b c"]}).json()
    assert body == {"tokens": [text_ids("a"), text_ids("b c")]}


def test_options_are_passed_through(client: TestClient, servable: FakeServable) -> None:
    body = client.post("/v3/tokenize", json={
        "model": "fake", "text": "a b", "max_length": 6, "pad_to_max_length": True,
        "add_special_tokens": False, "padding_side": "left"}).json()
    assert body == {"tokens": [PAD] * 4 + text_ids("a b")[1:-1]}
    assert servable.tokenize_calls[-1]["padding_side"] == "left"
    assert servable.tokenize_calls[-1]["add_special_tokens"] is False


@pytest.mark.parametrize(("payload", "status", "param", "message"), [
    ({"text": "a"}, 400, "model", "Missing required field 'model'"),
    ({"model": "fake"}, 400, "text", "Missing required field 'text'"),
    ({"model": "fake", "text": []}, 400, "text", "'text' must not be an empty list"),
    ({"model": "fake", "text": ["a", 1]}, 400, "text", "'text' must be a string or a list"),
    ({"model": "fake", "text": 5}, 400, "text", "'text' must be a string or a list"),
    ({"model": "fake", "text": "a", "max_length": 0}, 400, "max_length",
     "'max_length' must be at least 1, got 0"),
    ({"model": "fake", "text": "a", "padding_side": "middle"}, 400, "padding_side",
     "'padding_side' must be one of 'left', 'right', got \"middle\""),
    ({"model": "fake", "text": "a", "add_special_tokens": 1}, 400, "add_special_tokens",
     "'add_special_tokens' must be a boolean"),
    ({"model": "fake", "text": ["a"] * 4}, 413, "text", "Too many inputs: 4"),
    ({"model": "nope", "text": "a"}, 404, "model", "The model 'nope' does not exist"),
    ({"model": "slow", "text": "a"}, 503, None, "The model 'slow' is still loading"),
])
def test_errors(client: TestClient, payload: dict[str, Any], status: int, param: str | None,
                message: str) -> None:
    resp = client.post("/v3/tokenize", json=payload)
    assert resp.status_code == status
    error = resp.json()["error"]
    assert error["param"] == param
    assert message in error["message"]
