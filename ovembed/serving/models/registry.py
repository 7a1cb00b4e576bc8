"""Every configured model, its state, and its servable once loaded.

Models load in worker threads after :meth:`ModelRegistry.start`; a model that fails is
UNAVAILABLE with its error while the others serve. :meth:`add`, :meth:`remove` and
:meth:`apply` change the set of models while serving (live reload, driven by
:mod:`ovembed.serving.models.reload`): a replaced model keeps serving its old version until the new
one is warm, and a retired version finishes the requests that already resolved it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ovembed.config import ServeConfig
from ovembed.errors import ConfigError, ModelNotFound, OvembedError
from ovembed.repository import ModelEntry, read_config
from ovembed.serving.api import BatchObserver, CacheStats, ModelState, ModelStatus, not_ready
from ovembed.serving.batching.admission import AdmissionPolicy
from ovembed.serving.batching.batcher import Batcher
from ovembed.serving.batching.policy import BatchPolicy
from ovembed.serving.openvino.errors import openvino_reason
from ovembed.serving.openvino.loader import load_model
from ovembed.serving.tasks.base import BaseServable, ServableDeps
from ovembed.serving.tasks.cache import EmbeddingCache
from ovembed.serving.tasks.spec import LoadedModel

if TYPE_CHECKING:
    import openvino as ov

log = logging.getLogger("ovembed.serving")


@dataclass
class _Slot:
    entry: ModelEntry
    status: ModelStatus
    servable: BaseServable | None = None
    loaded: LoadedModel | None = None
    task: asyncio.Task[None] | None = None
    pending: bool = False  # a model being prepared (pull mode's export): no entry in config.json yet


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OvembedError):
        return exc.message
    return f"{type(exc).__name__}: {openvino_reason(exc)}"


class ModelRegistry:
    """Implements :class:`ovembed.serving.api.Registry` for OpenVINO models."""

    def __init__(self, entries: Sequence[ModelEntry], cfg: ServeConfig) -> None:
        self.cfg = cfg
        self.policy = BatchPolicy(max_batch_tokens=cfg.max_batch_tokens,
                                  max_batch_size=cfg.max_batch_size,
                                  max_wait=cfg.max_wait_ms / 1000.0)
        self._slots: dict[str, _Slot] = {}
        for entry in entries:
            if entry.name in self._slots:
                raise ConfigError(f"model '{entry.name}' is configured twice")
            self._slots[entry.name] = _Slot(entry, ModelStatus(ModelState.LOADING))
        self._core: ov.Core | None = None
        self._core_lock = threading.Lock()
        self._started = False
        self._warm = False  # the models configured at start have all loaded or failed
        self._observers: Callable[[str], BatchObserver] | None = None
        # One byte budget for every model's repeated inputs; a reload drops the model's entries.
        self.cache = EmbeddingCache(cfg.cache_bytes) if cfg.cache_bytes > 0 else None

    def cache_stats(self) -> CacheStats | None:
        return self.cache.stats() if self.cache is not None else None

    def observe_batches(self, factory: Callable[[str], BatchObserver]) -> None:
        """Give each model's batcher ``factory(model name)`` as its observer (metrics); call
        before :meth:`start`."""
        self._observers = factory

    @classmethod
    def from_serve_config(cls, cfg: ServeConfig) -> ModelRegistry:
        """``--config_path``: every model in the repository; ``--model_path``: one model, named
        ``--model_name`` or after its folder."""
        if cfg.config_path is not None and cfg.model_path is not None:
            raise ConfigError("use either --config_path or --model_path, not both")
        if cfg.config_path is not None:
            return cls(read_config(cfg.config_path), cfg)
        if cfg.model_path is not None:
            path = Path(cfg.model_path).expanduser().resolve()
            return cls([ModelEntry(cfg.model_name or path.name, path)], cfg)
        raise ConfigError("nothing to serve: give --config_path or --model_path")

    @property
    def core(self) -> ov.Core:
        """One ``ov.Core`` for every model, created on first use (never at import)."""
        with self._core_lock:
            if self._core is None:
                import openvino as ov

                self._core = ov.Core()
            return self._core

    # -- Registry protocol --------------------------------------------------------------

    def get(self, name: str) -> BaseServable:
        slot = self._slots.get(name)
        if slot is None:
            raise ModelNotFound(name)
        if slot.servable is None:
            raise not_ready(name, slot.status)
        return slot.servable

    def status(self, name: str) -> ModelStatus:
        slot = self._slots.get(name)
        if slot is None:
            raise ModelNotFound(name)
        return slot.status

    def names(self) -> list[str]:
        return list(self._slots)

    def available(self) -> list[BaseServable]:
        return [s.servable for s in self._slots.values() if s.servable is not None]

    @property
    def ready(self) -> bool:
        """Every configured model is AVAILABLE (OVMS): a model that failed, or is still being loaded
        or pulled at start, keeps the server out of a load balancer. Once warm, a model that a reload
        adds is LOADING on its own (its /v2/models/<name>/ready) while the others serve."""
        if not self._warm:
            self._warm = self._started and not any(s.status.state is ModelState.LOADING
                                                   for s in self._slots.values())
        return self._warm and all(
            s.status.state is ModelState.AVAILABLE or (s.status.state is ModelState.LOADING and not s.pending)
            for s in self._slots.values())

    @property
    def settled(self) -> bool:
        """Nothing configured is loading or being prepared any more (every model served or failed)."""
        return self._started and not any(s.status.state is ModelState.LOADING for s in self._slots.values())

    def prepare(self, name: str, base_path: Path, detail: str) -> None:
        """Show ``name`` as LOADING with ``detail`` while it is being prepared (pull mode exports it);
        the reload that finds it in config.json replaces this slot with the real model."""
        self._slots[name] = _Slot(ModelEntry(name, base_path), ModelStatus(ModelState.LOADING, detail=detail),
                                  pending=True)

    def progress(self, name: str, detail: str) -> None:
        slot = self._slots.get(name)
        if slot is not None and slot.pending and slot.status.state is ModelState.LOADING:
            slot.status = replace(slot.status, detail=detail)

    def prepare_failed(self, name: str, reason: str) -> None:
        slot = self._slots.get(name)
        if slot is not None and slot.pending:
            slot.status = ModelStatus(ModelState.UNAVAILABLE, reason, slot.status.version)

    @property
    def reloadable(self) -> bool:
        return True

    def entries(self) -> list[ModelEntry]:
        return [s.entry for s in self._slots.values() if not s.pending]

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Begin loading every model in the background; returns at once."""
        self._started = True
        for slot in self._slots.values():
            if slot.task is None and slot.servable is None:
                slot.task = asyncio.create_task(self._load(slot), name=f"load {slot.entry.name}")

    async def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until every model is loaded or failed; returns ``ready``."""
        tasks = [s.task for s in self._slots.values() if s.task is not None and not s.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        return self.ready

    async def stop(self, timeout: float | None = None) -> None:
        """Stop loading, drain every batcher (up to ``timeout`` seconds), release the engines."""
        slots = list(self._slots.values())
        for slot in slots:
            if slot.task is not None and not slot.task.done():
                slot.task.cancel()
            slot.status = ModelStatus(ModelState.UNAVAILABLE, "the server is stopping",
                                      slot.status.version)
        await asyncio.gather(*(self._unload(s, timeout) for s in slots), return_exceptions=True)

    async def add(self, entry: ModelEntry) -> None:
        """Load a new model, or a new version of an existing one. Returns once it has loaded
        or failed. A replaced model keeps serving its old version until the new one is warm;
        if the new one fails, the old one stays and the status carries the error."""
        old = self._slots.get(entry.name)
        if old is None or old.servable is None:
            if old is not None and old.task is not None and not old.task.done():
                old.task.cancel()
            version = old.status.version + (0 if old.pending else 1) if old is not None else 1
            slot = _Slot(entry, ModelStatus(ModelState.LOADING, None, version))
            self._slots[entry.name] = slot
            if self._started:
                slot.task = asyncio.create_task(self._load(slot), name=f"load {entry.name}")
                await asyncio.shield(slot.task)
            return
        fresh = _Slot(entry, ModelStatus(ModelState.LOADING, None, old.status.version + 1))
        await self._load(fresh)
        if fresh.servable is None:
            old.status = ModelStatus(ModelState.AVAILABLE, f"reload failed: {fresh.status.error}",
                                     old.status.version)
            return
        if self._slots.get(entry.name) is old:
            self._slots[entry.name] = fresh
            await self._unload(old)
        else:  # removed or replaced meanwhile
            await self._unload(fresh)

    async def remove(self, name: str) -> None:
        """Stop serving ``name``: new requests get 404, queued ones finish (graceful)."""
        slot = self._slots.pop(name, None)
        if slot is None:
            raise ModelNotFound(name)
        if slot.task is not None and not slot.task.done():
            slot.task.cancel()
        await self._unload(slot)

    # -- internals ----------------------------------------------------------------------

    async def _load(self, slot: _Slot) -> None:
        name = slot.entry.name
        version = slot.status.version
        try:
            loaded = await asyncio.to_thread(self._load_blocking, slot.entry)
        except asyncio.CancelledError:
            slot.status = ModelStatus(ModelState.UNAVAILABLE, "loading was cancelled", version)
            raise
        except Exception as exc:
            if isinstance(exc, OvembedError):
                log.error("model %s failed to load: %s", name, exc.message)
            else:
                log.exception("model %s failed to load", name)
            slot.status = ModelStatus(ModelState.UNAVAILABLE, _describe(exc), version)
            return
        policy = loaded.spec.batch_policy(self.policy, loaded.info)
        batcher = Batcher(loaded.engine, policy, max_queue=self.cfg.max_queue,
                          pad_id=loaded.tokenizer.pad_id, name=name,
                          max_width=loaded.info.max_length,
                          observer=self._observers(name) if self._observers is not None else None,
                          admission=AdmissionPolicy(self.cfg.max_queue_wait_seconds))
        slot.loaded = loaded
        slot.servable = loaded.spec.servable(loaded, batcher, ServableDeps(
            cache=self.cache, version=version, max_chunks=self.cfg.max_chunks_per_input))
        slot.status = ModelStatus(ModelState.AVAILABLE, loaded.warning, version)

    def _load_blocking(self, entry: ModelEntry) -> LoadedModel:
        """One loader for every task: the graph's calculator chooses it (:mod:`ovembed.serving.tasks.table`)."""
        if entry.error is not None:  # e.g. an s3:// base_path: this model fails, the others serve
            raise ConfigError(entry.error)
        return load_model(self.core, entry.name, entry.base_path, self.cfg, entry.graph_path)

    async def _unload(self, slot: _Slot, timeout: float | None = None) -> None:
        servable, loaded = slot.servable, slot.loaded
        slot.servable = None
        slot.loaded = None
        if servable is not None:
            await servable.close(self.cfg.graceful_timeout if timeout is None else timeout)
            if self.cache is not None:  # after close: its last requests may still have cached
                self.cache.drop_scope(servable.scope)
        if loaded is not None:
            await asyncio.to_thread(loaded.engine.close)
