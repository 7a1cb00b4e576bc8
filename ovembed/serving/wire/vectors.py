"""Vector encodings shared by the wire formats: base64 of float32."""

from __future__ import annotations

import base64

import numpy as np


def to_base64(vector: np.ndarray) -> str:
    """Standard base64 of little-endian float32 bytes (what the OpenAI SDK decodes)."""
    return base64.b64encode(vector.astype("<f4", copy=False).tobytes()).decode("ascii")
