"""The one table of export tasks: a new task adds its module in this package and one row here.

A task may have variants for kinds of source that export differently but serve the same way (the same
API, graph and servable): a decoder reranker is ``--task rerank`` of a causal LM.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ovembed.config import Task
from ovembed.export.bge_m3 import BgeM3Export
from ovembed.export.classify import ClassifyExport
from ovembed.export.decoder_rerank import DecoderRerankExport, is_decoder_reranker
from ovembed.export.embeddings import EmbeddingsExport
from ovembed.export.rerank import RerankExport
from ovembed.export.sparse import SparseExport
from ovembed.export.task import ExportTask
from ovembed.export.token_embed import TokenEmbedExport

EXPORT_TASKS: dict[Task, type[ExportTask]] = {
    Task.EMBEDDINGS: EmbeddingsExport,
    Task.RERANK: RerankExport,
    Task.SPARSE: SparseExport,
    Task.TOKEN_EMBED: TokenEmbedExport,
    Task.CLASSIFY: ClassifyExport,
    Task.BGE_M3: BgeM3Export,
}

# Variants: (does this source folder call for it, its export), tried in order before the task's row.
EXPORT_VARIANTS: dict[Task, tuple[tuple[Callable[[Path], bool], type[ExportTask]], ...]] = {
    Task.RERANK: ((is_decoder_reranker, DecoderRerankExport),),
}


def export_task_for(task: Task, source_path: Path) -> type[ExportTask]:
    """The export of ``task`` for the source in ``source_path``: a variant that fits it, else the task's row."""
    return next((kind for fits, kind in EXPORT_VARIANTS.get(task, ()) if fits(source_path)), EXPORT_TASKS[task])
