"""Render a :class:`Summary`: a readable table, or JSON (``--json``)."""

from __future__ import annotations

import math
from typing import Any

import orjson

from ovembed.benchmark.stats import Summary
from ovembed.config import BenchmarkConfig


def settings(cfg: BenchmarkConfig) -> dict[str, Any]:
    """The run's settings as JSON-safe values (no API key; an infinite rate becomes "inf")."""
    return {
        "api_url": cfg.api_url,
        "task": cfg.task.value,
        "model": cfg.model,
        "dataset": cfg.dataset,
        "synthetic_length": cfg.synthetic_length if cfg.dataset == "synthetic" else None,
        "batch_size": cfg.batch_size,
        "concurrency": cfg.concurrency,
        "request_rate": "inf" if math.isinf(cfg.request_rate) else cfg.request_rate,
        "limit": cfg.limit,
        "encoding_format": cfg.encoding_format,
        "seed": cfg.seed,
    }


def to_json(summary: Summary, cfg: BenchmarkConfig) -> str:
    return orjson.dumps({**summary.to_dict(), "config": settings(cfg)},
                        option=orjson.OPT_INDENT_2).decode()


def to_table(summary: Summary, cfg: BenchmarkConfig) -> str:
    s = summary
    lat = s.latency_ms
    dataset = f"synthetic (~{cfg.synthetic_length} words)" if cfg.dataset == "synthetic" \
        else cfg.dataset
    rate = "inf" if math.isinf(cfg.request_rate) else f"{cfg.request_rate:g}/s"
    failures = ", ".join(f"{kind}: {count}" for kind, count in s.failures.items()) or "none"
    if s.tokens_reported:
        tokens = str(s.tokens)
    elif s.tokens:
        tokens = f"{s.tokens} (reported for some requests only)"
    else:
        tokens = "n/a (the server does not report token usage)"
    rows = [
        ("endpoint", f"{cfg.api_url} ({s.api}), model {cfg.model}"),
        ("load", f"{dataset}, batch_size {cfg.batch_size}, concurrency {cfg.concurrency}, "
                 f"request_rate {rate}, {cfg.encoding_format}"),
        ("documents", f"{s.documents} sent, {s.documents_ok} embedded"),
        ("requests", f"{s.requests} ({s.success_rate:.2%} successful)"),
        ("failures", failures),
        ("tokens", tokens),
        ("dimensions", str(s.dimensions) if s.dimensions is not None else "n/a"),
        ("wall time", f"{s.wall_time_s:.3f} s"),
        ("throughput", f"{s.throughput_tokens_per_s:,.1f} tokens/s, "
                       f"{s.throughput_docs_per_s:,.2f} docs/s, "
                       f"{s.requests_per_s:,.2f} requests/s"),
        ("latency (ms)", f"mean {lat.mean:.2f}, median {lat.median:.2f}, p90 {lat.p90:.2f}, "
                         f"p99 {lat.p99:.2f} (min {lat.min:.2f}, max {lat.max:.2f})"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
