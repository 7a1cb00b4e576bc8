"""ovembed: export Hugging Face embedding models to OpenVINO and serve them.

``ovembed.load("models/minilm").embed(["hello"])`` runs a model in process on the serving engine
(:mod:`ovembed.offline.model`); importing ovembed itself loads nothing heavy.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ovembed.offline.model import Model

__version__ = "0.1.0"
__all__ = ["__version__", "load"]


def load(model: str | os.PathLike[str], *, config_path: str | os.PathLike[str] | None = None,
         **options: Any) -> Model:
    """An exported model folder (or the model named ``model`` in ``config_path``'s repository), loaded
    in process on the serving engine: ``embed``, ``rerank`` or ``embed_sparse`` per its task. Use it as
    a context manager (or call ``close()``) to free it. ``options``: ServeConfig fields
    (``target_device``, ``max_batch_tokens``...)."""
    from ovembed.offline.model import load as _load

    return _load(model, config_path=config_path, **options)
