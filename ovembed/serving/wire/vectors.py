"""Embedding post-processing shared by every front end: Matryoshka dimensions and base64."""

from __future__ import annotations

import base64

import numpy as np

from ovembed.errors import InvalidInput
from ovembed.serving.engine.interface import ModelInfo


def check_dimensions(dimensions: int | None, info: ModelInfo) -> None:
    """``dimensions`` (already known to be >= 1) must not exceed the model's size."""
    if dimensions is not None and dimensions > info.dimensions:
        raise InvalidInput(
            f"'dimensions' must be at most {info.dimensions} for model '{info.name}', "
            f"got {dimensions}",
            param="dimensions",
        )


def select_dimensions(embeddings: np.ndarray, dimensions: int | None, *,
                      normalize: bool) -> np.ndarray:
    """Keep the first ``dimensions`` columns; re-normalise rows when the model normalises.

    Returns a C-contiguous float32 array (what orjson and ``tobytes`` need).
    """
    out = embeddings
    if dimensions is not None and dimensions < embeddings.shape[1]:
        out = embeddings[:, :dimensions]
        if normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.maximum(norms, np.float32(1e-12))
    return np.ascontiguousarray(out, dtype=np.float32)


def to_base64(vector: np.ndarray) -> str:
    """Standard base64 of little-endian float32 bytes (what the OpenAI SDK decodes)."""
    return base64.b64encode(vector.astype("<f4", copy=False).tobytes()).decode("ascii")
