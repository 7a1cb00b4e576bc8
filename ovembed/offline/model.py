"""``ovembed.load``: one model of the serving engine in process, without HTTP.

The model runs on the server's own code path: the OpenVINO registry loads it (same loader, executors,
warm-up), and every call goes through the server's use cases (``usecases.embed``, ``rerank``,
``sparse``), its servable (tokenizer, prompts, truncation, chunking, cache) and its batcher, on a
private event loop (:class:`~ovembed.offline.loop.EngineLoop`). Calls from several threads are
batched together. This module is the only one of :mod:`ovembed.offline` that imports the engine's
modules; the others take their types from here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from ovembed.config import ServeConfig
from ovembed.errors import ConfigError, InvalidInput, ModelNotFound
from ovembed.offline.loop import EngineLoop
from ovembed.repository import ModelEntry, read_config
from ovembed.serving.api import (
    ChunkingOptions,
    ChunkSpan,
    ModelInfo,
    ModelState,
    Registry,
    RerankOptions,
    SparseOptions,
    SparseVector,
    Timings,
    not_ready,
)
from ovembed.serving.context import RequestContext, request_id
from ovembed.serving.usecases.classify import ClassifyRequest, classify
from ovembed.serving.usecases.embed import Embeddings, EmbedRequest, embed
from ovembed.serving.usecases.rerank import RerankRequest, rerank
from ovembed.serving.usecases.sparse import SparseRequest, embed_sparse
from ovembed.serving.wire.compact import COMPACT_TYPES, compact

__all__ = ["ChunkSpan", "ChunkingOptions", "Embeddings", "Model", "ModelInfo", "SparseVector", "load"]

Precision = Literal["float32", "float16", "int8", "uint8", "binary", "ubinary"]
PRECISIONS: tuple[Precision, ...] = ("float32", "float16", *COMPACT_TYPES)
DEFAULT_BATCH_SIZE = 256  # texts per use-case call: tokenized together, batched by the batcher
WINDOW_TEXTS = 4096  # texts one embed() call keeps queued in the engine at most (bounded memory)
# Offline callers bound their own queue (WINDOW_TEXTS per call): the server's 429 limits (queue
# length, expected wait) would only refuse work a batch job means to wait for.
_OFFLINE_MAX_QUEUE = 1 << 20


def _context() -> RequestContext:
    return RequestContext(request_id(None))


def as_precision(vectors: np.ndarray, precision: str) -> np.ndarray:
    """float32 rows as ``precision``: float16, or the server's compact types (``wire.compact``)."""
    if precision == "float32":
        return vectors
    if precision == "float16":
        return vectors.astype(np.float16)
    if precision in COMPACT_TYPES:
        return compact(vectors, precision)  # type: ignore[arg-type]
    raise InvalidInput(f"'precision' must be one of {', '.join(PRECISIONS)}, got {precision!r}", param="precision")


def _merge(parts: list[Embeddings], offsets: list[int]) -> Embeddings:
    first = parts[0]
    vectors = np.concatenate([p.vectors for p in parts]) if len(parts) > 1 else first.vectors
    chunks = None
    if first.chunks is not None:
        chunks = [dataclasses.replace(c, input_index=c.input_index + off)
                  for p, off in zip(parts, offsets, strict=True) for c in (p.chunks or [])]
    timings = Timings(sum(p.timings.tokenization for p in parts), sum(p.timings.queue for p in parts),
                      sum(p.timings.inference for p in parts))
    return Embeddings(first.info, first.version, vectors, [n for p in parts for n in p.token_counts], timings,
                      chunks)


