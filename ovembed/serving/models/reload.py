"""Live configuration reload: follow config.json and each model's files while serving.

A :class:`Reloader` compares what the files say now with what it last applied:

- a model listed in config.json that is not served yet is added (it loads, then turns ready);
- a model no longer listed is removed (requests that already reached it finish, new ones get 404);
- a model whose folder moved, whose graph.pbtxt changed (pooling, device, plugin_config...) or
  whose model files changed (a re-export into the same folder) is reloaded: the old version
  keeps serving until the new one is warm, and keeps serving if the new one fails.

A config.json that cannot be read (bad JSON, wrong shape, a model listed twice) changes
nothing: the error is logged once, kept in :attr:`Reloader.error` (shown by ``GET /v1/config``)
and cleared when the file is valid again. A broken graph or a missing folder is the model's own
error (its status in ``/v1/config``); the other models are unaffected.

In single-model mode (``--model_path``) the one model's folder is followed the same way.
Change detection is cheap enough to poll every second: config.json and graph.pbtxt are
compared by content, the model files by size, mtime and inode (hidden files are ignored, so
editors' and exporters' temporary files do not trigger anything).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ovembed.config import ServeConfig
from ovembed.errors import ConfigError
from ovembed.graphs import GRAPH_FILENAME, parse_graph
from ovembed.repository import ModelEntry, read_config
from ovembed.serving.api import Registry

log = logging.getLogger("ovembed.serving")

Fingerprint = tuple[object, ...]
Applied = tuple[Path, float | None, Fingerprint]  # base_path, idle_unload_seconds, files


@dataclass(frozen=True)
class ReloadResult:
    """What one reload pass did."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    reloaded: tuple[str, ...] = ()
    error: str | None = None  # config.json could not be read: nothing was changed

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.reloaded)

    @property
    def outcome(self) -> str:
        """``"error"``, ``"changed"`` or ``"unchanged"`` (the metrics label)."""
        if self.error is not None:
            return "error"
        return "changed" if self.changed else "unchanged"


def _files(folder: Path) -> Fingerprint:
    """The folder's inode and (name, size, mtime, inode) of the regular, non-hidden files directly
    in it; graph.pbtxt is left out (compared by content)."""
    try:
        with os.scandir(folder) as it:
            found = sorted((e for e in it if not e.name.startswith(".") and e.name != GRAPH_FILENAME
                            and e.is_file()), key=lambda e: e.name)
            out: list[object] = [os.stat(folder).st_ino]
            for e in found:
                st = e.stat()
                out.append((e.name, st.st_size, st.st_mtime_ns, st.st_ino))
    except OSError:
        return ("missing",)
    return tuple(out)


def fingerprint(base_path: Path, graph_file: str = GRAPH_FILENAME) -> Fingerprint:
    """What serving ``base_path`` depends on: graph.pbtxt's content and the model files.

    The folder's inode is part of it, so a folder replaced by a fresh export (rename into
    place) counts as changed even if every file looks the same.
    """
    graph = Path(base_path) / graph_file
    try:
        text = graph.read_bytes()
    except OSError:
        return ("no graph", _files(base_path))
    model_dir = Path(base_path)
    with contextlib.suppress(ConfigError, ValueError):  # a broken graph still has a fingerprint
        model_dir = parse_graph(text.decode("utf-8")).model_dir(Path(base_path))
    parts: list[object] = [hashlib.sha256(text).hexdigest(), _files(base_path)]
    if model_dir.resolve() != Path(base_path).resolve():
        parts.append(_files(model_dir))
    return tuple(parts)


