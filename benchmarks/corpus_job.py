"""``ovembed embed`` against the same corpus through ``ovembed serve``, in one run.

Generates ``--docs`` documents of mixed length (about 10-400 tokens), exports (or reuses) the packaged
MiniLM, then runs, one after the other on the same machine:

1. ``ovembed embed --input corpus.jsonl --output vectors.parquet`` (a child process; the job's own
   rows/s and tokens/s from its summary line, and the wall time including the model load);
2. ``ovembed serve`` with an httpx client posting ``--request_docs`` documents per request,
   ``--concurrency`` requests in flight (base64, what the OpenAI SDK asks for), after a warm-up.

    .venv/bin/python -m benchmarks.corpus_job [--docs 20000] [--weights int8] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import MODEL_NAME, clean_env, export, start_server

WORDS = ("retrieval", "embedding", "vector", "corpus", "document", "query", "model", "inference", "latency",
         "throughput", "batch", "token", "openvino", "server", "client", "memory", "cache", "parquet", "shard",
         "resume", "manifest", "cluster", "actor", "dataset")


def make_corpus(path: Path, docs: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(docs):
            words = rng.randint(8, 300)  # MiniLM's tokenizer: ~1.3 tokens a word here -> ~10-400 tokens
            f.write(json.dumps({"id": f"doc-{i}", "text": " ".join(rng.choice(WORDS) for _ in range(words))}) + "\n")


def run_job(config: Path, corpus: Path, out: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "ovembed", "embed", "--config_path", str(config), "--model_name", MODEL_NAME,
               "--input", str(corpus), "--id_field", "id", "--output", str(out), "--overwrite", "--truncate",
               "--quiet"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=clean_env(), check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"ovembed embed failed:\n{done.stderr}")
    line = done.stderr.strip().splitlines()[-1]
    match = re.search(r"embedded (\d+) rows.*?, (\d+) tokens in ([\d.]+) s", line)
    assert match is not None, line
    rows, tokens, seconds = int(match[1]), int(match[2]), float(match[3])
    return {"path": "ovembed embed", "docs": rows, "tokens": tokens, "seconds": seconds,
            "docs_per_s": rows / seconds, "tokens_per_s": tokens / seconds, "wall_s_with_load": wall}


async def _client(base_url: str, texts: list[str], per_request: int, concurrency: int) -> tuple[int, float]:
    import httpx

    chunks = [texts[i:i + per_request] for i in range(0, len(texts), per_request)]
    tokens = 0
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)

    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
        async def worker() -> None:
            nonlocal tokens
            while not queue.empty():
                chunk = queue.get_nowait()
                r = await client.post("/v3/embeddings", json={"model": MODEL_NAME, "input": chunk,
                                                              "encoding_format": "base64", "truncate": True})
                r.raise_for_status()
                tokens += r.json()["usage"]["prompt_tokens"]

        await client.post("/v3/embeddings", json={"model": MODEL_NAME, "input": texts[:per_request],
                                                  "truncate": True})  # warm-up
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return tokens, time.perf_counter() - started


def run_server(config: Path, corpus: Path, log: Path, per_request: int, concurrency: int) -> dict[str, Any]:
    texts = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    with start_server(config, log) as server:
        tokens, seconds = asyncio.run(_client(server.base_url, texts, per_request, concurrency))
    return {"path": f"ovembed serve ({per_request} docs/request x {concurrency})", "docs": len(texts),
            "tokens": tokens, "seconds": seconds, "docs_per_s": len(texts) / seconds,
            "tokens_per_s": tokens / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--weights", default="int8", choices=("fp32", "int8"))
    parser.add_argument("--request_docs", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ovembed-corpus-bench")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    # --truncate: the longest documents are cut to the model's 256 tokens (as sentence-transformers does)
    config = export(work / f"repo-{args.weights}", "--weight_format", args.weights, "--truncate",
                    log=work / "export.log")
    corpus = work / f"corpus-{args.docs}.jsonl"
    if not corpus.exists():
        make_corpus(corpus, args.docs)
    rows = [run_job(config, corpus, work / "vectors.parquet"),
            run_server(config, corpus, work / "server.log", args.request_docs, args.concurrency)]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['path']:<45} {r['docs']:>7} docs {r['tokens']:>9} tokens {r['seconds']:7.1f} s "
                  f"{r['docs_per_s']:8.1f} docs/s {r['tokens_per_s']:9.0f} tokens/s")
        print(f"ovembed embed / serve: {rows[0]['docs_per_s'] / rows[1]['docs_per_s']:.2f}x docs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
