"""``--scenario mixed``: one bulk client and interactive clients on the same model at once.

The bulk client sends requests of ``--bulk_batch_size`` documents back to back; each of the
``--concurrency`` interactive clients sends requests of ``--batch_size`` documents (1: a search
query) back to back. The bulk client starts first so the queue always holds bulk work when a
query arrives. After ``--duration`` seconds no new request is sent; the run ends when the ones
in flight are answered. What it shows is the server's scheduling: with strict arrival order a
query waits for the whole bulk request queued before it, with fair queueing for about one batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ovembed.benchmark.client import RequestRecord, _Sender, detect_api, request_body
from ovembed.benchmark.stats import Latency, latency_of
from ovembed.benchmark.transport import Http11Client
from ovembed.config import BenchmarkConfig
from ovembed.errors import ConfigError


@dataclass(frozen=True)
class MixedSummary:
    interactive_clients: int
    interactive_batch_size: int
    bulk_batch_size: int
    duration_s: float  # until the last response
    interactive_requests: int
    interactive_failures: int
    interactive_latency_ms: Latency  # successful interactive requests
    bulk_requests: int
    bulk_failures: int
    bulk_latency_ms: Latency
    bulk_throughput_docs_per_s: float
    interactive_throughput_docs_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def run_mixed(cfg: BenchmarkConfig, documents: Sequence[str]) -> MixedSummary:
    """Run the mixed scenario ``cfg`` describes over ``documents`` (cycled as needed)."""
    if not documents:
        raise ConfigError("no documents to send")
    api = detect_api(cfg.api_url)

    def body(start: int, count: int) -> bytes:
        texts = [documents[(start + i) % len(documents)] for i in range(count)]
        return request_body(api, cfg.model, texts, cfg.encoding_format)

    headers = {"content-type": "application/json", "accept": "application/json"}
    if cfg.api_key:
        headers["authorization"] = f"Bearer {cfg.api_key}"
    bulk_body = body(0, cfg.bulk_batch_size)
    queries = [body(i * cfg.batch_size, cfg.batch_size) for i in range(max(1, len(documents) // cfg.batch_size))]
    bulk: list[RequestRecord] = []
    interactive: list[RequestRecord] = []
    async with (Http11Client(cfg.api_url, headers=headers, timeout=cfg.timeout) as bulk_client,
                Http11Client(cfg.api_url, headers=headers, timeout=cfg.timeout) as query_client):
        bulk_sender, query_sender = _Sender(bulk_client, api), _Sender(query_client, api)
        for _ in range(cfg.warmup):  # checks the URL, model and key; warms both request sizes
            await query_sender.preflight(queries[0], cfg.batch_size)
            await bulk_sender.preflight(bulk_body, cfg.bulk_batch_size)
        origin = time.perf_counter()
        deadline = origin + cfg.duration

        async def bulk_loop() -> None:
            while time.perf_counter() < deadline:
                bulk.append(await bulk_sender.send(len(bulk), bulk_body, cfg.bulk_batch_size, origin))

        async def query_loop(client: int) -> None:
            await asyncio.sleep(0.2)  # the bulk request is queued first
            sent = client
            while time.perf_counter() < deadline:
                query = queries[sent % len(queries)]
                interactive.append(await query_sender.send(sent, query, cfg.batch_size, origin))
                sent += cfg.concurrency

        await asyncio.gather(bulk_loop(), *(query_loop(c) for c in range(cfg.concurrency)))
        wall = time.perf_counter() - origin

    def ok(records: list[RequestRecord]) -> list[RequestRecord]:
        return [r for r in records if r.ok]

    return MixedSummary(
        interactive_clients=cfg.concurrency, interactive_batch_size=cfg.batch_size,
        bulk_batch_size=cfg.bulk_batch_size, duration_s=wall,
        interactive_requests=len(interactive), interactive_failures=len(interactive) - len(ok(interactive)),
        interactive_latency_ms=latency_of([r.latency for r in ok(interactive)]),
        bulk_requests=len(bulk), bulk_failures=len(bulk) - len(ok(bulk)),
        bulk_latency_ms=latency_of([r.latency for r in ok(bulk)]),
        bulk_throughput_docs_per_s=sum(r.documents for r in ok(bulk)) / wall if wall > 0 else 0.0,
        interactive_throughput_docs_per_s=sum(r.documents for r in ok(interactive)) / wall if wall > 0 else 0.0,
    )


def to_table(summary: MixedSummary, cfg: BenchmarkConfig) -> str:
    i, b = summary.interactive_latency_ms, summary.bulk_latency_ms
    rows = [
        ("endpoint", cfg.api_url),
        ("scenario", f"mixed: 1 bulk client x {summary.bulk_batch_size} docs + {summary.interactive_clients} "
                     f"interactive client(s) x {summary.interactive_batch_size} doc(s), {cfg.duration:g} s"),
        ("interactive requests", f"{summary.interactive_requests} ({summary.interactive_failures} failed)"),
        ("interactive latency ms", f"p50 {i.median:.1f}  p90 {i.p90:.1f}  p99 {i.p99:.1f}  max {i.max:.1f}"),
        ("bulk requests", f"{summary.bulk_requests} ({summary.bulk_failures} failed)"),
        ("bulk latency ms", f"p50 {b.median:.1f}  max {b.max:.1f}"),
        ("bulk throughput", f"{summary.bulk_throughput_docs_per_s:.1f} docs/s"),
        ("interactive throughput", f"{summary.interactive_throughput_docs_per_s:.1f} docs/s"),
        ("wall time", f"{summary.duration_s:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
