"""What ``serve`` says once the models configured at start have loaded or failed.

With something to serve it logs one line, ``serving N models on http://HOST:PORT (gRPC PORT)``. With
nothing (every model failed, or none is configured) it logs why, with a hint when a folder is a Hugging
Face model rather than an exported one, and asks the server to exit 1, unless ``--allow_empty`` (a
repository that will be filled later).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from ovembed.config import ServeConfig
from ovembed.layout import GRAPH_FILENAME
from ovembed.repository import ModelEntry
from ovembed.serving.api import Registry
from ovembed.serving.usecases.models import not_available

log = logging.getLogger("ovembed.serving")

_POLL_S = 0.1


def folder_hint(path: Path) -> str | None:
    """Why ``path`` cannot be served as a model folder and what to do, or None when it may be one."""
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_dir():
        return f"{path} is not a folder"
    if (path / GRAPH_FILENAME).is_file() or any(path.glob("*.xml")) or any(path.glob("[0-9]*/*.xml")):
        return None
    weights = any(path.glob("*.safetensors")) or any(path.glob("*.bin")) or (path / "modules.json").is_file()
    if (path / "config.json").is_file() and weights:
        return (f"{path} is a Hugging Face model folder, not an exported one: serve it with --source_model {path} "
                "(it is exported first) or run 'ovembed export --source_model' on it")
    return f"{path} has no {GRAPH_FILENAME} and no OpenVINO IR: it is not an exported model folder"


def _hints(entries: list[ModelEntry]) -> str:
    hints = [h for h in (folder_hint(Path(e.base_path)) for e in entries) if h is not None]
    return "".join(f"; {h}" for h in hints)


async def report_start(cfg: ServeConfig, registry: Registry, *, grpc_port: Callable[[], int | None],
                       stop: Callable[[], None]) -> None:
    """Wait until the start has settled, then log what is served, or call ``stop`` when nothing is."""
    while not registry.settled:
        await asyncio.sleep(_POLL_S)
    serving = registry.available()
    failed = not_available(registry)
    if not serving and not cfg.allow_empty:
        reasons = "; ".join(f"model '{name}': {status.reason}" for name, status in failed)
        log.error("ovembed serve: nothing to serve (%s)%s; start with --allow_empty to keep the server up",
                  reasons or "no model is configured", _hints(registry.entries()))
        stop()
        return
    port = grpc_port()
    grpc = f" (gRPC {port})" if port else ""
    missing = f"; not serving: {', '.join(name for name, _ in failed)}" if failed else ""
    log.info("ovembed serve: serving %d model%s on http://%s:%d%s%s", len(serving), "" if len(serving) == 1 else "s",
             cfg.rest_bind_address, cfg.rest_port, grpc, missing)
