"""Pull mode: ``ovembed serve --source_model ORG/NAME`` exports the model into the repository if it is not
there yet, then serves it (OVMS's ``--pull --source_model``, TEI's ``--model-id``).

The server starts at once and answers ``/v2/health/ready`` with 503 while the export runs; the model is
listed as LOADING with what the export is doing, and a request for it gets 503 with ``Retry-After``. The
export is the same pipeline as ``ovembed export`` (same atomicity and verification), run as a child process
so that the server never imports torch; its output goes to the server log. When it has upserted config.json,
the reloader loads the model; the server is ready once it is warm. A failed export makes the model
UNAVAILABLE with the export's error (other models in the repository keep serving), and removes the empty
config.json the pull created.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovembed.config import ExportConfig, ServeConfig
from ovembed.errors import ConfigError
from ovembed.pull_fields import PULL_FIELDS
from ovembed.repository import atomic_write_text, model_dir_for, read_config

if TYPE_CHECKING:
    from ovembed.serving.models.registry import ModelRegistry
    from ovembed.serving.models.reload import Reloader

log = logging.getLogger("ovembed.serving")


def served_name(cfg: ServeConfig) -> str:
    return cfg.model_name or str(cfg.source_model)


def _pulled(cfg: ServeConfig) -> dict[str, Any]:
    """The serve flags of :data:`~ovembed.pull_fields.PULL_FIELDS` (ServeConfig fields that config.py adds)."""
    return {name: getattr(cfg, name) for name in PULL_FIELDS}


_EMPTY_CONFIG = '{\n  "model_config_list": []\n}\n'


def pull_config(cfg: ServeConfig) -> ServeConfig:
    """``cfg`` with its repository's config.json as ``config_path`` (created empty when missing)."""
    if cfg.source_model is None:
        return cfg
    if cfg.model_path is not None:
        raise ConfigError("--source_model serves a model repository: drop --model_path")
    config_path = cfg.config_path or Path(_pulled(cfg)["model_repository_path"]) / "config.json"
    if not config_path.exists():
        atomic_write_text(config_path, _EMPTY_CONFIG)
    return dataclasses.replace(cfg, config_path=config_path)


def _drop_empty_config(cfg: ServeConfig) -> None:
    """A failed or stopped pull leaves no empty config.json behind (one that has entries stays)."""
    path = cfg.config_path
    if path is not None and path.is_file() and path.read_text() == _EMPTY_CONFIG:
        path.unlink()


def needs_export(cfg: ServeConfig) -> bool:
    """Whether the served name is missing from config.json (or its folder has no graph.pbtxt), or
    ``--overwrite_models`` asks for a new export."""
    assert cfg.config_path is not None
    if _pulled(cfg)["overwrite_models"]:
        return True
    name = served_name(cfg)
    for entry in read_config(cfg.config_path):
        if entry.name == name:
            return not (entry.base_path / "graph.pbtxt").is_file()
    return True


def export_config(cfg: ServeConfig) -> ExportConfig:
    """The ``ovembed export`` of the pull: the :data:`~ovembed.pull_fields.PULL_FIELDS` that apply to its
    task, and what pull mode sets itself (source, served name, config.json, quiet, serve's --target_device)."""
    assert cfg.source_model is not None and cfg.config_path is not None
    pulled = _pulled(cfg)
    values = {name: value for name, value in pulled.items() if PULL_FIELDS[name].applies(str(pulled["task"]))}
    if cfg.target_device is not None:
        values["target_device"] = cfg.target_device
    return ExportConfig(source_model=cfg.source_model, model_name=served_name(cfg), config_file_path=cfg.config_path,
                        quiet=True, **values)


