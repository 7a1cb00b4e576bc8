"""The one table of export tasks: a new task adds its module in this package and one row here."""

from __future__ import annotations

from ovembed.config import Task
from ovembed.export.classify import ClassifyExport
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
}
