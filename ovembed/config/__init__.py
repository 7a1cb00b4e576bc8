"""Typed configuration, defined once.

Each command's options are a frozen dataclass. Field metadata carries the help text and
choices; :mod:`ovembed.cli` derives the flags (``--flag_name`` and ``--flag-name``) and the
``OVEMBED_FLAG_NAME`` environment variables from these fields, so nothing is listed twice.
One module per command (``export`` also holds list/remove/compare); ``base`` holds the enums and
the field machinery. Import from ``ovembed.config``.
"""

from ovembed.config.base import (
                                 EncodingFormat,
                                 Executors,
                                 LogFormat,
                                 LogLevel,
                                 Pooling,
                                 Quantization,
                                 Scenario,
                                 Task,
                                 WeightFormat,
                                 _Checked,
                                 _require,
                                 option,
)
from ovembed.config.benchmark import BenchmarkConfig
from ovembed.config.export import CompareConfig, ExportConfig, ListConfig, RemoveConfig
from ovembed.config.serve import INFERENCE_PRECISIONS, ServeConfig

__all__ = ["INFERENCE_PRECISIONS", "BenchmarkConfig", "CompareConfig", "EncodingFormat", "Executors", "ExportConfig",
           "ListConfig", "LogFormat", "LogLevel", "Pooling", "Quantization", "RemoveConfig", "Scenario",
           "ServeConfig", "Task", "WeightFormat", "_Checked", "_require", "option"]
