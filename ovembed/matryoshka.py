"""Whether a model was trained for shorter vectors (Matryoshka), so ``dimensions`` may cut them.

Cutting a vector that was not trained for it keeps the first N numbers of a representation that
spreads its meaning over all of them: the result is a worse vector, with no error. vLLM (and OpenAI
for ada-002) refuse ``dimensions`` on such models; so does ovembed.

Recorded at export in ``ovembed_model.json`` as ``matryoshka_dimensions``: absent or null, the model
was not trained for it; ``[]``, any size up to the model's; ``[64, 128, ...]``, only those sizes. The
export takes it from the model's config.json (``matryoshka_dimensions``, or ``is_matryoshka``, the keys
vLLM reads), else from the model card's tags (``matryoshka`` or sentence-transformers'
``loss:MatryoshkaLoss``). For a model whose files say nothing, add the key to its ovembed_model.json
(read when the model loads). ``ovembed serve --allow_any_dimensions`` lets every model cut to any size
(the behaviour before this record existed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ovembed.errors import ConfigError, InvalidInput

RECORD_KEY = "matryoshka_dimensions"
ANY: tuple[int, ...] = ()  # any size up to the model's


def from_record(record: dict[str, Any]) -> tuple[int, ...] | None:
    """What ``ovembed_model.json`` declares (None: not trained for shorter vectors)."""
    value = record.get(RECORD_KEY)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                              for v in value):
        raise ConfigError(f"ovembed_model.json: '{RECORD_KEY}' must be a list of positive sizes ([] for any)")
    return tuple(sorted(set(value)))


def from_source(folder: Path) -> tuple[int, ...] | None:
    """What the source model's own files say (config.json, then the model card's tags)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    if isinstance(config, dict):
        dims = config.get("matryoshka_dimensions")
        if isinstance(dims, list) and dims and all(isinstance(d, int) and d > 0 for d in dims):
            return tuple(sorted(set(dims)))
        if config.get("is_matryoshka") is True:
            return ANY
    try:
        card = (folder / "README.md").read_text(encoding="utf-8")
    except OSError:
        return None
    header = card.split("---", 2)[1] if card.startswith("---") and card.count("---") >= 2 else ""
    if re.search(r"^\s*-\s*(matryoshka|loss:MatryoshkaLoss|loss:Matryoshka2dLoss)\s*$", header,
                 re.MULTILINE | re.IGNORECASE):
        return ANY
    return None


def declared(source: Path) -> list[int] | None:
    """What an export records (``matryoshka_dimensions`` in ovembed_model.json)."""
    sizes = from_source(source)
    return None if sizes is None else list(sizes)


def check(requested: int | None, allowed: tuple[int, ...] | None, *, model: str, size: int) -> None:
    """``dimensions`` (already >= 1) against what the model allows; a 400 naming the field otherwise."""
    if requested is None:
        return
    if requested > size:
        raise InvalidInput(f"'dimensions' must be at most {size} for model '{model}', got {requested}",
                           param="dimensions")
    if requested == size:
        return
    if allowed is None:
        raise InvalidInput(
            f"The model '{model}' was not trained for shorter vectors (no Matryoshka training recorded), so "
            f"'dimensions' {requested} would return a worse vector: leave 'dimensions' out, or if it was trained "
            "for them list the sizes in its ovembed_model.json (matryoshka_dimensions) or serve with "
            "--allow_any_dimensions",
            param="dimensions")
    if allowed and requested not in allowed:
        raise InvalidInput(f"The model '{model}' was trained for 'dimensions' {', '.join(map(str, allowed))} "
                           f"only, got {requested}", param="dimensions")
