"""Which pooling a served model gets, decided as OVMS 2026.3 decides it, and said out loud when unsure.

The graph's ``pooling`` wins; a graph without one (OVMS 2026.3's export writes none) takes the model folder's
``1_Pooling/config.json``, else what ovembed's export recorded (``ovembed_model.json``), else CLS with a warning.
Whenever the model folder contradicts (or cannot confirm) the pooling served, the choice carries a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovembed.config import Pooling
from ovembed.hf_files import declared_pooling
from ovembed.layout import GRAPH_FILENAME, POOLING_CONFIG, RECORD_FILENAME


@dataclass(frozen=True)
class PoolingChoice:
    pooling: Pooling
    origin: str  # where it came from, for the log
    warning: str | None = None  # shown in the log and in /v1/config


def resolve_pooling(graph_pooling: Pooling | None, model_dir: Path, record: dict[str, Any]) -> PoolingChoice:
    """The pooling to serve ``model_dir`` with (``record``: its ovembed_model.json, {} when absent)."""
    declared, problem = declared_pooling(model_dir)
    folder = Pooling(declared) if declared is not None else None
    if graph_pooling is not None:
        if folder is not None and folder is not graph_pooling:
            return PoolingChoice(graph_pooling, GRAPH_FILENAME,
                                 f"{GRAPH_FILENAME} says pooling {graph_pooling.value} but the model's "
                                 f"{POOLING_CONFIG} says {folder.value}; serving {graph_pooling.value} as the graph "
                                 "says")
        return PoolingChoice(graph_pooling, GRAPH_FILENAME)
    if folder is not None:
        return PoolingChoice(folder, POOLING_CONFIG)
    recorded = record.get("pooling")
    if isinstance(recorded, str) and recorded.upper() in Pooling.__members__:
        warning = None if problem is None else f"{problem}; serving {recorded.upper()} from {RECORD_FILENAME}"
        return PoolingChoice(Pooling[recorded.upper()], RECORD_FILENAME, warning)
    reason = problem or f"no {POOLING_CONFIG} or {RECORD_FILENAME} says"
    return PoolingChoice(Pooling.CLS, "default",
                         f"{GRAPH_FILENAME} sets no pooling and the model folder does not tell ({reason}); "
                         "serving CLS pooling")
