"""KServe v2 REST and /v1/config (ovembed/serving/http/routes/kserve.py, protocol/kserve.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from ovembed import __version__
from ovembed.serving.api import ModelState
from ovembed.serving.wire.kserve import ModelPath, parse_model_path
from tests.serving.fakes import FakeRegistry, FakeServable, make_app

BGE = "BAAI/bge-large-en-v1.5"


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(FakeServable("minilm", dimensions=384), FakeServable(BGE, dimensions=1024),
                        loading=["slow"], failed={"broken": "cannot read openvino_model.xml"})


@pytest.fixture
def client(registry: FakeRegistry) -> Iterator[TestClient]:
    with TestClient(make_app(registry)) as test_client:
        yield test_client


def test_live(client: TestClient) -> None:
    assert client.get("/v2/health/live").status_code == 200


def test_ready_waits_for_loading_models(client: TestClient, registry: FakeRegistry) -> None:
    resp = client.get("/v2/health/ready")
    assert resp.status_code == 503
    states = {m["name"]: (m["state"], m["reason"]) for m in resp.json()["models"]}
    assert states["slow"] == ("LOADING", "loading")
    registry.set_state("slow", ModelState.AVAILABLE)
    # Ready only when every configured model is AVAILABLE (OVMS): a failed one keeps it 503, saying why.
    resp = client.get("/v2/health/ready")
    assert resp.status_code == 503 and resp.json()["ready"] is False
    assert [(m["name"], m["state"]) for m in resp.json()["models"]] == [
        (name, "UNAVAILABLE") for name, st in registry.states.items() if st.state is ModelState.UNAVAILABLE]
    for name in list(registry.states):
        registry.set_state(name, ModelState.AVAILABLE)
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.content == b""


def test_server_metadata(client: TestClient) -> None:
    assert client.get("/v2").json() == {"name": "ovembed", "version": __version__,
                                        "extensions": []}


@pytest.mark.parametrize("name", [BGE, "BAAI%2Fbge-large-en-v1.5"])
@pytest.mark.parametrize("suffix", ["", "/versions/1"])
def test_model_metadata_raw_and_percent_encoded(client: TestClient, name: str, suffix: str) -> None:
    resp = client.get(f"/v2/models/{name}{suffix}")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "name": BGE,
        "versions": ["1"],
        "platform": "OpenVINO",
        "inputs": [{"name": "input", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, 1024]}],
    }


@pytest.mark.parametrize("path", [
    f"{BGE}/ready", "BAAI%2Fbge-large-en-v1.5/ready", f"{BGE}/versions/1/ready",
    "BAAI%2Fbge-large-en-v1.5/versions/1/ready", "minilm/ready"])
def test_model_ready(client: TestClient, path: str) -> None:
    resp = client.get(f"/v2/models/{path}")
    assert resp.status_code == 200
    assert resp.content == b""


def test_model_ready_errors(client: TestClient) -> None:
    resp = client.get("/v2/models/nope/ready")
    assert resp.status_code == 404
    assert resp.json() == {"error": "The model 'nope' does not exist"}
    resp = client.get("/v2/models/minilm/versions/2/ready")
    assert resp.status_code == 404
    assert resp.json() == {"error": "The model 'minilm/versions/2' does not exist"}
    resp = client.get("/v2/models/slow/ready")
    assert resp.status_code == 503
    assert resp.json() == {"error": "The model 'slow' is still loading"}
    assert client.get("/v2/models/broken/ready").json() == {
        "error": "The model 'broken' is not available: cannot read openvino_model.xml"}


def test_model_metadata_errors(client: TestClient) -> None:
    resp = client.get("/v2/models/nope")
    assert resp.status_code == 404
    assert resp.json() == {"error": "The model 'nope' does not exist"}
    assert client.get("/v2/models/slow").status_code == 503
    assert client.get("/v2/models/minilm/versions/7").status_code == 404
    assert client.post("/v2/models/minilm").status_code == 405


def test_v1_config(client: TestClient) -> None:
    assert client.get("/v1/config").json() == {
        "minilm": {"model_version_status": [{
            "version": "1", "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": "OK"}}]},
        BGE: {"model_version_status": [{
            "version": "1", "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": "OK"}}]},
        "slow": {"model_version_status": [{
            "version": "1", "state": "LOADING",
            "status": {"error_code": "OK", "error_message": "OK"}}]},
        "broken": {"model_version_status": [{
            "version": "1", "state": "UNAVAILABLE",
            "status": {"error_code": "UNKNOWN",
                       "error_message": "cannot read openvino_model.xml"}}]},
    }


def test_parse_model_path() -> None:
    known = {"a/b", "odd/ready", "x"}.__contains__
    assert parse_model_path("a/b", known) == ModelPath("a/b", None, "metadata")
    assert parse_model_path("a/b/ready", known) == ModelPath("a/b", None, "ready")
    assert parse_model_path("a/b/versions/3", known) == ModelPath("a/b", "3", "metadata")
    assert parse_model_path("a/b/versions/3/ready", known) == ModelPath("a/b", "3", "ready")
    # A configured name that looks like a suffix stays reachable.
    assert parse_model_path("odd/ready", known) == ModelPath("odd/ready", None, "metadata")
    assert parse_model_path("odd/ready/ready", known) == ModelPath("odd/ready", None, "ready")
    assert parse_model_path("unknown/ready", known) == ModelPath("unknown", None, "ready")
