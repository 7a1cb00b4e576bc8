"""Compact embedding types for vector databases: ``int8``, ``uint8``, ``binary``, ``ubinary``.

The scaling (documented in docs/serving.md):

- ``int8``: per vector, symmetric: ``q = round(127 * x / max|x|)``, in ``[-127, 127]``. The
  largest component maps to +-127, so no value clips and every vector uses the whole range.
  Decode with ``x ~ q / 127`` (the direction; multiply by ``max|x|`` for the scale). Cosine
  similarity on the int8 vectors approximates the float one; each component is off by at
  most ``0.5 / 127`` of the vector's largest component.
- ``uint8``: ``int8 + 128``, in ``[1, 255]``; decode with ``(u - 128) / 127``.
- ``ubinary``: one bit per dimension, ``1`` where ``x > 0``, packed 8 to a byte with the first
  dimension in the most significant bit (numpy ``packbits``); ``ceil(dims / 8)`` values in
  ``[0, 255]``. Compare with the Hamming distance.
- ``binary``: the same bytes as signed values, ``ubinary - 128``, in ``[-128, 127]`` (what
  Cohere and sentence-transformers call ``binary``).

Pure numpy: used by every front end that offers compact output.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

CompactType = Literal["int8", "uint8", "binary", "ubinary"]
COMPACT_TYPES: tuple[CompactType, ...] = ("int8", "uint8", "binary", "ubinary")


def to_int8(embeddings: np.ndarray) -> np.ndarray:
    """``[n, d]`` float -> ``[n, d]`` int8, per-vector symmetric scaling (all-zero rows stay 0)."""
    x = np.asarray(embeddings, dtype=np.float64)  # float64: tiny peaks must not overflow the scale
    peak = np.max(np.abs(x), axis=1, keepdims=True)
    return np.rint(x / np.where(peak > 0, peak, 1.0) * 127.0).astype(np.int8)


def to_uint8(embeddings: np.ndarray) -> np.ndarray:
    """``to_int8 + 128`` as uint8."""
    return (to_int8(embeddings).astype(np.int16) + 128).astype(np.uint8)


def to_ubinary(embeddings: np.ndarray) -> np.ndarray:
    """``[n, d]`` -> ``[n, ceil(d / 8)]`` uint8: sign bits, first dimension in the high bit."""
    return np.packbits(np.asarray(embeddings) > 0, axis=1)


def to_binary(embeddings: np.ndarray) -> np.ndarray:
    """``to_ubinary - 128`` as int8."""
    return (to_ubinary(embeddings).astype(np.int16) - 128).astype(np.int8)


_ENCODERS = {"int8": to_int8, "uint8": to_uint8, "binary": to_binary, "ubinary": to_ubinary}


def compact(embeddings: np.ndarray, kind: CompactType) -> np.ndarray:
    """The embeddings as ``kind`` (an integer array; orjson writes it as lists of ints)."""
    return _ENCODERS[kind](embeddings)


def decode(values: np.ndarray, kind: CompactType, dimensions: int) -> np.ndarray:
    """What a client recovers: the direction for int8/uint8 (``q / 127``), +-1 per dimension
    for the binary types. The inverse of the documented scaling, for tests and clients."""
    v = np.asarray(values)
    if kind == "int8":
        return v.astype(np.float32) / 127.0
    if kind == "uint8":
        return (v.astype(np.float32) - 128.0) / 127.0
    raw = v.astype(np.int16) + 128 if kind == "binary" else v
    bits = np.unpackbits(raw.astype(np.uint8), axis=1)[:, :dimensions]
    return bits.astype(np.float32) * 2.0 - 1.0
