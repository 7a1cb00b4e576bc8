"""Summary statistics of a load run: counts, failures, throughput and latency percentiles."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ovembed.benchmark.client import LoadResult


@dataclass(frozen=True)
class Latency:
    """Request latency in milliseconds over the successful requests (0 when there are none)."""

    mean: float = 0.0
    median: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    min: float = 0.0
    max: float = 0.0


@dataclass(frozen=True)
class Summary:
    api: str
    documents: int  # documents sent
    documents_ok: int  # documents embedded (in successful requests)
    requests: int
    requests_ok: int
    success_rate: float  # successful requests / requests
    failures: dict[str, int]  # failure kind ('HTTP 429', 'timeout', ...) -> requests
    tokens: int  # prompt tokens reported by the server for the successful requests
    tokens_reported: bool  # False when the server did not report token usage
    dimensions: int | None
    wall_time_s: float
    throughput_docs_per_s: float
    throughput_tokens_per_s: float
    requests_per_s: float
    latency_ms: Latency = field(default_factory=Latency)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method) of already sorted values."""
    if not sorted_values:
        return 0.0
    rank = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def latency_of(seconds: Sequence[float]) -> Latency:
    values = sorted(1000.0 * s for s in seconds)
    if not values:
        return Latency()
    return Latency(mean=sum(values) / len(values), median=percentile(values, 50),
                   p90=percentile(values, 90), p99=percentile(values, 99),
                   min=values[0], max=values[-1])


def summarize(result: LoadResult) -> Summary:
    records = result.records
    ok = [record for record in records if record.ok]
    failures = Counter(record.error for record in records if record.error is not None)
    reported = [record.tokens for record in ok if record.tokens is not None]
    tokens = sum(reported)
    documents_ok = sum(record.documents for record in ok)
    wall = result.wall_time

    def rate(amount: float) -> float:
        return amount / wall if wall > 0 else 0.0

    return Summary(
        api=str(result.api),
        documents=sum(record.documents for record in records),
        documents_ok=documents_ok,
        requests=len(records),
        requests_ok=len(ok),
        success_rate=len(ok) / len(records) if records else 0.0,
        failures=dict(sorted(failures.items())),
        tokens=tokens,
        tokens_reported=bool(ok) and len(reported) == len(ok),
        dimensions=result.dimensions,
        wall_time_s=wall,
        throughput_docs_per_s=rate(documents_ok),
        throughput_tokens_per_s=rate(tokens),
        requests_per_s=rate(len(ok)),
        latency_ms=latency_of([record.latency for record in ok]),
    )
