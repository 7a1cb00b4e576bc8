"""The BgeM3EmbeddingsCalculatorOV node of a graph.pbtxt (ovembed's own; OVMS has none): a model with BGE-M3's three
heads (dense, sparse, multi-vector) in one IR. Its options are the token calculator's message
(``TokenEmbeddingsCalculatorOVOptions``: ``models_path``, ``target_device``, ``plugin_config``, ``truncate``); the
calculator name is what selects the task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ovembed.graphs.pbtxt import BGE_M3, Calculator, GraphNode
from ovembed.graphs.token_embed import TokenGraphOptions, token_options, write_token_graph


@dataclass(frozen=True)
class BgeM3GraphOptions(TokenGraphOptions):
    """Serving options of one BGE-M3-style model."""

    calculator: ClassVar[Calculator] = BGE_M3


def bge_m3_options(node: GraphNode) -> TokenGraphOptions:
    return token_options(node, BgeM3GraphOptions)


def write_bge_m3_graph(model_dir: Path, options: BgeM3GraphOptions) -> Path:
    return write_token_graph(model_dir, options)
