"""Fair scheduling through a live server: a one-input query that arrives while a large request
is being embedded is answered before it (strict arrival order made it wait for all of it: 20.9 s
behind 1024 x 250 tokens). The unit-level version, on the batcher's clock, is in
tests/serving/batching/test_batcher.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import live_server

pytestmark = pytest.mark.reliability

_BULK = {"model": "minilm", "input": [f"document {i} talks at some length about scheduling " * 25
                                      for i in range(512)]}  # 512 x ~200 tokens


def test_a_query_arriving_during_a_bulk_request_finishes_first(tmp_path: Path, minilm_repo: Path) -> None:
    finished: dict[str, float] = {}

    def bulk(client: httpx.Client) -> None:
        response = client.post("/v3/embeddings", json=_BULK)
        finished["bulk"] = time.perf_counter()
        assert response.status_code == 200, response.text[:300]

    with live_server(minilm_repo, tmp_path / "server.log") as server, \
            httpx.Client(base_url=server.base_url, timeout=600) as client:
        assert client.post("/v3/embeddings", json={"model": "minilm", "input": "warm up"}).status_code == 200
        worker = threading.Thread(target=bulk, args=(httpx.Client(base_url=server.base_url, timeout=600),))
        started = time.perf_counter()
        worker.start()
        time.sleep(0.5)  # the bulk request is tokenized and queued
        assert worker.is_alive(), "the bulk request finished before the query was sent: make it larger"
        sent = time.perf_counter()
        response = client.post("/v3/embeddings", json={"model": "minilm", "input": "a short query"})
        finished["query"] = time.perf_counter()
        assert response.status_code == 200
        worker.join()
    assert finished["query"] < finished["bulk"], (
        f"query {finished['query'] - sent:.2f} s after it was sent, bulk {finished['bulk'] - started:.2f} s")
