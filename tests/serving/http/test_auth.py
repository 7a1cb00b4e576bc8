"""API key auth (ovembed/serving/http/middleware.py): which routes need it, how it fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.errors import ConfigError
from ovembed.serving.http.middleware import is_open_path, load_api_key
from tests.serving.fakes import FakeRegistry, FakeServable, make_app

KEY = "s3cret-key"
GOOD = {"Authorization": f"Bearer {KEY}"}

PROTECTED = [
    ("POST", "/v3/embeddings", {"model": "fake", "input": "x"}),
    ("POST", "/v1/embeddings", {"model": "fake", "input": "x"}),
    ("POST", "/v3/v1/embeddings", {"model": "fake", "input": "x"}),
    ("POST", "/v3/tokenize", {"model": "fake", "text": "x"}),
    ("GET", "/v3/models", None),
    ("GET", "/v1/models", None),
    ("GET", "/v3/models/org%2Ffake", None),
    ("GET", "/v1/config", None),
    ("GET", "/v2", None),
    ("GET", "/v2/models/org%2Ffake", None),
    ("GET", "/v2/models/org/fake/versions/1", None),
    ("POST", "/api/embed", {"model": "fake", "input": "x"}),
    ("POST", "/api/embeddings", {"model": "fake", "prompt": "x"}),
    ("GET", "/api/tags", None),
    ("GET", "/api/version", None),
]
OPEN = ["/", "/v2/health/live", "/v2/models/org%2Ffake/ready", "/v2/models/org/fake/ready",
        "/v2/models/fake/versions/1/ready"]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key.txt"
    path.write_text(f"{KEY}\nsecond line is ignored\n")
    return path


@pytest.fixture
def client(key_file: Path) -> Iterator[TestClient]:
    registry = FakeRegistry(FakeServable("fake"), FakeServable("org/fake"))
    with TestClient(make_app(registry, api_key_file=key_file)) as test_client:
        yield test_client


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_protected_routes_need_the_key(client: TestClient, method: str, path: str,
                                       body: dict[str, str] | None) -> None:
    resp = client.request(method, path, json=body)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    message = "Missing API key: send the header 'Authorization: Bearer <key>'"
    if path.startswith("/api/") or path.startswith("/v2"):
        assert resp.json() == {"error": message}
    else:
        assert resp.json() == {"error": {"message": message, "type": "authentication_error",
                                         "param": None, "code": "invalid_api_key"}}
    assert client.request(method, path, json=body, headers=GOOD).status_code == 200


@pytest.mark.parametrize("header", [f"Bearer {KEY}x", f"Basic {KEY}", KEY, "Bearer ",
                                    f"Bearer {KEY[:-1]}"])
def test_wrong_keys(client: TestClient, header: str) -> None:
    resp = client.post("/v3/embeddings", json={"model": "fake", "input": "x"},
                       headers={"Authorization": header})
    assert resp.status_code == 401
    assert resp.json()["error"]["message"] == "Invalid API key"
    assert resp.json()["error"]["type"] == "authentication_error"


def test_scheme_is_case_insensitive(client: TestClient) -> None:
    resp = client.get("/v3/models", headers={"Authorization": f"bearer {KEY}"})
    assert resp.status_code == 200


@pytest.mark.parametrize("path", OPEN)
def test_probes_stay_open(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


def test_ready_is_open(client: TestClient) -> None:
    assert client.get("/v2/health/ready").status_code == 200


def test_auth_runs_before_the_body_is_read(key_file: Path) -> None:
    registry = FakeRegistry(FakeServable("fake"))
    with TestClient(make_app(registry, api_key_file=key_file, max_body_bytes=10)) as client:
        resp = client.post("/v3/embeddings", json={"model": "fake", "input": "x" * 100})
        assert resp.status_code == 401
        resp = client.post("/v3/embeddings", json={"model": "fake", "input": "x" * 100},
                           headers=GOOD)
        assert resp.status_code == 413


def test_env_api_key() -> None:
    registry = FakeRegistry(FakeServable("fake"))
    with TestClient(make_app(registry, environ={"API_KEY": "from-env"})) as client:
        assert client.get("/v3/models").status_code == 401
        ok = client.get("/v3/models", headers={"Authorization": "Bearer from-env"})
        assert ok.status_code == 200


def test_no_key_no_auth() -> None:
    with TestClient(make_app(FakeRegistry(FakeServable("fake")))) as client:
        assert client.get("/v3/models").status_code == 200


def test_load_api_key(tmp_path: Path, key_file: Path) -> None:
    cfg = ServeConfig(api_key_file=key_file)
    assert load_api_key(cfg, {"API_KEY": "ignored: the file wins"}) == KEY
    assert load_api_key(ServeConfig(), {"API_KEY": "env"}) == "env"
    assert load_api_key(ServeConfig(), {"API_KEY": ""}) is None
    assert load_api_key(ServeConfig(), {}) is None
    empty = tmp_path / "empty.txt"
    empty.write_text("\nkey on the second line\n")
    with pytest.raises(ConfigError, match="the first line must be the API key"):
        load_api_key(ServeConfig(api_key_file=empty), {})
    with pytest.raises(ConfigError, match="cannot read api_key_file"):
        load_api_key(ServeConfig(api_key_file=tmp_path / "missing.txt"), {})


def test_create_app_fails_fast_on_a_bad_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        make_app(FakeRegistry(), api_key_file=tmp_path / "missing.txt")


def test_open_paths() -> None:
    assert is_open_path("/v2/models/a/b/ready")
    assert not is_open_path("/v2/models/ready")
    assert not is_open_path("/v2/models/a")
    assert not is_open_path("/v3/models")
