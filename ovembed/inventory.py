"""What a model repository holds: ``ovembed list`` and ``ovembed remove`` (OVMS's ``--list_models`` and
``--remove_from_config``). Reads files only: no OpenVINO, no torch."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from ovembed.errors import ConfigError
from ovembed.graphs import CLASSIFY, EMBEDDINGS, RERANK, SPARSE, TOKEN_EMBED, GraphOptions, read_model_graph
from ovembed.hf_files import declared_max_length, read_json_object
from ovembed.repository import RECORD_FILENAME, ModelEntry, read_config, remove_model
from ovembed.serving.tasks.pooling import resolve_pooling

_TASKS = {c.name: task for c, task in ((EMBEDDINGS, "embeddings"), (RERANK, "rerank"), (SPARSE, "sparse"),
                                         (TOKEN_EMBED, "token_embed"), (CLASSIFY, "classify"))}


@dataclass(frozen=True)
class ModelSummary:
    name: str
    path: str
    state: str  # "ok" or what is wrong on disk
    task: str | None = None  # embeddings | rerank | sparse
    pooling: str | None = None
    weight_format: str | None = None
    dimensions: int | None = None
    max_length: int | None = None
    size_bytes: int | None = None


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def summarize(entry: ModelEntry) -> ModelSummary:
    base = entry.base_path
    if entry.error is not None:
        return ModelSummary(entry.name, str(base), entry.error)
    if not base.is_dir():
        return ModelSummary(entry.name, str(base), "folder missing")
    try:
        graph = read_model_graph(base, entry.graph_path)
    except ConfigError as exc:
        return ModelSummary(entry.name, str(base), exc.message, size_bytes=_size(base))
    model_dir = graph.model_dir(base)
    try:
        record = read_json_object(base / RECORD_FILENAME, strict=True) or read_json_object(
            model_dir / RECORD_FILENAME, strict=True)
    except ConfigError as exc:
        return ModelSummary(entry.name, str(base), exc.message)
    state = "ok" if (model_dir / "openvino_model.xml").is_file() else f"{model_dir / 'openvino_model.xml'} missing"
    pooling = None
    task = _TASKS.get(graph.calculator.name, "embeddings")
    if isinstance(graph, GraphOptions):
        choice = resolve_pooling(graph.pooling, model_dir, record)
        pooling = choice.pooling.value + ("" if choice.origin == "graph.pbtxt" else f" ({choice.origin})")
    dims = record.get("dimensions") or read_json_object(model_dir / "config.json").get("hidden_size")
    max_length = record.get("max_length")
    if not isinstance(max_length, int):
        declared = declared_max_length(model_dir)
        max_length = declared[0] if declared else None
    return ModelSummary(entry.name, str(base), state, task, pooling, record.get("weight_format"),
                        dims if isinstance(dims, int) else None, max_length, _size(model_dir))


def list_models(config_path: Path) -> list[ModelSummary]:
    return [summarize(entry) for entry in read_config(config_path)]


def _human(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def render_table(models: list[ModelSummary]) -> str:
    if not models:
        return "no models in the repository"
    header = ("NAME", "TASK", "POOLING", "WEIGHTS", "DIMS", "MAX LEN", "SIZE", "STATE")
    rows = [(m.name, m.task or "-", m.pooling or "-", m.weight_format or "-", str(m.dimensions or "-"),
             str(m.max_length or "-"), _human(m.size_bytes), m.state) for m in models]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
             for r in [header, *rows]]
    return "\n".join(line.rstrip() for line in lines)


def as_dicts(models: list[ModelSummary]) -> list[dict[str, object]]:
    return [asdict(m) for m in models]


def remove(config_path: Path, repository: Path, name: str, *, delete_files: bool) -> str:
    """Drop ``name`` from config.json; with ``delete_files`` also its folder (only inside ``repository``)."""
    entry = next((e for e in read_config(config_path) if e.name == name), None) if config_path.exists() else None
    if entry is None:
        raise ConfigError(f"model '{name}' is not in {config_path}")
    folder = entry.base_path
    if delete_files:
        repo = Path(repository).resolve()
        if not (folder.is_dir() and repo in folder.resolve().parents):
            raise ConfigError(f"not deleting {folder}: it is not a folder inside the repository {repo}")
        shared = [e.name for e in read_config(config_path) if e.name != name and e.base_path == folder]
        if shared:
            raise ConfigError(f"not deleting {folder}: {', '.join(shared)} use it too")
    remove_model(config_path, name)
    if not delete_files:
        return f"removed {name} from {config_path} (files kept in {folder})"
    shutil.rmtree(folder)
    return f"removed {name} from {config_path} and deleted {folder}"
