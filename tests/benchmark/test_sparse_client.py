"""`ovembed benchmark --task sparse`: TEI's /embed_sparse as a load-generator target, measured against
the real app over the fake engine (a sparse fake model) on a loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from ovembed.benchmark import measure
from ovembed.benchmark.client import Api, _BadResponse, detect_api, parse_response, request_body
from ovembed.config import BenchmarkConfig, Task
from ovembed.errors import ConfigError
from tests.serving.fakes import FakeRegistry, FakeServable, make_app


def test_detect_body_parse_and_default_url() -> None:
    assert detect_api("http://127.0.0.1:8000/embed_sparse") is Api.TEI_SPARSE
    assert detect_api("http://127.0.0.1:8000/v3/embed_sparse/") is Api.TEI_SPARSE
    assert request_body(Api.TEI_SPARSE, "splade", ["a", "b"], "float") == b'{"model":"splade","inputs":["a","b"]}'
    body = b'[[{"index":3,"value":0.5},{"index":9,"value":1.25}],[{"index":1,"value":2.0}]]'
    assert parse_response(Api.TEI_SPARSE, body, 2) == (None, 2)
    with pytest.raises(_BadResponse, match="1 sparse vectors for 2 inputs"):
        parse_response(Api.TEI_SPARSE, b'[[{"index":1,"value":2.0}]]', 2)
    with pytest.raises(_BadResponse, match="not"):
        parse_response(Api.TEI_SPARSE, b'[[{"index":"x","value":2.0}]]', 1)
    cfg = BenchmarkConfig(model="splade", task=Task.SPARSE)
    assert cfg.api_url == "http://127.0.0.1:8000/embed_sparse"
    with pytest.raises(ConfigError, match="--task embeddings does not match --api_url"):
        BenchmarkConfig(model="m", api_url="http://127.0.0.1:8000/embed_sparse")
    with pytest.raises(ConfigError, match="--task sparse does not match --api_url"):
        BenchmarkConfig(model="m", task=Task.SPARSE, api_url="http://127.0.0.1:9000/v3/embeddings")


@pytest.fixture
def server() -> Iterator[str]:
    app = make_app(FakeRegistry(FakeServable("splade", task="sparse", max_length=64)), allowed_hosts="127.0.0.1")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(5)
    sock.close()


def test_measures_embed_sparse(server: str) -> None:
    cfg = BenchmarkConfig(model="splade", task=Task.SPARSE, api_url=f"{server}/embed_sparse", limit=12, batch_size=4,
                          concurrency=2, synthetic_length=8)
    docs = [" ".join(["word"] * (i + 1)) + f" document {i}" for i in range(12)]  # vectors of varying sizes
    result = measure(cfg, docs, progress=False)
    assert result.api is Api.TEI_SPARSE and len(result.records) == 3 and all(r.ok for r in result.records)
    assert sum(r.documents for r in result.records) == 12
    assert result.dimensions is not None and result.dimensions > 1  # the most terms one vector had
