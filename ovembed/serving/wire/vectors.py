"""Vector encodings shared by the wire formats: base64 and raw bytes of float32, float16 or bfloat16.

vLLM's ``embed_dtype`` and ``endianness``: the vector is rounded to ``embed_dtype`` (bfloat16: to
nearest even, as torch rounds) and its bytes written in ``endianness`` order ("native": the server's,
as vLLM does). The OpenAI SDK decodes base64 as little-endian float32, the default.
"""

from __future__ import annotations

import base64
import sys
from typing import Literal

import numpy as np

EmbedDType = Literal["float32", "float16", "bfloat16"]
EMBED_DTYPES: tuple[EmbedDType, ...] = ("float32", "float16", "bfloat16")
Endianness = Literal["native", "big", "little"]
ENDIANNESS: tuple[Endianness, ...] = ("native", "big", "little")


def to_bfloat16_bits(vectors: np.ndarray) -> np.ndarray:
    """uint16 bfloat16 bit patterns of float32 values, rounded to nearest even (finite values)."""
    bits = np.ascontiguousarray(vectors, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) >> 16).astype(np.uint16)


def to_bytes(vectors: np.ndarray, dtype: EmbedDType = "float32", endianness: Endianness = "little") -> bytes:
    """The bytes of ``vectors`` (any shape, row-major) as ``dtype`` in ``endianness`` order."""
    order = sys.byteorder if endianness == "native" else endianness
    prefix = "<" if order == "little" else ">"
    if dtype == "bfloat16":
        return to_bfloat16_bits(vectors).astype(prefix + "u2", copy=False).tobytes()
    kind = "f4" if dtype == "float32" else "f2"
    return np.ascontiguousarray(vectors).astype(prefix + kind, copy=False).tobytes()


def to_base64(vector: np.ndarray, dtype: EmbedDType = "float32", endianness: Endianness = "little") -> str:
    """Standard base64 of :func:`to_bytes` (default: little-endian float32, what the OpenAI SDK decodes)."""
    return base64.b64encode(to_bytes(vector, dtype, endianness)).decode("ascii")
