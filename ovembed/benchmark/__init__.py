"""`ovembed benchmark`: load-test any OpenAI- or Ollama-compatible embeddings endpoint.

:func:`run` is what the CLI calls. Scripts that bring their own documents (``benchmarks/``) use
:func:`measure` (or the async :func:`ovembed.benchmark.client.run_load`) and get a
:class:`~ovembed.benchmark.stats.Summary` back. Nothing heavy is imported until a run starts.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ovembed.config import BenchmarkConfig, Scenario

if TYPE_CHECKING:
    from ovembed.benchmark.client import LoadResult

__all__ = ["measure", "run"]


def measure(cfg: BenchmarkConfig, documents: Sequence[str], *,
            progress: bool = True) -> LoadResult:
    """Send ``documents`` as ``cfg`` says and return every request's record.

    Raises :class:`~ovembed.benchmark.client.BenchmarkError` when the server cannot be used
    (unreachable, wrong endpoint, model or key) and ``InvalidInput`` for impossible settings.
    """
    from ovembed.benchmark.client import BenchmarkError, ProgressBar, run_load

    with ProgressBar(len(documents), enabled=progress) as bar:
        result = asyncio.run(run_load(cfg, documents, progress=bar))
    if result.records and all(r.error == "connection error" for r in result.records):
        raise BenchmarkError(f"cannot reach {cfg.api_url}: every request failed to connect")
    return result


def run(cfg: BenchmarkConfig) -> int:
    """Run the benchmark ``cfg`` describes, print the results, return the exit code.

    Exit code 0 when every request succeeded, 1 when some failed (results are still printed).
    Errors that stop the run before any result (``OvembedError``) propagate for the CLI to
    print as one line.
    """
    import orjson

    from ovembed.benchmark.dataset import load_documents
    from ovembed.benchmark.report import to_json, to_table
    from ovembed.benchmark.stats import summarize
    from ovembed.exitcodes import ExitCode

    documents = load_documents(cfg.dataset, cfg.limit, words=cfg.synthetic_length,
                               seed=cfg.seed)
    if cfg.scenario is Scenario.MIXED:
        from ovembed.benchmark import mixed

        result = asyncio.run(mixed.run_mixed(cfg, documents))
        print(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode() if cfg.json
              else mixed.to_table(result, cfg), file=sys.stdout)
        failed = result.interactive_failures or result.bulk_failures
        return ExitCode.FAILURE if failed else ExitCode.OK
    summary = summarize(measure(cfg, documents))
    print(to_json(summary, cfg) if cfg.json else to_table(summary, cfg), file=sys.stdout)
    return ExitCode.OK if summary.requests_ok == summary.requests else ExitCode.FAILURE
