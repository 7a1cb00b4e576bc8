"""CORS (app.py's CORSMiddleware from --allowed_origins/methods/headers): closed by default,
preflights answered without a key, simple requests get the headers, other origins do not."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from tests.serving.fakes import FakeRegistry, FakeServable, make_app

UI = "http://ui.test"
PREFLIGHT = {"Origin": UI, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization,content-type"}
BODY = {"model": "fake", "input": "x"}


def test_closed_by_default() -> None:
    with TestClient(make_app(FakeRegistry(FakeServable("fake")))) as client:
        pre = client.options("/v3/embeddings", headers=PREFLIGHT)
        assert pre.status_code == 403  # no CORS layer, and a foreign Origin is refused (web_safety.py)
        assert "access-control-allow-origin" not in pre.headers
        simple = client.post("/v3/embeddings", json=BODY, headers={"Origin": UI})
        assert simple.status_code == 403  # a browser's cross-site request (web_safety.py)
        assert simple.json()["error"]["message"] == (
            "Cross-origin request from 'http://ui.test' refused: start the server with --allowed_origins to allow it")
        assert not [h for h in simple.headers if h.startswith("access-control-")]


def test_allowed_origin_preflight_and_simple_request(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k\n")
    app = make_app(FakeRegistry(FakeServable("fake")), api_key_file=key,
                   allowed_origins=f"{UI}, http://other.test", allowed_methods="GET,POST",
                   allowed_headers="authorization,content-type")
    with TestClient(app, base_url="http://localhost") as client:
        pre = client.options("/v3/embeddings", headers=PREFLIGHT)
        assert pre.status_code == 200  # answered before auth: browsers never send keys in preflights
        assert pre.headers["access-control-allow-origin"] == UI
        assert set(pre.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
        assert set(pre.headers["access-control-allow-headers"].lower().split(", ")) >= {"authorization",
                                                                                        "content-type"}
        simple = client.post("/v3/embeddings", json=BODY, headers={"Origin": UI, "Authorization": "Bearer k"})
        assert simple.status_code == 200
        assert simple.headers["access-control-allow-origin"] == UI
        exposed = simple.headers["access-control-expose-headers"].lower()
        assert "x-request-id" in exposed and "x-inference-time" in exposed
        assert simple.headers["vary"] == "Origin"
        denied = client.post("/v3/embeddings", json=BODY, headers={"Origin": UI})  # errors carry CORS too
        assert denied.status_code == 401 and denied.headers["access-control-allow-origin"] == UI


def test_other_origins_and_methods_are_refused() -> None:
    app = make_app(FakeRegistry(FakeServable("fake")), allowed_origins=UI, allowed_methods="POST",
                   allowed_headers="content-type")
    with TestClient(app, base_url="http://localhost") as client:
        evil = client.options("/v3/embeddings", headers={**PREFLIGHT, "Origin": "http://evil.test",
                                                         "Access-Control-Request-Headers": "content-type"})
        assert evil.status_code == 400
        assert "access-control-allow-origin" not in evil.headers
        method = client.options("/v3/embeddings", headers={**PREFLIGHT, "Access-Control-Request-Method": "DELETE",
                                                           "Access-Control-Request-Headers": "content-type"})
        assert method.status_code == 400
        header = client.options("/v3/embeddings", headers=PREFLIGHT)  # authorization not allowed
        assert header.status_code == 400
        simple = client.post("/v3/embeddings", json=BODY, headers={"Origin": "http://evil.test"})
        assert simple.status_code == 403  # not only the grant is omitted: the request is refused
        assert "access-control-allow-origin" not in simple.headers


def test_any_origin() -> None:
    with TestClient(make_app(FakeRegistry(FakeServable("fake")), allowed_origins="*")) as client:
        simple = client.post("/v3/embeddings", json=BODY, headers={"Origin": "http://anything.test"})
        assert simple.headers["access-control-allow-origin"] == "*"
        pre = client.options("/api/embed", headers={**PREFLIGHT, "Origin": "http://anything.test"})
        assert pre.status_code == 200