def export_command(cfg: ServeConfig) -> list[str]:
    """``ovembed export`` for the pull: :func:`export_config` as flags (``--hf_token`` goes in the environment)."""
    command = [sys.executable, "-m", "ovembed", "export", "--quiet"]
    export = export_config(cfg)
    for f in dataclasses.fields(ExportConfig):
        value = getattr(export, f.name)
        if f.name in ("quiet", "hf_token") or value == (f.default_factory() if callable(f.default_factory)
                                                          else f.default):
            continue
        if isinstance(value, bool):
            command.append(f"--{f.name}" if value else f"--no-{f.name}")
        else:  # '=': a value may start with '--'
            command += [f"--{f.name}={item}" for item in (value if isinstance(value, list) else [value])]
    return command


def export_env(cfg: ServeConfig) -> dict[str, str]:
    """The export's environment: the server's, with ``--hf_token`` as HF_TOKEN (not on its command line,
    where any local user could read it)."""
    env = dict(os.environ)
    token = _pulled(cfg)["hf_token"]
    if token is not None:
        env["HF_TOKEN"] = token
    return env


async def _run_export(cfg: ServeConfig, registry: ModelRegistry) -> tuple[int, str]:
    """The export's exit code and its last output line (the error, when it failed)."""
    command = export_command(cfg)
    name, doing = served_name(cfg), _doing(cfg)
    last = ""
    log.info("pull: exporting %s as %s into %s", cfg.source_model, name, _pulled(cfg)["model_repository_path"])
    proc = await asyncio.create_subprocess_exec(*command, env=export_env(cfg), stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    try:
        async for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                log.info("export: %s", line)
                last = line
                registry.progress(name, f"{doing}: {line}")
        return await proc.wait(), last
    except asyncio.CancelledError:  # the server is stopping: the export cleans up on SIGTERM
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(ProcessLookupError):
                await asyncio.shield(proc.wait())
        raise


def _doing(cfg: ServeConfig) -> str:
    source = str(cfg.source_model)
    return f"exporting {source}" + ("" if Path(source).expanduser().exists() else " from the Hugging Face Hub")


async def pull(cfg: ServeConfig, registry: ModelRegistry, reloader: Reloader | None) -> None:
    """Export, then have the reloader load the model; it is shown LOADING meanwhile."""
    name = served_name(cfg)
    try:
        code, last = await _run_export(cfg, registry)
    except OSError as exc:
        log.error("pull: cannot start the export of %s: %s", cfg.source_model, exc)
        registry.prepare_failed(name, f"the export of {cfg.source_model} could not start: {exc}")
        await asyncio.to_thread(_drop_empty_config, cfg)
        return
    if code != 0:
        log.error("pull: exporting %s failed (exit %d, see the export lines above); %s is not served",
                  cfg.source_model, code, name)
        reason = last.removeprefix("ovembed export: error: ") or f"exit {code}"
        registry.prepare_failed(name, f"exporting {cfg.source_model} failed: {reason}")
        await asyncio.to_thread(_drop_empty_config, cfg)
        return
    log.info("pull: %s exported; loading it", name)  # the reloader's poll may load it first
    if reloader is not None:
        await reloader.reload()
    else:  # no reloader (never with a config.json): add the exported entry directly
        entry = next(e for e in read_config(cfg.config_path or Path()) if e.name == name)
        await registry.add(entry)


@contextlib.asynccontextmanager
async def pulling(cfg: ServeConfig, registry: ModelRegistry, reloader: Reloader | None) -> AsyncIterator[None]:
    """Run :func:`pull` in the background while the server runs, when pull mode needs an export."""
    if cfg.source_model is None or not await asyncio.to_thread(needs_export, cfg):
        yield
        return
    name = served_name(cfg)
    registry.prepare(name, model_dir_for(Path(_pulled(cfg)["model_repository_path"]), name), _doing(cfg))
    task = asyncio.create_task(pull(cfg, registry, reloader), name=f"pull {cfg.source_model}")
    try:
        yield
    finally:
        stopped = not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if stopped:
            await asyncio.to_thread(_drop_empty_config, cfg)
