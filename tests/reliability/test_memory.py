"""Memory is bounded by configuration, not by traffic: 200 rejected large requests and 200
cancelled ones (the client disconnects mid-request) leave the server's RSS within 100 MB of where
it started, and the second 100 rejected ones within 30 MB of the first (no growth per request),
with no gc.collect() anywhere in the server.

Each rejected request used to keep its whole tokenized batch alive in a reference cycle (the
error's traceback held RequestContext.guard's frame, which held the task, which held the error;
and scope -> context -> disconnect closure -> request -> body): ~160 MB per request, 5 GB after 30.

"Where it started" is after a few warm-up requests of each kind: the first large request raises
the allocator's high-water mark once (tokenizer buffers, the 8 MB body), which is a bound, not a leak.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.live_server import LiveServer, live_server

pytestmark = pytest.mark.reliability

_MB = 1_000_000
_TOO_LONG = {"model": "minilm", "input": ["word " * 780] * 2048}  # 2048 x 782 tokens, limit 256
_SLOW = {"model": "minilm", "input": ["a sentence of some words " * 40] * 256}  # ~1 s of inference


def _reject(client: httpx.Client, server: LiveServer) -> None:
    response = client.post(f"{server.base_url}/v3/embeddings", json=_TOO_LONG)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "input_too_long"


def _cancel(server: LiveServer) -> None:
    # A fresh connection that is closed after 0.2 s, while the request is queued or running.
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{server.base_url}/v3/embeddings", json=_SLOW, timeout=httpx.Timeout(60, read=0.2))


def test_rejected_and_cancelled_requests_release_their_memory(tmp_path: Path, minilm_repo: Path) -> None:
    with live_server(minilm_repo, tmp_path / "server.log") as server, httpx.Client(timeout=120) as client:
        for _ in range(5):
            _reject(client, server)
            _cancel(server)
        start = server.rss_bytes()
        for _ in range(100):
            _reject(client, server)
        halfway = server.rss_bytes()
        for _ in range(100):
            _reject(client, server)
        after_rejected = server.rss_bytes()
        for _ in range(200):
            _cancel(server)
        # the last cancelled batch may still be finishing: wait for the server to be idle
        ok = client.post(f"{server.base_url}/v3/embeddings", json={"model": "minilm", "input": "still here"})
        assert ok.status_code == 200, ok.text
        end = server.rss_bytes()
        growth = {"rejected": (after_rejected - start) / _MB, "rejected, second 100": (after_rejected - halfway) / _MB,
                  "cancelled": (end - after_rejected) / _MB}
        # A leak grows with every request (it was ~160 MB per rejected request); allocator fragmentation
        # settles (seen: 2-55 MB over the first 200, on a quiet and on a loaded machine alike).
        assert after_rejected - halfway < 30 * _MB, f"RSS still growing: {growth}"
        assert end - start < 100 * _MB, f"RSS {start / _MB:.0f} -> {end / _MB:.0f} MB; growth {growth}"
        assert server.process.poll() is None