class Reloader:
    """Applies config.json and model-folder changes to a :class:`Registry`.

    Call :meth:`snapshot` when the registry starts loading (the files as they are now are what
    it loads), then :meth:`reload` to apply changes, e.g. from :meth:`poll` or ``POST
    /v1/config/reload``. Passes never overlap.
    """

    def __init__(self, cfg: ServeConfig, registry: Registry, *,
                 on_result: Callable[[ReloadResult], None] | None = None) -> None:
        self.cfg = cfg
        self.registry = registry
        self.error: str | None = None  # why config.json was last refused, until it is fixed
        self._on_result = on_result
        self._applied: dict[str, Applied] = {}
        self._lock = asyncio.Lock()

    def snapshot(self, entries: Sequence[ModelEntry] | None = None) -> None:
        """Take ``entries`` (default: the registry's) and their files as they are now as the
        baseline. File I/O: may run in a worker thread when ``entries`` is given."""
        entries = self.registry.entries() if entries is None else entries
        self._applied = {e.name: (e.base_path, e.idle_unload_seconds, fingerprint(e.base_path, e.graph_path))
                         for e in entries}

    def _wanted(self, fixed: Sequence[ModelEntry] | None) -> dict[str, tuple[ModelEntry, Fingerprint]]:
        """The models the files describe now (``fixed``: single-model mode's one folder);
        raises ``ConfigError`` for a bad config.json. Runs in a worker thread."""
        entries = read_config(self.cfg.config_path) if self.cfg.config_path is not None else fixed or []
        return {e.name: (e, fingerprint(e.base_path, e.graph_path)) for e in entries}

    async def reload(self) -> ReloadResult:
        """One pass: read the files, apply the differences, wait until new versions have loaded
        (or failed). Never raises for a bad config.json: see :attr:`ReloadResult.error`."""
        async with self._lock:
            result = await self._reload()
        if self._on_result is not None:
            self._on_result(result)
        return result

    async def _reload(self) -> ReloadResult:
        fixed = self.registry.entries() if self.cfg.config_path is None else None  # on the loop thread
        try:
            wanted = await asyncio.to_thread(self._wanted, fixed)
        except ConfigError as exc:
            if exc.message != self.error:  # once per distinct problem, not every poll
                log.error("configuration not reloaded, the models keep serving as they are: %s",
                          exc.message)
            self.error = exc.message
            return ReloadResult(error=exc.message)
        if self.error is not None:
            log.info("configuration is readable again")
            self.error = None
        applied = self._applied
        result = ReloadResult(
            added=tuple(n for n in wanted if n not in applied),
            removed=tuple(n for n in applied if n not in wanted),
            reloaded=tuple(n for n, (entry, fp) in wanted.items()
                           if n in applied and applied[n] != (entry.base_path, entry.idle_unload_seconds, fp)),
        )
        self._applied = {n: (entry.base_path, entry.idle_unload_seconds, fp) for n, (entry, fp) in wanted.items()}
        if not result.changed:
            return result
        log.info("configuration changed: added %s, removed %s, reloading %s",
                 list(result.added) or "none", list(result.removed) or "none",
                 list(result.reloaded) or "none")
        jobs = [self.registry.remove(n) for n in result.removed]
        jobs += [self.registry.add(wanted[n][0]) for n in (*result.added, *result.reloaded)]
        for outcome in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.error("configuration change not applied: %s", outcome, exc_info=outcome)
            elif isinstance(outcome, BaseException):  # cancelled: the server is stopping
                raise outcome
        return result

    async def poll(self, interval: float) -> None:
        """Reload every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reload()
            except Exception:  # never let one bad pass stop the watching
                log.exception("configuration reload failed")


@contextlib.asynccontextmanager
async def reloading(cfg: ServeConfig, registry: Registry, *,
                    on_result: Callable[[ReloadResult], None] | None = None) -> AsyncIterator[Reloader | None]:
    """A :class:`Reloader` for ``registry`` for the duration, polling every
    ``--file_system_poll_wait_seconds`` (0: only on request); None when the registry cannot
    change its models (e.g. a test fake)."""
    if not registry.reloadable:
        yield None
        return
    reloader = Reloader(cfg, registry, on_result=on_result)
    await asyncio.to_thread(reloader.snapshot, registry.entries())
    interval = cfg.file_system_poll_wait_seconds
    task = asyncio.create_task(reloader.poll(interval), name="config reload") if interval > 0 else None
    try:
        yield reloader
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
