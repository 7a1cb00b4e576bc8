"""The private descriptor pools the generated graph message modules register into.

Not protobuf's process-wide default pool: a real ``mediapipe`` package in the same process defines the same
``mediapipe.*`` names there. ``POOL`` holds MediaPipe's CalculatorGraphConfig and OVMS's current calculator
options; ``legacy_pool()`` holds the same framework files with OVMS 2025.2's EmbeddingsCalculatorOVOptions
(``mean_pooling``), whose full name is the same as today's.
"""

from __future__ import annotations

from google.protobuf import any_pb2
from google.protobuf.descriptor_pool import DescriptorPool

POOL = DescriptorPool()
POOL.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)

_legacy: DescriptorPool | None = None


def legacy_pool() -> DescriptorPool:
    """A pool with google/protobuf/any.proto and the MediaPipe framework files, built once."""
    global _legacy
    if _legacy is None:
        from . import (
            calculator_options_pb2,
            calculator_pb2,
            mediapipe_options_pb2,
            packet_factory_pb2,
            packet_generator_pb2,
            status_handler_pb2,
            stream_handler_pb2,
        )

        pool = DescriptorPool()
        pool.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
        for module in (mediapipe_options_pb2, calculator_options_pb2, packet_factory_pb2, packet_generator_pb2,
                       status_handler_pb2, stream_handler_pb2, calculator_pb2):
            pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
        _legacy = pool
    return _legacy
