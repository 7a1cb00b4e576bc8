"""The model repository: config.json in OVMS's shape and the per-model folders it points at.

``{"model_config_list": [{"config": {"name": "<name>", "base_path": "<relative path>"}}]}``;
older OVMS repositories list graphs under ``mediapipe_config_list`` and are read as well.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovembed.errors import ConfigError
from ovembed.hf_files import read_json_object
from ovembed.layout import GRAPH_FILENAME, RECORD_FILENAME


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; use the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_readable_dir(path: Path) -> None:
    """Give a mkdtemp folder (0700) the permissions a normal folder would have."""
    os.chmod(path, 0o777 & ~_umask())


# base_path schemes OVMS reads (cloud storage) that ovembed cannot serve from.
_REMOTE_SCHEMES = ("s3://", "gs://", "az://", "azfs://", "http://", "https://")


@dataclass(frozen=True)
class ModelEntry:
    """One served model: its name, its folder (absolute) and its graph file, relative to the folder."""

    name: str
    base_path: Path
    graph_path: str = GRAPH_FILENAME  # config.json "graph_path" (OVMS: relative to base_path)
    error: str | None = None  # an entry OVMS accepts but ovembed cannot serve: that model fails with this
    # ovembed's own key (OVMS refuses config.json with it): unload after this many idle seconds, 0 never,
    # None: --idle_unload_seconds
    idle_unload_seconds: float | None = None

    @property
    def graph_file(self) -> Path:
        return self.base_path / self.graph_path


def _load(config_path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{config_path} not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{config_path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {config_path}: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{config_path}: the top level must be a JSON object")
    return data


def _entry_fields(item: Any, where: str) -> tuple[str, str]:
    conf = item.get("config", item) if isinstance(item, dict) else None
    if not isinstance(conf, dict):
        raise ConfigError(f"{where}: each entry must be an object")
    name, base = conf.get("name"), conf.get("base_path")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: an entry has no name")
    if not isinstance(base, str) or not base:
        base = name  # OVMS's default: the folder named like the model
    return name, base


def _optional_str(conf: dict[str, Any], key: str, where: str) -> str | None:
    value = conf.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty string")
    return value


def _optional_seconds(conf: dict[str, Any], key: str, where: str) -> float | None:
    value = conf.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: {key} must be a number of seconds, 0 or more (0: never)")
    return float(value)


def _entry(item: Any, root: Path, where: str) -> ModelEntry:
    """One config.json entry as OVMS reads it: base_path (relative to config.json), graph_path and subconfig
    (relative to base_path)."""
    name, base = _entry_fields(item, where)
    conf: dict[str, Any] = item.get("config", item)
    where = f"{where} '{name}'"
    graph = _optional_str(conf, "graph_path", where) or GRAPH_FILENAME
    subconfig = _optional_str(conf, "subconfig", where)
    idle = _optional_seconds(conf, "idle_unload_seconds", where)
    if base.lower().startswith(_REMOTE_SCHEMES):
        scheme = base.split("://", 1)[0]
        return ModelEntry(name, Path(base), graph, idle_unload_seconds=idle, error=(
            f"model '{name}': base_path {base} is in {scheme} storage, which OVMS can read but ovembed cannot "
            "serve from; copy the model folder to local disk (or a mounted volume) and point base_path there"))
    path = Path(base).expanduser()
    base_path = path if path.is_absolute() else (root / path).resolve()
    error = None
    if subconfig is not None:  # OVMS loads the models a graph uses from it; an embeddings graph loads its own
        sub = Path(subconfig) if Path(subconfig).is_absolute() else base_path / subconfig
        if not sub.is_file():
            error = f"model '{name}': subconfig {sub} not found"
    return ModelEntry(name, base_path, graph, error, idle)


def read_config(config_path: Path) -> list[ModelEntry]:
    """Every model listed in config.json (``model_config_list`` and ``mediapipe_config_list``), with paths
    resolved as OVMS resolves them. Several entries may share one base_path with different graph_path."""
    config_path = Path(config_path)
    data = _load(config_path)
    root = config_path.parent.resolve()
    entries: dict[str, ModelEntry] = {}
    for key in ("model_config_list", "mediapipe_config_list"):
        items = data.get(key, [])
        if not isinstance(items, list):
            raise ConfigError(f"{config_path}: {key} must be a list")
        for item in items:
            entry = _entry(item, root, f"{config_path}: {key}")
            if entry.name in entries:
                raise ConfigError(f"{config_path}: model '{entry.name}' is listed twice")
            entries[entry.name] = entry
    return list(entries.values())


def upsert_model(config_path: Path, name: str, model_dir: Path) -> None:
    """Add or update ``name`` in config.json, keeping every other entry; atomic replace.

    An entry of the same name under the legacy ``mediapipe_config_list`` moves to
    ``model_config_list``; other legacy entries are kept as they are.
    """
    config_path = Path(config_path)
    data: dict[str, Any] = _load(config_path) if config_path.exists() else {}
    base = os.path.relpath(Path(model_dir).resolve(), config_path.parent.resolve())
    base = Path(base).as_posix()
    models = data.get("model_config_list", [])
    if not isinstance(models, list):
        raise ConfigError(f"{config_path}: model_config_list must be a list")
    legacy = data.get("mediapipe_config_list")
    if isinstance(legacy, list):
        kept = [e for e in legacy if not (isinstance(e, dict) and e.get("name") == name)]
        if kept:
            data["mediapipe_config_list"] = kept
        else:
            del data["mediapipe_config_list"]
    for item in models:
        conf = item.get("config") if isinstance(item, dict) else None
        if isinstance(conf, dict) and conf.get("name") == name:
            conf["base_path"] = base
            break
    else:
        models.append({"config": {"name": name, "base_path": base}})
    data["model_config_list"] = models
    atomic_write_text(config_path, json.dumps(data, indent=4) + "\n")


def remove_model(config_path: Path, name: str) -> bool:
    """Drop ``name`` from config.json (both lists). Returns whether it was there."""
    config_path = Path(config_path)
    if not config_path.exists():
        return False
    data = _load(config_path)
    found = False
    for key in ("model_config_list", "mediapipe_config_list"):
        items = data.get(key)
        if not isinstance(items, list):
            continue
        kept = []
        for item in items:
            if _entry_fields(item, str(config_path))[0] == name:
                found = True
            else:
                kept.append(item)
        data[key] = kept
    if found:
        atomic_write_text(config_path, json.dumps(data, indent=4) + "\n")
    return found


def model_dir_for(repository: Path, name: str) -> Path:
    """Folder of ``name`` inside the repository; '/' in names makes nested folders."""
    parts = [p for p in name.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ConfigError(f"invalid model name {name!r}")
    return Path(repository).joinpath(*parts)


def read_record(model_dir: Path) -> dict[str, Any]:
    """What the exporter recorded about a model folder ({} for folders ovembed did not write)."""
    return read_json_object(Path(model_dir) / RECORD_FILENAME, strict=True)
