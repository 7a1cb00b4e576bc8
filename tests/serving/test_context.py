"""Request context helpers shared by REST and gRPC."""

from __future__ import annotations

from ovembed.serving.context import timing_values
from ovembed.serving.engine.interface import Timings


def test_timing_values_are_fractional_milliseconds() -> None:
    values = timing_values(Timings(tokenization=0.0000412, queue=0.003, inference=0.0012345), 0.1)
    assert values == {"x-tokenization-time": "0.041", "x-queue-time": "3",
                      "x-inference-time": "1.234", "x-total-time": "100"}
    assert timing_values(Timings(0.0, 0.0, 0.0), 0.0)["x-total-time"] == "0"
