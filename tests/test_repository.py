from __future__ import annotations

import json
from pathlib import Path

import pytest

from ovembed.errors import ConfigError
from ovembed.repository import ModelEntry, model_dir_for, read_config, remove_model, upsert_model


def test_upsert_adds_updates_and_keeps_others(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    upsert_model(config, "a", tmp_path / "a")
    upsert_model(config, "org/b", tmp_path / "org" / "b")
    upsert_model(config, "a", tmp_path / "elsewhere" / "a")
    data = json.loads(config.read_text())
    assert data == {"model_config_list": [
        {"config": {"name": "a", "base_path": "elsewhere/a"}},
        {"config": {"name": "org/b", "base_path": "org/b"}},
    ]}
    assert read_config(config) == [ModelEntry("a", (tmp_path / "elsewhere" / "a").resolve()),
                                   ModelEntry("org/b", (tmp_path / "org" / "b").resolve())]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_legacy_mediapipe_list_is_migrated_or_kept(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "model_config_list": [],
        "mediapipe_config_list": [{"name": "old", "base_path": "old"}, {"name": "mine", "base_path": "x"}],
        "monitoring": {"metrics": {"enable": True}},
    }))
    upsert_model(config, "mine", tmp_path / "mine")
    data = json.loads(config.read_text())
    assert data["mediapipe_config_list"] == [{"name": "old", "base_path": "old"}]
    assert data["model_config_list"] == [{"config": {"name": "mine", "base_path": "mine"}}]
    assert data["monitoring"] == {"metrics": {"enable": True}}
    assert {e.name for e in read_config(config)} == {"old", "mine"}


def test_config_relative_to_its_folder_and_absolute_paths(tmp_path: Path) -> None:
    config = tmp_path / "cfg" / "config.json"
    upsert_model(config, "m", tmp_path / "models" / "m")
    assert json.loads(config.read_text())["model_config_list"][0]["config"]["base_path"] == "../models/m"
    config.write_text(json.dumps({"model_config_list": [{"config": {"name": "abs", "base_path": "/opt/m"}}]}))
    assert read_config(config) == [ModelEntry("abs", Path("/opt/m"))]


def test_remove_model(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    upsert_model(config, "a", tmp_path / "a")
    upsert_model(config, "b", tmp_path / "b")
    assert remove_model(config, "a") and not remove_model(config, "a")
    assert [e.name for e in read_config(config)] == ["b"]


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ('{"model_config_list": {}}', "must be a list"),
    ('{"model_config_list": [{"config": {"base_path": "x"}}]}', "has no name"),
    ('{"model_config_list": [{"config": {"name": "a"}}, {"config": {"name": "a"}}]}', "listed twice"),
    ('{"model_config_list": [{"config": {"name": "a", "idle_unload_seconds": -1}}]}',
     "'a': idle_unload_seconds must be a number of seconds, 0 or more"),
    ('{"model_config_list": [{"config": {"name": "a", "idle_unload_seconds": "5m"}}]}',
     "idle_unload_seconds must be a number of seconds"),
])
def test_broken_config(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "config.json"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_config(config)


def test_model_dir_for(tmp_path: Path) -> None:
    assert model_dir_for(tmp_path, "BAAI/bge-large-en-v1.5") == tmp_path / "BAAI" / "bge-large-en-v1.5"
    for bad in ("", "/", "../x", "a/../../b"):
        with pytest.raises(ConfigError):
            model_dir_for(tmp_path, bad)


def test_ovms_entry_fields(tmp_path: Path) -> None:
    """graph_path and subconfig (relative to base_path), shared base_path, mediapipe_config_list, cloud paths."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "subconfig.json").write_text('{"model_config_list": []}')
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "model_config_list": [{"config": {"name": "a", "base_path": "m"}},
                              {"config": {"name": "b", "base_path": "m", "graph_path": "graph_b.pbtxt"}}],
        "mediapipe_config_list": [{"name": "c", "base_path": "m", "graph_path": "g/c.pbtxt",
                                   "subconfig": "subconfig.json"},
                                  {"name": "d", "base_path": "m", "subconfig": "missing.json"},
                                  {"name": "s3", "base_path": "s3://bucket/models/m"},
                                  {"name": "gs", "base_path": "gs://bucket/m"},
                                  {"name": "az", "base_path": "az://container/m"}],
    }))
    entries = {e.name: e for e in read_config(config)}
    m = (tmp_path / "m").resolve()
    assert entries["a"] == ModelEntry("a", m)
    assert entries["b"].graph_file == m / "graph_b.pbtxt" and entries["b"].error is None
    assert entries["c"].graph_file == m / "g" / "c.pbtxt" and entries["c"].error is None
    assert entries["d"].error == f"model 'd': subconfig {m / 'missing.json'} not found"
    for name, scheme in (("s3", "s3"), ("gs", "gs"), ("az", "az")):
        error = entries[name].error or ""
        assert error.startswith(f"model '{name}': base_path {scheme}://") and f"is in {scheme} storage" in error
        assert "copy the model folder to local disk" in error
    config.write_text(json.dumps({"model_config_list": [{"config": {"name": "x", "graph_path": 3}}]}))
    with pytest.raises(ConfigError, match="'x': graph_path must be a non-empty string"):
        read_config(config)


def test_idle_unload_seconds_is_read_from_the_entry(tmp_path: Path) -> None:
    """ovembed's own key (OVMS refuses unknown keys): absent means the flag's value (None), 0 never."""
    config = tmp_path / "config.json"
    config.write_text('{"model_config_list": [{"config": {"name": "a", "idle_unload_seconds": 90}},'
                      '{"config": {"name": "b", "idle_unload_seconds": 0}}, {"config": {"name": "c"}}]}')
    assert [e.idle_unload_seconds for e in read_config(config)] == [90.0, 0.0, None]
