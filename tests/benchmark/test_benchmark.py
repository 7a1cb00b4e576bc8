"""`ovembed benchmark` against an in-test OpenAI/Ollama look-alike served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ovembed.benchmark import measure, run
from ovembed.benchmark.client import Api, BenchmarkError, detect_api
from ovembed.benchmark.dataset import load_documents, read_documents, synthetic_documents
from ovembed.benchmark.stats import percentile, summarize
from ovembed.cli import main
from ovembed.config import BenchmarkConfig
from ovembed.errors import ConfigError, InvalidInput

DIMS = 8
KEY = "secret-key"
SLEEP_S = 0.02  # per request in the fake, long enough for every worker to overlap


@dataclass
class _State:
    in_flight: int = 0
    max_in_flight: int = 0
    requests: int = 0
    flaky_calls: int = 0


def _vector(text: str) -> np.ndarray:
    rng = np.random.default_rng(abs(hash(text)) % (2**32))
    return rng.standard_normal(DIMS).astype("<f4")


def _tokens(texts: list[str]) -> int:
    return sum(len(text.split()) + 2 for text in texts)  # words + [CLS] + [SEP]


def _fake_app(state: _State) -> Starlette:
    async def openai(request: Request) -> JSONResponse:
        body = await request.json()
        if body["model"] != "fake":
            return JSONResponse({"error": {"message": f"The model '{body['model']}' does not "
                                           "exist", "type": "NotFoundError", "param": "model",
                                           "code": 404}}, status_code=404)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        state.requests += 1
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await asyncio.sleep(SLEEP_S)
        finally:
            state.in_flight -= 1
        as_b64 = body.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(_vector(t).tobytes()).decode() if as_b64
                 else _vector(t).tolist()} for i, t in enumerate(texts)]
        n = _tokens(texts)
        return JSONResponse({"object": "list", "data": data, "model": body["model"],
                             "usage": {"prompt_tokens": n, "total_tokens": n}})

    async def flaky(request: Request) -> JSONResponse:
        state.flaky_calls += 1
        if state.flaky_calls % 5 == 0:
            return JSONResponse({"error": {"message": "boom", "type": "InternalServerError",
                                           "param": None, "code": 500}}, status_code=500)
        if state.flaky_calls % 3 == 0:
            return JSONResponse({"error": {"message": "queue full", "type": "RateLimitError",
                                           "param": None, "code": 429}}, status_code=429)
        return await openai(request)

    async def secured(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": {"message": "Invalid API key", "type": "auth",
                                           "param": None, "code": 401}}, status_code=401)
        return await openai(request)

    async def ollama(request: Request) -> JSONResponse:
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return JSONResponse({"model": body["model"],
                             "embeddings": [_vector(t).tolist() for t in texts],
                             "total_duration": 1000, "load_duration": 0,
                             "prompt_eval_count": _tokens(texts)})

    async def broken(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": []})

    async def no_usage(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"object": "list", "model": "fake", "data": [
            {"object": "embedding", "index": i, "embedding": _vector(t).tolist()}
            for i, t in enumerate(body["input"])]})

    return Starlette(routes=[
        Route("/v3/embeddings", openai, methods=["POST"]),
        Route("/v1/embeddings", openai, methods=["POST"]),
        Route("/flaky/v3/embeddings", flaky, methods=["POST"]),
        Route("/secured/v3/embeddings", secured, methods=["POST"]),
        Route("/broken/v3/embeddings", broken, methods=["POST"]),
        Route("/nousage/v1/embeddings", no_usage, methods=["POST"]),
        Route("/api/embed", ollama, methods=["POST"]),
    ])


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[str, _State]]:
    """(base URL, state) of the fake server on a free loopback port, stopped afterwards."""
    state = _State()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_fake_app(state), log_level="warning",
                                           lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "fake server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", state
    server.should_exit = True
    thread.join(timeout=15)
    sock.close()
    assert not thread.is_alive()


def _cfg(url: str, **overrides: Any) -> BenchmarkConfig:
    values: dict[str, Any] = {"api_url": url, "model": "fake", "limit": 40,
                              "synthetic_length": 12, "concurrency": 4, "json": True}
    values.update(overrides)
    return BenchmarkConfig(**values)


def _run_json(cfg: BenchmarkConfig,
              capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = run(cfg)
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("path", "encoding"), [("/v3/embeddings", "float"),
                                                ("/v1/embeddings", "base64")])
def test_openai_json_report(fake: tuple[str, _State], capsys: pytest.CaptureFixture[str],
                            path: str, encoding: str) -> None:
    base, state = fake
    state.max_in_flight = 0
    code, out = _run_json(_cfg(base + path, encoding_format=encoding, batch_size=3), capsys)
    assert code == 0
    assert out["api"] == "openai"
    assert out["documents"] == out["documents_ok"] == 40
    assert out["requests"] == out["requests_ok"] == 14  # ceil(40 / 3)
    assert out["success_rate"] == 1.0 and out["failures"] == {}
    assert out["dimensions"] == DIMS
    assert out["tokens_reported"] is True
    docs = synthetic_documents(40, 12)
    assert out["tokens"] == _tokens(docs)
    lat = out["latency_ms"]
    assert lat["p99"] >= lat["p90"] >= lat["median"] > 0 and lat["max"] >= lat["p99"]
    assert lat["min"] >= 1000 * SLEEP_S
    assert out["wall_time_s"] > 0
    assert out["throughput_tokens_per_s"] == pytest.approx(out["tokens"] / out["wall_time_s"])
    assert out["throughput_docs_per_s"] == pytest.approx(40 / out["wall_time_s"])
    assert out["config"]["request_rate"] == "inf" and out["config"]["concurrency"] == 4
    assert 1 < state.max_in_flight <= 4  # concurrent, never more than asked


def test_table_output(fake: tuple[str, _State], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_cfg(fake[0] + "/v3/embeddings", json=False, limit=10)) == 0
    out = capsys.readouterr().out
    for label in ("documents", "10 sent, 10 embedded", "100.00% successful", "tokens/s",
                  "docs/s", "median", "p99", "wall time"):
        assert label in out


def test_server_without_usage(fake: tuple[str, _State],
                              capsys: pytest.CaptureFixture[str]) -> None:
    url = fake[0] + "/nousage/v1/embeddings"
    code, out = _run_json(_cfg(url, limit=4), capsys)
    assert code == 0 and out["tokens"] == 0 and out["tokens_reported"] is False
    assert out["throughput_tokens_per_s"] == 0 and out["documents_ok"] == 4
    assert run(_cfg(url, limit=4, json=False)) == 0
    assert "n/a (the server does not report token usage)" in capsys.readouterr().out


def test_failures_are_counted_by_status(fake: tuple[str, _State],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    base, state = fake
    state.flaky_calls = 0
    # warmup off so that the counter sequence is the measured one: 30 requests, one doc each.
    code, out = _run_json(_cfg(base + "/flaky/v3/embeddings", limit=30, warmup=0), capsys)
    assert code == 1
    # calls 5,10,..,30 -> 500 (6); multiples of 3 that are not of 5 -> 429 (8)
    assert out["failures"] == {"HTTP 429": 8, "HTTP 500": 6}
    assert out["requests"] == out["documents"] == 30
    assert out["requests_ok"] == out["documents_ok"] == 16
    assert out["success_rate"] == pytest.approx(16 / 30)
    assert out["throughput_docs_per_s"] == pytest.approx(16 / out["wall_time_s"])


def test_ollama(fake: tuple[str, _State], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run_json(_cfg(fake[0] + "/api/embed", batch_size=5, limit=20), capsys)
    assert code == 0
    assert out["api"] == "ollama" and out["dimensions"] == DIMS
    assert out["requests_ok"] == 4 and out["documents_ok"] == 20
    assert out["tokens"] == _tokens(synthetic_documents(20, 12))


def test_bearer_key(fake: tuple[str, _State], capsys: pytest.CaptureFixture[str]) -> None:
    url = fake[0] + "/secured/v3/embeddings"
    code, out = _run_json(_cfg(url, api_key=KEY, limit=5), capsys)
    assert code == 0 and out["success_rate"] == 1.0
    with pytest.raises(BenchmarkError, match="answered 401: Invalid API key"):
        run(_cfg(url, api_key="wrong", limit=5))


def test_poisson_arrivals_follow_the_rate(fake: tuple[str, _State]) -> None:
    cfg = _cfg(fake[0] + "/v3/embeddings", request_rate=200.0, limit=60, concurrency=8)
    result = measure(cfg, synthetic_documents(60, 5), progress=False)
    summary = summarize(result)
    assert summary.requests_ok == 60
    starts = [r.start for r in result.records]
    # 59 exponential gaps of mean 5 ms: the run spreads over roughly 0.3 s, not a burst.
    assert 0.1 < starts[-1] < 1.0
    assert summary.wall_time_s >= starts[-1]


def test_dataset_file(fake: tuple[str, _State], tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    lines = tmp_path / "texts.txt"
    lines.write_text("first text\n\nsecond text here\n", encoding="utf-8")
    as_json = tmp_path / "texts.json"
    as_json.write_text(json.dumps(["one", "two three"]), encoding="utf-8")
    assert read_documents(lines) == ["first text", "second text here"]
    assert load_documents(str(as_json), 5) == ["one", "two three", "one", "two three", "one"]
    code, out = _run_json(_cfg(fake[0] + "/v3/embeddings", dataset=str(lines), limit=3), capsys)
    assert code == 0 and out["tokens"] == 4 + 5 + 4 and out["config"]["synthetic_length"] is None
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(InvalidInput, match="list of strings"):
        read_documents(bad)


def test_synthetic_documents_are_seeded_and_varied() -> None:
    docs = synthetic_documents(200, 40, seed=3)
    assert docs == synthetic_documents(200, 40, seed=3) != synthetic_documents(200, 40, seed=4)
    assert len(set(docs)) == 200
    counts = [len(d.split()) for d in docs]
    assert min(counts) >= 30 and max(counts) <= 50 and 38 < sum(counts) / 200 < 42
    assert len({w.strip(".").lower() for d in docs for w in d.split()}) > 500
    queries = synthetic_documents(10, 3)
    assert all("." not in q for q in synthetic_documents(10, 3, punctuate=False))
    assert all(2 <= len(q.split()) <= 4 for q in queries)


def test_unreachable_server_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["benchmark", "--api_url", f"http://127.0.0.1:{port}/v3/embeddings",
                 "--model", "m", "--limit", "3", "--json"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    error_lines = [line for line in captured.err.splitlines() if "error" in line]
    assert len(error_lines) == 1 and "cannot reach" in error_lines[0]
    assert "Traceback" not in captured.err


def test_wrong_model_and_wrong_endpoint(fake: tuple[str, _State]) -> None:
    with pytest.raises(BenchmarkError, match="answered 404: The model 'nope' does not exist"):
        run(_cfg(fake[0] + "/v3/embeddings", model="nope", limit=2))
    with pytest.raises(BenchmarkError, match="does not answer like an openai embeddings"):
        run(_cfg(fake[0] + "/broken/v3/embeddings", limit=2))


def test_detect_api_and_settings_checks() -> None:
    assert detect_api("http://127.0.0.1:8000/v3/embeddings") is Api.OPENAI
    assert detect_api("http://127.0.0.1:8000/v1/embeddings/") is Api.OPENAI
    assert detect_api("http://127.0.0.1:11434/api/embed") is Api.OLLAMA
    assert detect_api("http://127.0.0.1:8000/v3/rerank") is Api.RERANK
    assert detect_api("http://127.0.0.1:8000/rerank") is Api.TEI_RERANK
    for url in ("http://127.0.0.1:11434/api/embeddings", "127.0.0.1:8000/v3/embeddings",
                "http://127.0.0.1:8000/v3/models"):
        with pytest.raises(ConfigError, match="--api_url"):
            detect_api(url)
    cfg = _cfg("http://127.0.0.1:9/v3/embeddings")
    for bad, flag in (({"encoding_format": "int8"}, "--encoding_format must be one of float, base64"),
                      ({"concurrency": 0}, "--concurrency must be at least 1"),
                      ({"request_rate": 0.0}, "--request_rate must be positive")):
        with pytest.raises(ConfigError, match=flag):
            replace(cfg, **bad)
    with pytest.raises(ConfigError, match="no documents"):
        measure(cfg, [], progress=False)
    assert replace(cfg, api_url="http://127.0.0.1:8000/v3/embeddings", task="rerank").api_url == \
        "http://127.0.0.1:8000/v3/rerank"  # --task rerank moves the default URL
    with pytest.raises(ConfigError, match="--task embeddings does not match --api_url"):
        replace(cfg, api_url="http://127.0.0.1:8000/rerank")


def test_percentile_matches_numpy() -> None:
    values = sorted(np.random.default_rng(0).exponential(size=101).tolist())
    for q in (50, 90, 99):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_mixed_scenario_reports_interactive_latency_and_bulk_throughput(
        fake: tuple[str, _State], capsys: pytest.CaptureFixture[str]) -> None:
    base, state = fake
    state.max_in_flight = 0
    cfg = _cfg(base + "/v3/embeddings", scenario="mixed", bulk_batch_size=50, batch_size=1, concurrency=3,
               duration=0.6)
    code, out = _run_json(cfg, capsys)
    assert code == 0
    assert (out["interactive_clients"], out["interactive_batch_size"], out["bulk_batch_size"]) == (3, 1, 50)
    assert out["interactive_failures"] == out["bulk_failures"] == 0
    # every client sends back to back for 0.6 s against a fake that takes 20 ms a request
    assert out["bulk_requests"] >= 5 and out["interactive_requests"] >= 3 * 5
    lat = out["interactive_latency_ms"]
    assert lat["p99"] >= lat["median"] >= 1000 * SLEEP_S
    assert out["bulk_throughput_docs_per_s"] == pytest.approx(
        50 * out["bulk_requests"] / out["duration_s"])
    assert out["duration_s"] >= 0.6
    assert state.max_in_flight == 4  # the bulk client and the three interactive ones at once
    assert run(replace(cfg, json=False)) == 0
    table = capsys.readouterr().out
    for label in ("interactive latency ms", "p99", "bulk throughput", "docs/s", "1 bulk client x 50 docs"):
        assert label in table


def test_mixed_scenario_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="--bulk_batch_size"):
        BenchmarkConfig(model="m", scenario="mixed", bulk_batch_size=0)
    with pytest.raises(ConfigError, match="--duration"):
        BenchmarkConfig(model="m", scenario="mixed", duration=0)
