"""What the source model is: where its files are, its pooling, its maximum input length."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovembed.config import Pooling
from ovembed.errors import ExportError

# Model types whose position table reserves padding_idx + 1 slots (514 rows -> 512 usable tokens).
_OFFSET_POSITION_TYPES = {
    "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "mpnet", "longformer", "data2vec-text",
}
_DECODER_TYPES_HINT = ("qwen", "llama", "mistral", "gemma", "phi")


@dataclass(frozen=True)
class SourceModel:
    path: Path  # local folder with the HF files
    model_type: str
    pooling_detected: Pooling | None  # from sentence-transformers' Pooling config, if any
    max_length: int
    max_length_origin: str  # which file the limit came from
    hidden_size: int | None
    is_sentence_transformers: bool

    @property
    def is_decoder(self) -> bool:
        return any(self.model_type.startswith(p) for p in _DECODER_TYPES_HINT)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def resolve_source_path(source: str) -> Path:
    """A local folder, or a Hugging Face id already in the local cache (we never download)."""
    local = Path(source).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ExportError(f"{local} is a folder but has no config.json: not a Hugging Face model folder")
        return local.resolve()
    if local.exists():
        raise ExportError(f"{local} is not a folder")
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    try:
        return Path(snapshot_download(source, local_files_only=True))
    except Exception:
        cache = os.environ.get("HF_HUB_CACHE", HF_HUB_CACHE)
        raise ExportError(
            f"source model '{source}' is neither a local folder nor in the local Hugging Face cache "
            f"({cache}); downloads are not attempted"
        ) from None


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
        conf = _read_json(pool_dir / "config.json")
        if conf is None:
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


def _max_length(root: Path, config: dict[str, Any]) -> tuple[int, str]:
    st = _read_json(root / "sentence_bert_config.json")
    if st and isinstance(st.get("max_seq_length"), int) and st["max_seq_length"] > 0:
        return int(st["max_seq_length"]), "sentence_bert_config.json max_seq_length"
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        if config.get("model_type") in _OFFSET_POSITION_TYPES:
            pad = config.get("pad_token_id")
            usable = positions - (int(pad) + 1 if isinstance(pad, int) else 2)
            return usable, "config.json max_position_embeddings minus the padding offset"
        return positions, "config.json max_position_embeddings"
    tok = _read_json(root / "tokenizer_config.json") or {}
    limit = tok.get("model_max_length")
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit, "tokenizer_config.json model_max_length"
    raise ExportError(f"cannot tell the maximum input length of {root}: no max_seq_length or max_position_embeddings")


def inspect_source(source: str) -> SourceModel:
    root = resolve_source_path(source)
    config = _read_json(root / "config.json")
    if config is None:
        raise ExportError(f"{root / 'config.json'} is missing or not valid JSON")
    pooling, is_st = _pooling_from_sentence_transformers(root)
    max_length, origin = _max_length(root, config)
    hidden = config.get("hidden_size")
    return SourceModel(
        path=root,
        model_type=str(config.get("model_type", "")),
        pooling_detected=pooling,
        max_length=max_length,
        max_length_origin=origin,
        hidden_size=int(hidden) if isinstance(hidden, int) else None,
        is_sentence_transformers=is_st,
    )
