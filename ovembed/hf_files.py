"""What a Hugging Face model folder declares about itself, read from its small JSON files.

Shared by the exporter (which records it) and the server (which falls back on it for folders
ovembed did not export). Standard library only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Model types whose position table reserves padding_idx + 1 rows (514 rows -> 512 usable tokens).
OFFSET_POSITION_TYPES = frozenset({
    "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "mpnet", "longformer", "data2vec-text",
})


def read_json_object(path: Path, *, strict: bool = False) -> dict[str, Any]:
    """The JSON object in ``path``; {} when the file is missing or not an object.

    An unreadable or invalid file is {} too, or a ``ConfigError`` naming it when ``strict``.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        if strict:
            from ovembed.errors import ConfigError

            raise ConfigError(f"{path} is unreadable: {exc}") from None
        return {}
    return data if isinstance(data, dict) else {}


def declared_max_length(folder: Path) -> tuple[int, str] | None:
    """The model author's input limit and where it came from, or None when nothing says.

    ``max_seq_length`` in sentence_bert_config.json; else ``max_position_embeddings`` (minus the
    padding offset for RoBERTa-like models), capped by a sane tokenizer ``model_max_length``; else
    that tokenizer limit alone.
    """
    folder = Path(folder)
    value = read_json_object(folder / "sentence_bert_config.json").get("max_seq_length")
    if isinstance(value, int) and value > 0:
        return value, "sentence_bert_config.json max_seq_length"
    config = read_json_object(folder / "config.json")
    tok_max = read_json_object(folder / "tokenizer_config.json").get("model_max_length")
    sane_tok = int(tok_max) if isinstance(tok_max, (int, float)) and 0 < tok_max < 1_000_000 else None
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        origin = "config.json max_position_embeddings"
        if config.get("model_type") in OFFSET_POSITION_TYPES:
            pad = config.get("pad_token_id")
            positions -= int(pad) + 1 if isinstance(pad, int) else 2
            origin += " minus the padding offset"
        if sane_tok is not None and sane_tok < positions:
            return sane_tok, "tokenizer_config.json model_max_length"
        return positions, origin
    if sane_tok is not None:
        return sane_tok, "tokenizer_config.json model_max_length"
    return None


# sentence-transformers' Pooling flags for the poolings an in-graph head can compute, and the flags it cannot.
_POOLING_FLAGS = {"pooling_mode_cls_token": "CLS", "pooling_mode_mean_tokens": "MEAN", "pooling_mode_lasttoken": "LAST"}
_UNSUPPORTED_POOLING_FLAGS = ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                              "pooling_mode_weightedmean_tokens")


def declared_pooling(folder: Path) -> tuple[str | None, str | None]:
    """The pooling ``folder/1_Pooling/config.json`` declares, read exactly as OVMS 2026.3 reads it.

    Returns ("CLS" | "MEAN" | "LAST", None); (None, None) when there is no such file; (None, the problem)
    when it is unreadable, asks for a mode no in-graph head computes (max, mean_sqrt_len, weightedmean)
    or sets more than one mode.
    """
    path = Path(folder) / "1_Pooling" / "config.json"
    if not path.is_file():
        return None, None
    conf = read_json_object(path)
    if not conf:
        return None, f"{path} is not a JSON object"
    flags = {key for key, value in conf.items() if value is True}
    unsupported = [key for key in _UNSUPPORTED_POOLING_FLAGS if key in flags]
    if unsupported:
        return None, f"{path} asks for {unsupported[0]}, which is not CLS, MEAN or LAST pooling"
    found = [name for key, name in _POOLING_FLAGS.items() if key in flags]
    if len(found) > 1:
        return None, f"{path} sets more than one pooling mode ({', '.join(found)})"
    if not found:
        return None, f"{path} sets no pooling mode"
    return found[0], None
