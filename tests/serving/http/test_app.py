"""The composition root (app.py), middleware wiring, responses.py and server.py's checks/logging."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.errors import ConfigError
from ovembed.exitcodes import ExitCode
from ovembed.serving.context import REQUEST_ID
from ovembed.serving.http import app as app_module
from ovembed.serving.http import server
from ovembed.serving.http.responses import JSONResponse, api_family
from tests.serving.fakes import FakeRegistry, FakeServable, make_app


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_lifespan_starts_and_stops_the_registry() -> None:
    registry = FakeRegistry(FakeServable("fake"))
    app = make_app(registry)
    assert not registry.started
    with TestClient(app, base_url="http://localhost") as client:
        assert registry.started and not registry.stopped
        assert app.state.registry is registry
        assert client.get("/v2/health/ready").status_code == 200
    assert registry.stopped


def test_lifespan_builds_the_engine_registry_when_none_is_given(
        monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[ServeConfig] = []
    fake = FakeRegistry(FakeServable("fake"))

    def build(cfg: ServeConfig) -> FakeRegistry:
        built.append(cfg)
        return fake

    monkeypatch.setattr(app_module, "build_registry", build)
    cfg = ServeConfig(config_path=Path("x/config.json"))
    app = app_module.create_app(cfg, environ={})
    assert built == []  # nothing happens before the lifespan
    with TestClient(app, base_url="http://localhost") as client:
        assert built == [cfg]
        assert app.state.config is cfg
        assert app.state.auth_enabled is False
        assert client.get("/v3/models").json()["data"][0]["id"] == "fake"
    assert fake.stopped


def test_cors_preflight_and_headers(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k\n")
    registry = FakeRegistry(FakeServable("fake"))
    app = make_app(registry, allowed_origins="http://ui.test", api_key_file=key)
    with TestClient(app, base_url="http://localhost") as client:
        pre = client.options("/v3/embeddings", headers={
            "Origin": "http://ui.test", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert pre.status_code == 200  # answered without a key
        assert pre.headers["access-control-allow-origin"] == "http://ui.test"
        denied = client.get("/v3/models", headers={"Origin": "http://ui.test"})
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == "http://ui.test"
        ok = client.post("/v3/embeddings", json={"model": "fake", "input": "x"},
                         headers={"Origin": "http://ui.test", "Authorization": "Bearer k"})
        assert "x-request-id" in ok.headers["access-control-expose-headers"]


def test_no_cors_by_default() -> None:
    with TestClient(make_app(FakeRegistry(FakeServable("fake")))) as client:
        resp = client.get("/v3/models", headers={"Origin": "http://ui.test"})
        assert "access-control-allow-origin" not in resp.headers


def test_access_log_carries_the_request_id() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(server.RequestIdFilter())
    access = logging.getLogger("ovembed.access")
    access.addHandler(handler)
    old_level = access.level
    access.setLevel(logging.DEBUG)
    try:
        with TestClient(make_app(FakeRegistry(FakeServable("fake")))) as client:
            resp = client.post("/v3/embeddings", json={"model": "fake", "input": "x"})
            client.get("/v2/health/live")
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)
    embed = [r for r in records if "/v3/embeddings" in r.getMessage()]
    assert len(embed) == 1
    assert '"POST /v3/embeddings HTTP/1.1" 200' in embed[0].getMessage()
    assert embed[0].levelno == logging.INFO
    assert embed[0].request_id == resp.headers["x-request-id"]  # type: ignore[attr-defined]
    probe = [r for r in records if "/v2/health/live" in r.getMessage()]
    assert probe[0].levelno == logging.DEBUG


def test_text_and_json_log_formats() -> None:
    record = logging.LogRecord("ovembed.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    token = REQUEST_ID.set("rid-1")
    try:
        server.RequestIdFilter().filter(record)
    finally:
        REQUEST_ID.reset(token)
    text = server.TextFormatter().format(record)
    assert text.endswith("INFO    ovembed.x: hello you [request_id=rid-1]")
    entry = orjson.loads(server.JsonFormatter().format(record))
    assert entry["message"] == "hello you"
    assert entry["request_id"] == "rid-1"
    assert entry["level"] == "INFO"
    plain = logging.LogRecord("ovembed.x", logging.INFO, __file__, 1, "no request", (), None)
    server.RequestIdFilter().filter(plain)
    assert "request_id" not in server.TextFormatter().format(plain)
    assert "request_id" not in orjson.loads(server.JsonFormatter().format(plain))


@pytest.mark.parametrize(("overrides", "message"), [
    ({}, "give exactly one of --config_path"),
    ({"config_path": Path("c.json"), "model_path": Path("m")}, "give exactly one of"),
    ({"config_path": Path("c.json"), "model_name": "m"}, "--model_name needs --model_path"),
    ({"config_path": Path("c.json"), "log_level": "LOUD"}, "--log_level must be one of"),
    ({"config_path": Path("c.json"), "log_format": "xml"}, "--log_format must be one of text, json"),
    ({"config_path": Path("c.json"), "rest_port": 0}, "--rest_port must be between 1 and 65535"),
    ({"config_path": Path("c.json"), "max_inputs": 0}, "must be positive"),
])
def test_check_config(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        server.check_config(ServeConfig(**overrides))  # type: ignore[arg-type]


def test_check_config_accepts_both_modes() -> None:
    server.check_config(ServeConfig(config_path=Path("c.json")))
    server.check_config(ServeConfig(model_path=Path("m"), model_name="m", log_level="debug"))


def test_run_reports_config_errors_with_exit_code(
        restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert server.run(ServeConfig(log_format="json")) == ExitCode.USAGE
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = orjson.loads(line)
    assert entry["level"] == "ERROR"
    assert "give exactly one of --config_path" in entry["message"]


def test_run_reports_a_bad_key_file(restore_logging: None, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(server, "build_registry", lambda cfg: FakeRegistry())
    cfg = ServeConfig(config_path=Path("c.json"), api_key_file=tmp_path / "none")
    assert server.run(cfg) == ExitCode.USAGE
    assert "cannot read api_key_file" in capsys.readouterr().err


def test_json_response_serialises_numpy() -> None:
    arr = np.array([[0.5, -1.25]], dtype=np.float32)
    body = JSONResponse({"a": arr, "b": arr[0]}).body
    assert orjson.loads(body) == {"a": [[0.5, -1.25]], "b": [0.5, -1.25]}


def test_api_family() -> None:
    assert api_family("/api/embed") == "ollama"
    assert api_family("/v2") == "kserve"
    assert api_family("/v2/models/x") == "kserve"
    assert api_family("/v3/embeddings") == "openai"
    assert api_family("/v1/config") == "openai"
    assert api_family("/v20") == "openai"


def test_configure_logging_routes_uvicorn_to_root(restore_logging: None) -> None:
    server.configure_logging("WARNING", "text")
    root = logging.getLogger()
    assert root.level == logging.WARNING
    assert len(root.handlers) == 1
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    logging.getLogger("uvicorn.error").warning("bind failed")
    assert "WARNING uvicorn.error: bind failed" in stream.getvalue()


def test_bad_paths_and_methods_are_answered_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The router's 404 and 405 get our envelope without a thread-pool hop (a sync exception
    handler would run in Starlette's pool: here that fails the request)."""
    import starlette._exception_handler as starlette_handlers

    async def no_thread(*args: object, **kwargs: object) -> None:
        raise AssertionError("an exception handler ran in the thread pool")

    monkeypatch.setattr(starlette_handlers, "run_in_threadpool", no_thread)
    with TestClient(make_app(FakeRegistry(FakeServable("fake"))), raise_server_exceptions=False) as client:
        missing = client.get("/no/such/path")
        wrong_method = client.get("/v3/embeddings")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["allow"]
