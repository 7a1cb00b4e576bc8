"""End to end, the real server with MiniLM: a burst of large requests against a small
``--max_queue_wait_seconds`` gets only 200s and 429s (with Retry-After, no client timeout) while an
interactive query still gets its 200; ``x-request-timeout`` gives a 504 and drops the work not started."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import LiveServer, live_server

pytestmark = pytest.mark.timeout(900)

CLIENTS = 8
ROUNDS = 3  # bulk requests per client, one after the other
PASSAGES = 128
# Wide enough to admit a query behind CLIENTS queued requests (~1k tokens) at >= ~1k tokens/s (a
# slow shared CPU), narrow enough to refuse a bulk request behind them (~90k tokens) at <= ~90k tokens/s.
MAX_WAIT = "1"


def passage(i: int) -> str:
    return " ".join(f"word{(i * 7 + k) % 50}" for k in range(60))  # ~100 tokens


@pytest.fixture(scope="module")
def server(minilm_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("admission") / "server.log"
    with live_server(minilm_repo, log, "--max_queue_wait_seconds", MAX_WAIT, "--max_queue", "1000000") as running:
        yield running


def metric(server: LiveServer, name: str) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=30).text
    found = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_burst_gets_200s_and_429s_and_a_query_still_gets_through(server: LiveServer) -> None:
    body = {"model": "minilm", "input": [passage(i) for i in range(PASSAGES)]}
    statuses: list[int] = []
    retry_after: list[int] = []
    lock = threading.Lock()

    def bulk_client(_: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=120) as client:
            for _ in range(ROUNDS):
                resp = client.post("/v3/embeddings", json=body)  # a ReadTimeout here fails the test
                with lock:
                    statuses.append(resp.status_code)
                    if resp.status_code == 429:
                        retry_after.append(int(resp.headers["retry-after"]))
                        assert "would wait about" in resp.json()["error"]["message"]
                    else:
                        assert len(resp.json()["data"]) == PASSAGES

    with ThreadPoolExecutor(CLIENTS) as pool:
        burst = [pool.submit(bulk_client, i) for i in range(CLIENTS)]
        while metric(server, "ovembed_queue_depth") == 0 and not all(f.done() for f in burst):
            pass  # until the burst has filled the queue
        query = httpx.post(f"{server.base_url}/v3/embeddings", json={"model": "minilm", "input": "a short query"},
                           timeout=120)
        for future in burst:
            future.result()
    assert query.status_code == 200, query.text  # during the burst
    assert len(query.json()["data"][0]["embedding"]) == 384
    assert set(statuses) == {200, 429}, statuses
    assert all(1 <= r <= 60 for r in retry_after)
    assert metric(server, "ovembed_refused_by_wait_total") == statuses.count(429)
    rate = metric(server, "ovembed_tokens_total") / metric(server, "ovembed_inference_duration_seconds_sum")
    print(f"statuses {statuses}, engine tokens/s per stream {rate:.0f}")


def test_x_request_timeout_gives_504_and_drops_the_work(server: LiveServer) -> None:
    before = metric(server, "ovembed_tokens_total")
    texts = [passage(i) for i in range(2048)]  # ~200k tokens: far more than 0.05 s of work
    resp = httpx.post(f"{server.base_url}/v3/embeddings", json={"model": "minilm", "input": texts},
                      headers={"x-request-timeout": "0.05"}, timeout=120)
    assert resp.status_code == 504, resp.text
    error = resp.json()["error"]
    assert error["code"] == "deadline_exceeded" and error["message"].startswith("Deadline exceeded")
    bad = httpx.post(f"{server.base_url}/api/embed", json={"model": "minilm", "input": "a"},
                     headers={"x-request-timeout": "soon"}, timeout=30)
    assert bad.status_code == 400 and "x-request-timeout" in bad.json()["error"]
    ok = httpx.post(f"{server.base_url}/v3/embeddings", json={"model": "minilm", "input": "a"},
                    headers={"x-request-timeout": "60"}, timeout=120)
    assert ok.status_code == 200  # the queue is free again: the dropped work was never computed
    assert metric(server, "ovembed_deadline_expired_total") == 1
    computed = metric(server, "ovembed_tokens_total") - before
    assert computed < 100 * len(texts) / 2  # most of it was dropped, never computed
