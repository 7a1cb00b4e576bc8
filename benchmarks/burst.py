"""A burst of large requests against ``--max_queue_wait_seconds``: what clients get, and what a
short query meanwhile waits.

The issue's scenario (64 clients each sending 64 passages of ~160 tokens, a 120 s client timeout)
on MiniLM fp32, against ``ovembed serve`` with the given limit (0: off, the old behaviour, where
clients may time out). Each client sends ``--rounds`` requests one after the other; a short query is
timed once a second during the burst. Prints the statuses, the client timeouts and the query
latencies.

    .venv/bin/python -m benchmarks.burst --max_queue_wait_seconds 5
    .venv/bin/python -m benchmarks.burst --max_queue_wait_seconds 0 --clients 16   # off
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from benchmarks.harness import MODEL_NAME, export, start_server
from ovembed.benchmark.stats import latency_of


def _passage(i: int) -> str:
    return " ".join(f"word{(i * 7 + k) % 97}" for k in range(100))  # ~160 tokens for MiniLM


def run(base_url: str, clients: int, passages: int, rounds: int, timeout: float) -> None:
    body = {"model": MODEL_NAME, "input": [_passage(i) for i in range(passages)]}
    outcomes: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def client(_: int) -> None:
        with httpx.Client(base_url=base_url, timeout=timeout) as http:
            for _ in range(rounds):
                try:
                    outcome = str(http.post("/v3/embeddings", json=body).status_code)
                except httpx.TimeoutException:
                    outcome = "client timeout"
                with lock:
                    outcomes[outcome] += 1

    query_ms: list[float] = []
    query_status: collections.Counter[int] = collections.Counter()
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        burst = [pool.submit(client, i) for i in range(clients)]
        with httpx.Client(base_url=base_url, timeout=timeout) as http:
            while not all(f.done() for f in burst):
                t = time.perf_counter()
                resp = http.post("/v3/embeddings", json={"model": MODEL_NAME, "input": "a short query"})
                query_ms.append((time.perf_counter() - t) * 1000)
                query_status[resp.status_code] += 1
                time.sleep(1.0)
        for future in burst:
            future.result()
    print(f"burst: {clients} clients x {rounds} requests of {passages} passages, "
          f"{time.perf_counter() - started:.1f} s")
    print("  outcomes: " + ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())))
    if query_ms:
        ms = latency_of([m / 1000 for m in query_ms])
        print(f"  short query during the burst: statuses {dict(query_status)}, "
              f"p50 {ms.median:.1f} ms, max {max(query_ms):.1f} ms (n={len(query_ms)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config_path", type=Path, help="a repository config.json (default: export MiniLM)")
    parser.add_argument("--max_queue_wait_seconds", type=float, default=5.0, help="the server's limit (0: off)")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--passages", type=int, default=64, help="inputs per request")
    parser.add_argument("--rounds", type=int, default=2, help="requests per client")
    parser.add_argument("--timeout", type=float, default=120.0, help="client timeout, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = args.config_path or export(Path(tmp), "--skip_verify")
        server = start_server(config, Path(tmp) / "server.log", "--max_queue_wait_seconds",
                              str(args.max_queue_wait_seconds))
        try:
            run(server.base_url, args.clients, args.passages, args.rounds, args.timeout)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
