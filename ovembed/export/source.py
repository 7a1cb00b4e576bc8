"""What the source model is: where its files are, its pooling, its maximum input length."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ovembed.config import Pooling
from ovembed.errors import ExportError
from ovembed.export.hub import HubSource
from ovembed.hf_files import declared_max_length, read_json_object


@dataclass(frozen=True)
class SourceModel:
    path: Path  # local folder with the HF files
    model_type: str
    pooling_detected: Pooling | None  # from sentence-transformers' Pooling config, if any
    max_length: int
    max_length_origin: str  # which file the limit came from
    hidden_size: int | None
    is_sentence_transformers: bool
    hub: HubSource | None = None  # where it came from, when it came from the Hub


def resolve_source_path(source: str, *, revision: str | None = None, token: str | None = None,
                        quiet: bool = False) -> tuple[Path, HubSource | None]:
    """A local folder as it is; anything else is a Hugging Face Hub id, fetched (or found in the cache)."""
    local = Path(source).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ExportError(f"{local} is a folder but has no config.json: not a Hugging Face model folder")
        if revision:
            raise ExportError(f"--revision applies to Hugging Face Hub ids, and {local} is a local folder")
        return local.resolve(), None
    if local.exists():
        raise ExportError(f"{local} is not a folder")
    from ovembed.export.hub import fetch

    hub = fetch(source, revision=revision, token=token, quiet=quiet)
    return hub.path, hub


_POOLING_MODES = {"cls": Pooling.CLS, "mean": Pooling.MEAN, "lasttoken": Pooling.LAST}


def _pooling_from_sentence_transformers(root: Path) -> tuple[Pooling | None, bool]:
    """(pooling from the Pooling module's config, whether this is a sentence-transformers folder)."""
    try:
        modules = json.loads((root / "modules.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        modules = None
    is_st = isinstance(modules, list)
    pool_dirs = [
        root / str(entry.get("path", ""))
        for entry in (modules if isinstance(modules, list) else [])
        if isinstance(entry, dict) and str(entry.get("type", "")).endswith("Pooling")
    ]
    pool_dirs.append(root / "1_Pooling")
    for pool_dir in pool_dirs:
        conf = read_json_object(pool_dir / "config.json")
        if not conf:
            continue
        if conf.get("pooling_mode_cls_token"):
            return Pooling.CLS, is_st
        if conf.get("pooling_mode_lasttoken"):
            return Pooling.LAST, is_st
        if conf.get("pooling_mode_mean_tokens"):
            return Pooling.MEAN, is_st
        mode = _POOLING_MODES.get(str(conf.get("pooling_mode", "")).lower())
        if mode is not None:
            return mode, is_st
    return None, is_st


def _max_length(root: Path) -> tuple[int, str]:
    declared = declared_max_length(root)
    if declared is None:
        raise ExportError(f"cannot tell the maximum input length of {root}: "
                          "no max_seq_length, max_position_embeddings or model_max_length")
    return declared


def inspect_source(source: str, *, revision: str | None = None, token: str | None = None,
                   quiet: bool = False) -> SourceModel:
    root, hub = resolve_source_path(source, revision=revision, token=token, quiet=quiet)
    config = read_json_object(root / "config.json")
    if not config:
        raise ExportError(f"{root / 'config.json'} is missing or not valid JSON")
    pooling, is_st = _pooling_from_sentence_transformers(root)
    max_length, origin = _max_length(root)
    hidden = config.get("hidden_size")
    return SourceModel(
        path=root,
        model_type=str(config.get("model_type", "")),
        pooling_detected=pooling,
        max_length=max_length,
        max_length_origin=origin,
        hidden_size=int(hidden) if isinstance(hidden, int) else None,
        is_sentence_transformers=is_st,
        hub=hub,
    )
