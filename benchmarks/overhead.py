"""Where one short query's time goes between the raw engine and ``ovembed serve``, in-process.

Loads the model the way ``ovembed serve`` does (``load_model``: private weights, pooling head,
plugin config) and times the same ~8-token query through each layer, p50 over ``--n`` runs:

1. ``infer``: one synchronous ``InferRequest.infer`` (the raw engine's single-query figure);
2. ``engine``: ``OpenVINOExecutor.start`` (the server's own dispatch) waited on with an event;
3. ``batcher``: ``Batcher.submit`` on an asyncio loop (padding, the loop hand-off);
4. ``servable``: ``EmbeddingServable.embed`` of the text (tokenizing too).

HTTP (uvicorn, routing, JSON) is what ``engine_ceiling.py``'s server row adds on top of 4.

    .venv/bin/python -m benchmarks.overhead --config_path REPO/config.json [--n 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ovembed.benchmark.stats import latency_of

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

QUERY = "how do I cook rice quickly"


def _p50(fn: Callable[[], object], n: int) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return latency_of(times).median


async def _p50_async(fn: Callable[[], object], n: int) -> float:
    for _ in range(20):
        await fn()  # type: ignore[misc]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()  # type: ignore[misc]
        times.append(time.perf_counter() - t0)
    return latency_of(times).median


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config_path", type=Path, required=True)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    import openvino as ov

    from ovembed.config import ServeConfig
    from ovembed.serving.batching.batcher import Batcher
    from ovembed.serving.batching.policy import BatchPolicy
    from ovembed.serving.openvino.loader import load_model
    from ovembed.serving.tasks.embeddings import EmbeddingServable

    cfg = ServeConfig(config_path=args.config_path)
    loaded = load_model(ov.Core(), args.model, args.config_path.parent / args.model, cfg)
    engine, tokenizer = loaded.engine, loaded.tokenizer
    ids = np.array([tokenizer.encode_texts([QUERY], truncate=True)[0]], dtype=np.int64)
    mask = np.ones_like(ids)
    print(f"query: {ids.shape[1]} tokens; {engine.slots} infer request(s); "
          f"streams {engine.latency.get_property('NUM_STREAMS')}")
    request = engine.latency.create_infer_request()
    feed = engine.inputs(ids, mask)
    rows = {"infer": _p50(lambda: request.infer(feed), args.n)}

    def via_engine() -> None:
        done = threading.Event()
        engine.start(ids, mask, lambda _result: done.set())
        done.wait()

    rows["engine"] = _p50(via_engine, args.n)

    async def in_loop() -> None:
        batcher = Batcher(engine, BatchPolicy(max_batch_tokens=cfg.max_batch_tokens,
                                              max_batch_size=cfg.max_batch_size,
                                              max_wait=cfg.max_wait_ms / 1000),
                          max_queue=cfg.max_queue, pad_id=tokenizer.pad_id)
        doc = [list(ids[0])]
        rows["batcher"] = await _p50_async(lambda: batcher.submit(doc), args.n)
        servable = EmbeddingServable(loaded.info, tokenizer, batcher)
        rows["servable"] = await _p50_async(lambda: servable.embed([QUERY]), args.n)

    asyncio.run(in_loop())
    base = rows["infer"]
    for name, ms in rows.items():
        print(f"{name:<9} p50 {ms:7.3f} ms  (+{ms - base:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