class Model:
    """A loaded model. Use it as a context manager, or call :meth:`close`, to free it."""

    def __init__(self, registry: Registry, name: str, loop: EngineLoop) -> None:
        self._registry = registry
        self._loop = loop
        self.name = name

    @classmethod
    def start(cls, registry: Registry, name: str, loop: EngineLoop | None = None) -> Model:
        """Start ``registry`` on a new engine loop and wait until ``name`` has loaded (or raise
        ``ModelNotReady`` with the load error, after stopping the registry)."""
        model = cls(registry, name, loop or EngineLoop())
        try:
            model._loop.run(model._open())
        except BaseException:
            model.close()
            raise
        return model

    async def _open(self) -> None:
        await self._registry.start()
        while (status := self._registry.status(self.name)).state is ModelState.LOADING:
            await asyncio.sleep(0.02)
        if status.state is not ModelState.AVAILABLE:
            raise not_ready(self.name, status)

    # -- what the model is ------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo:
        return self._registry.get(self.name).info

    @property
    def dimensions(self) -> int:
        return self.info.dimensions

    @property
    def task(self) -> str:
        """``embeddings``, ``rerank``, ``sparse``, ``token_embed`` or ``classify`` (the value of ModelInfo's
        :class:`~ovembed.config.Task`)."""
        return str(self.info.task)

    @property
    def registry(self) -> Registry:
        """The registry the model is served from (run its coroutines with :meth:`submit`)."""
        return self._registry

    @property
    def loop(self) -> EngineLoop:
        return self._loop

    # -- embeddings ---------------------------------------------------------------------------

    def embed(self, texts: str | Sequence[str], *, prompt_name: str | None = None, prompt: str | None = None,
              dimensions: int | None = None, batch_size: int | None = None, truncate: bool | None = None,
              truncation_direction: Literal["left", "right"] = "right", chunking: ChunkingOptions | None = None,
              normalize: bool = False, precision: Precision = "float32",
              convert_to: Literal["numpy", "list"] = "numpy") -> Any:
        """Vectors for ``texts`` as ``/v3/embeddings`` computes them: ``[n, dimensions]`` (one row for a
        single string), rows in input order.

        ``prompt_name`` (or literal ``prompt``) picks a prompt as the server does (else the model's
        default); ``dimensions`` keeps the first N (Matryoshka, re-normalised if the model normalises);
        ``truncate`` None is the model's default; ``chunking`` splits long texts (``combine="none"``:
        one row per chunk, see :meth:`embed_result`). ``normalize`` also L2-normalises (models exported
        without ``--skip_normalize`` already are); ``precision`` float32, float16 or the server's compact
        types (int8, uint8, binary, ubinary); ``convert_to`` "numpy" or "list". Raises ``InputTooLong``,
        ``InvalidInput`` (:mod:`ovembed.errors`).
        """
        single = isinstance(texts, str)
        result = self.embed_result([texts] if single else texts, prompt_name=prompt_name, prompt=prompt,
                                   dimensions=dimensions, batch_size=batch_size, truncate=truncate,
                                   truncation_direction=truncation_direction, chunking=chunking)
        vectors = result.vectors
        if normalize:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), np.float32(1e-12))
        out = as_precision(vectors, precision)
        if single and result.chunks is None:
            out = out[0]
        return out.tolist() if convert_to == "list" else out

    encode = embed  # sentence-transformers' name

    def embed_result(self, texts: Sequence[str], *, batch_size: int | None = None,
                     **fields: Any) -> Embeddings:
        """The use case's whole result (vectors, token counts, chunk spans, timings); ``fields`` are
        :class:`~ovembed.serving.usecases.embed.EmbedRequest`'s (prompt_name, dimensions, truncate...)."""
        return self._loop.run(self.aembed(texts, batch_size=batch_size, **fields))

    async def aembed(self, texts: Sequence[str], *, batch_size: int | None = None, **fields: Any) -> Embeddings:
        """On the engine loop: ``texts`` in calls of ``batch_size``, at most :data:`WINDOW_TEXTS` queued."""
        size = batch_size or DEFAULT_BATCH_SIZE
        if size < 1:
            raise InvalidInput(f"'batch_size' must be at least 1, got {size}", param="batch_size")
        if len(texts) <= size:
            return await embed(self._registry, _context(), EmbedRequest(self.name, list(texts), **fields))
        gate = asyncio.Semaphore(max(2, WINDOW_TEXTS // size))

        async def one(piece: Sequence[str]) -> Embeddings:
            async with gate:
                return await embed(self._registry, _context(), EmbedRequest(self.name, list(piece), **fields))

        offsets = list(range(0, len(texts), size))
        tasks = [asyncio.ensure_future(one(texts[i:i + size])) for i in offsets]
        try:
            parts = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return _merge(list(parts), offsets)

    # -- the other tasks ------------------------------------------------------------------------

    def rerank(self, query: str, documents: Sequence[str], *, top_n: int | None = None, truncate: bool = False,
               max_tokens_per_doc: int | None = None, return_documents: bool = False,
               instruction: str | None = None) -> list[dict[str, Any]]:
        """``[{"index", "score"(, "document")}]``, best first, as ``/v3/rerank`` ranks them (a rerank model);
        ``instruction`` replaces a decoder reranker's default task instruction."""
        if not documents:
            return []
        options = RerankOptions(max_tokens_per_doc=max_tokens_per_doc, truncate=truncate, instruction=instruction)
        ranking = self._loop.run(rerank(self._registry, _context(),
                                        RerankRequest(self.name, query, tuple(documents), top_n, options)))
        return [{"index": i, "score": float(ranking.scores[i]), **({"document": documents[i]} if return_documents
                                                                    else {})} for i in ranking.order]

    def embed_sparse(self, texts: str | Sequence[str], *, prompt_name: str | None = None, prompt: str | None = None,
                     truncate: bool | None = None, top_k: int | None = None,
                     threshold: float | None = None) -> list[SparseVector]:
        """One pruned vocabulary-weight vector (``indices``, ``values``) per text (a sparse model)."""
        inputs = [texts] if isinstance(texts, str) else list(texts)
        result = self._loop.run(embed_sparse(self._registry, _context(), SparseRequest(
            self.name, inputs, truncate=truncate, prompt=prompt, prompt_name=prompt_name,
            pruning=SparseOptions(top_k=top_k, threshold=threshold))))
        return result.vectors

    def classify(self, inputs: str | tuple[str, str] | Sequence[str | tuple[str, str]], *,
                 truncate: bool | None = None, raw_scores: bool = False) -> list[dict[str, float]]:
        """``{label: score}`` per input (a text or a (premise, hypothesis) pair), labels best first, as
        ``/predict`` scores them (a classify model); ``raw_scores``: the logits instead of probabilities."""
        items = [inputs] if isinstance(inputs, (str, tuple)) else list(inputs)
        if not items:
            return []
        result = self._loop.run(classify(self._registry, _context(),
                                         ClassifyRequest(self.name, tuple(items), truncate=truncate)))
        scores = result.logits if raw_scores else result.probs
        return [{result.labels[c]: float(scores[r, c]) for c in result.order(r, raw=raw_scores)}
                for r in range(len(items))]

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        """Finish the calls in progress, release the compiled model and stop the engine thread."""
        if self._loop.closed:
            return
        try:
            self._loop.run(self._registry.stop(timeout=None))
        finally:
            self._loop.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._loop.closed else "open"
        return f"<ovembed.Model {self.name!r} {state}>"


def serve_config(model: str | os.PathLike[str], *, config_path: str | os.PathLike[str] | None = None,
                 **options: Any) -> tuple[ServeConfig, list[ModelEntry]]:
    """The ServeConfig and the one repository entry for a model folder, or for the model of
    ``config_path``'s repository named ``model``."""
    options.setdefault("max_queue", _OFFLINE_MAX_QUEUE)
    options.setdefault("max_queue_wait_seconds", 0.0)  # a batch job waits its turn: never refused by wait
    if config_path is not None:
        entries = [e for e in read_config(Path(config_path)) if e.name == str(model)]
        if not entries:
            raise ModelNotFound(str(model))
        return ServeConfig(config_path=Path(config_path), **options), entries
    path = Path(model).expanduser().resolve()
    if not (path / "graph.pbtxt").is_file():
        hint = " (a model repository: pass config_path= and the model's name)" if (
            path / "config.json").is_file() else ""
        raise ConfigError(f"{path} is not an exported model folder: it has no graph.pbtxt{hint}")
    name = options.pop("model_name", None) or path.name
    return ServeConfig(model_path=path, model_name=name, **options), [ModelEntry(name, path)]


def load(model: str | os.PathLike[str], *, config_path: str | os.PathLike[str] | None = None,
         **options: Any) -> Model:
    """Load an exported model folder (or, with ``config_path``, the model of that repository named ``model``).

    ``options`` are :class:`~ovembed.config.ServeConfig` fields (``target_device``, ``max_batch_tokens``,
    ``executors``, ``inference_precision``, ``cache_bytes``...). Raises ``ConfigError``, ``ModelNotFound``
    or ``ModelNotReady`` (the load failed: its reason).
    """
    from ovembed.serving.models.registry import ModelRegistry  # openvino: only when a model loads

    cfg, entries = serve_config(model, config_path=config_path, **options)
    return Model.start(ModelRegistry(entries, cfg), entries[0].name)
