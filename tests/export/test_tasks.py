"""The export task table: one ExportTask per Task, the record's common fields written once, each task's
checks before any work (ovembed/export/task.py, tasks.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ovembed.config import ExportConfig, Pooling, Task, WeightFormat
from ovembed.errors import ExportError
from ovembed.export.rerank import RerankExport
from ovembed.export.source import SourceModel
from ovembed.export.sparse import SparseExport
from ovembed.export.task import ExportTask, write_record
from ovembed.export.tasks import EXPORT_TASKS
from ovembed.heads.rerank import RerankHead
from ovembed.repository import RECORD_FILENAME, read_record

COMMON = ["source_model", "source_path", "model_type", "weight_format", "quantization", "max_length",
          "max_length_origin", "versions", "exported_at"]


def _source(folder: Path, architectures: list[str], **config: object) -> SourceModel:
    (folder / "config.json").write_text(json.dumps({"architectures": architectures, **config}))
    return SourceModel(path=folder, model_type="bert", pooling_detected=None, max_length=64,
                       max_length_origin="config.json", hidden_size=32, is_sentence_transformers=False)


def _task(task: Task, source: SourceModel, **cfg: object) -> ExportTask:
    lines: list[str] = []
    export = EXPORT_TASKS[task](ExportConfig(source_model="org/m", task=task, **cfg), source, lines.append)
    export.choices = export.check()
    return export


def test_one_row_per_task() -> None:
    assert set(EXPORT_TASKS) == set(Task)
    for task, kind in EXPORT_TASKS.items():
        assert issubclass(kind, ExportTask) and kind.task is task
    assert [t for t, kind in EXPORT_TASKS.items() if kind.static_quantization] == [Task.EMBEDDINGS]
    assert [t for t, kind in EXPORT_TASKS.items() if kind.ir_refusal] == [Task.SPARSE, Task.TOKEN_EMBED,
                                                                                 Task.BGE_M3]


def test_records_share_their_common_fields(tmp_path: Path) -> None:
    embed = _task(Task.EMBEDDINGS, _source(tmp_path, ["BertModel"]), pooling=Pooling.MEAN, prompt=["q=query: "])
    record = embed.record(WeightFormat.FP32, {"applied": "none"})
    assert "task" not in record  # embeddings records predate tasks: readers default to embeddings
    assert set(COMMON) <= set(record) and record["pooling"] == "MEAN" and record["dimensions"] == 32
    assert record["prompts"] == {"q": "query: "}

    sparse = _task(Task.SPARSE, _source(tmp_path, ["BertForMaskedLM"], vocab_size=99))
    assert isinstance(sparse, SparseExport)
    record = sparse.record(WeightFormat.INT8, {"applied": "int8"})
    assert record["task"] == "sparse" and record["dimensions"] == 99 and set(COMMON) <= set(record)

    rerank = _task(Task.RERANK, _source(tmp_path, ["BertForSequenceClassification"], num_labels=1),
                   max_doc_length=77)
    assert isinstance(rerank, RerankExport)
    rerank.head = RerankHead(sep_token_id=3)
    record = rerank.record(WeightFormat.INT8, {})
    assert record["task"] == "rerank" and record["max_doc_length"] == 77 and record["rerank_head"]["sep_token_id"] == 3
    for export in (embed, sparse, rerank):  # a kept model's record is refreshed with fields it records
        assert set(export.refreshed_fields()) <= set(export.fields())


@pytest.mark.parametrize(("task", "architecture", "message"), [
    (Task.RERANK, "BertModel", "--task rerank needs a cross-encoder"),
    (Task.SPARSE, "BertForSequenceClassification", "--task sparse needs a SPLADE-style masked language model"),
])
def test_tasks_refuse_the_wrong_source_before_any_work(tmp_path: Path, task: Task, architecture: str,
                                                      message: str) -> None:
    with pytest.raises(ExportError, match=message):
        _task(task, _source(tmp_path, [architecture], num_labels=1))


def test_write_record(tmp_path: Path) -> None:
    write_record(tmp_path, {"b": 1, "a": [2]})
    assert (tmp_path / RECORD_FILENAME).read_text() == '{\n  "b": 1,\n  "a": [\n    2\n  ]\n}\n'
    assert read_record(tmp_path) == {"b": 1, "a": [2]}
