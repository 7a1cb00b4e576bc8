"""A keyless server on a laptop against the web pages its user visits (ovembed/serving/http/web_safety.py),
and header values an unfriendly client sends."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.errors import Overloaded
from ovembed.serving.http import server
from ovembed.serving.http.web_safety import allowed_hosts, host_name
from tests.serving.fakes import FakeRegistry, FakeServable, make_app

pytestmark = pytest.mark.reliability

BODY = {"model": "fake", "input": "x"}
POSTS = ["/v3/embeddings", "/v1/embeddings", "/api/embed", "/v3/tokenize", "/v2/models/fake/infer",
         "/v1/config/reload"]


def client(**options: object) -> TestClient:
    return TestClient(make_app(FakeRegistry(FakeServable("fake")), **options), base_url="http://localhost")


def test_default_hosts_follow_the_bind_address() -> None:
    assert allowed_hosts(ServeConfig()) == {"localhost", "127.0.0.1", "::1"}
    assert allowed_hosts(ServeConfig(rest_bind_address="::1")) == {"localhost", "127.0.0.1", "::1"}
    assert allowed_hosts(ServeConfig(rest_bind_address="0.0.0.0")) is None  # pods, containers
    assert allowed_hosts(ServeConfig(rest_bind_address="10.1.2.3")) is None
    assert allowed_hosts(ServeConfig(rest_bind_address="0.0.0.0", allowed_hosts="Api.Example")) == {"api.example"}
    assert allowed_hosts(ServeConfig(allowed_hosts="*")) is None
    assert [host_name(h) for h in ("[::1]:8000", "LocalHost:80", "a.example", "::1")] == [
        "::1", "localhost", "a.example", "::1"]


@pytest.mark.parametrize("path", POSTS)
def test_dns_rebinding_host_is_refused(path: str) -> None:
    with client(allowed_hosts="") as c:
        for good in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "app.localhost"):
            assert c.get("/v2/health/live", headers={"Host": good}).status_code == 200, good
        resp = c.post(path, json=BODY, headers={"Host": "evil.example"})
        assert resp.status_code == 403
        message = resp.json()["error"]
        message = message["message"] if isinstance(message, dict) else message
        assert message == "Host 'evil.example' is not allowed: start the server with --allowed_hosts to answer to it"
        assert c.get("/v2/health/live", headers={"Host": "evil.example"}).status_code == 403


def test_any_host_when_bound_to_the_network_or_listed() -> None:
    with client(allowed_hosts="", rest_bind_address="0.0.0.0") as c:
        assert c.post("/v3/embeddings", json=BODY, headers={"Host": "10.0.0.7:8000"}).status_code == 200
    with client(allowed_hosts="*.example.com") as c:
        assert c.post("/v3/embeddings", json=BODY, headers={"Host": "api.example.com"}).status_code == 200
        assert c.post("/v3/embeddings", json=BODY, headers={"Host": "example.org"}).status_code == 403


@pytest.mark.parametrize("path", [p for p in POSTS if not p.startswith("/api/")])
@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8",
                                          "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_preflight_free_content_types_get_415(path: str, content_type: str) -> None:
    with client() as c:
        resp = c.post(path, content=b'{"model": "fake", "input": "x"}', headers={"Content-Type": content_type})
        assert resp.status_code == 415
        assert "Content-Type: application/json" in resp.text


def test_ollama_routes_take_json_whatever_the_content_type() -> None:
    # Ollama's docs: curl http://localhost:11434/api/embed -d '{...}' (curl sends the form type)
    with client() as c:
        for content_type in ("application/x-www-form-urlencoded", "text/plain", ""):
            resp = c.post("/api/embed", content=b'{"model": "fake", "input": "x"}',
                          headers={"Content-Type": content_type} if content_type else {})
            assert resp.status_code == 200 and len(resp.json()["embeddings"]) == 1, content_type
        resp = c.post("/api/embed", content=b'{"model": "fake", "input": "x"}', headers={
            "Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"})
        assert resp.status_code == 403


def test_json_sdk_and_curl_requests_are_unaffected() -> None:
    with client() as c:
        assert c.post("/v3/embeddings", json=BODY).status_code == 200
        assert c.post("/v3/embeddings", content=b'{"model": "fake", "input": "x"}').status_code == 200
        assert c.post("/v1/config/reload").status_code == 200  # curl -X POST, no body


def test_cross_origin_requests_are_refused_unless_allowed() -> None:
    with client() as c:
        resp = c.post("/v3/embeddings", json=BODY, headers={"Origin": "https://evil.example"})
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden"
        assert c.post("/v1/config/reload", headers={"Origin": "null"}).status_code == 403
    with client(allowed_origins="https://app.example") as c:
        ok = c.post("/v3/embeddings", json=BODY, headers={"Origin": "https://app.example"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
        assert c.post("/v3/embeddings", json=BODY, headers={"Origin": "https://evil.example"}).status_code == 403


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate", "zstd"])
def test_compressed_bodies_get_415_naming_the_encoding(encoding: str) -> None:
    with client() as c:
        for path in POSTS:
            resp = c.post(path, content=b"\x1f\x8b\x08\x00", headers={"Content-Encoding": encoding,
                                                                      "Content-Type": "application/json"})
            assert resp.status_code == 415, path
            assert f"Content-Encoding '{encoding}' is not supported" in resp.text


@pytest.mark.parametrize("value", ["\xb2", "1\xb2", "-1", "+5", " ", "1e3", "99999999999999999999999"])
def test_bad_inference_header_content_length_is_a_400(value: str) -> None:
    with client() as c:
        resp = c.post("/v2/models/fake/infer", content=b'{"inputs": []}',
                      headers={"Inference-Header-Content-Length": value.encode("latin-1"),
                               "Content-Type": "application/octet-stream"})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"].startswith("Inference-Header-Content-Length must be an integer")


def test_429_carries_retry_after() -> None:
    servable = FakeServable("fake")
    servable.fail_with = Overloaded("The model 'fake' is overloaded; retry later", retry_after=3)
    with TestClient(make_app(FakeRegistry(servable)), base_url="http://localhost") as c:
        for path, body in (("/v3/embeddings", BODY), ("/api/embed", BODY)):
            resp = c.post(path, json=body)
            assert resp.status_code == 429 and resp.headers["retry-after"] == "3", path


def test_control_characters_are_escaped_in_text_logs() -> None:
    record = logging.LogRecord("ovembed.access", logging.INFO, __file__, 1, 'GET "%s" 404',
                               ("/v2/models/a\nFAKE 200 OK\x1b[31m/ready",), None)
    text = server.TextFormatter().format(record)
    assert "\n" not in text and "\x1b" not in text
    assert 'GET "/v2/models/a\\nFAKE 200 OK\\x1b[31m/ready" 404' in text


def test_tokenize_ceilings() -> None:
    with client(max_request_tokens=40) as c:  # the fake model's maximum length is 8
        huge = c.post("/v3/tokenize", json={"model": "fake", "text": "hi", "max_length": 1 << 40,
                                            "pad_to_max_length": True})
        assert huge.status_code == 400
        assert huge.json()["error"]["message"] == (
            "'max_length' 1099511627776 is larger than the model's maximum length 8: padding goes at most that far")
        many = c.post("/v3/tokenize", json={"model": "fake", "text": ["hi"] * 6, "pad_to_max_length": True})
        assert many.status_code == 413
        assert many.json()["error"]["message"] == (
            "Too many tokens: 48 in one request, the limit is 40 (--max_request_tokens)")
        long = c.post("/v3/tokenize", json={"model": "fake", "text": " ".join(["w"] * 60)})
        assert long.status_code == 413
        ok = c.post("/v3/tokenize", json={"model": "fake", "text": "a b", "max_length": 4, "pad_to_max_length": True})
        assert ok.status_code == 200 and len(ok.json()["tokens"]) == 4
