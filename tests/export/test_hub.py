"""Export from a Hub id, against a loopback stand-in for the Hub (tests/hub_stand_in.py); never the network."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovembed.export.hub import allow_patterns, is_openvino_ir_repo
from tests.support.hub_stand_in import HubStandIn, hub_env, hub_stand_in
from tests.support.server import free_port


def test_allow_patterns_prefer_safetensors_and_skip_other_frameworks() -> None:
    import fnmatch

    files = ["config.json", "model.safetensors", "pytorch_model.bin", "onnx/model.onnx", "openvino/openvino_model.xml",
             "1_Pooling/config.json", "tokenizer.json", "modules.json", "tf_model.h5", "rust_model.ot"]
    patterns = allow_patterns(files)
    chosen = {f for f in files if any(fnmatch.fnmatch(f, p) for p in patterns)}
    assert chosen == {"config.json", "model.safetensors", "1_Pooling/config.json", "tokenizer.json", "modules.json"}
    only_bin = allow_patterns(["config.json", "pytorch_model.bin"])
    assert any(fnmatch.fnmatch("pytorch_model.bin", p) for p in only_bin)
    ir = ["config.json", "openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "openvino_tokenizer.bin",
          "tokenizer.json", "model.safetensors"]
    assert is_openvino_ir_repo(ir)
    assert not any(fnmatch.fnmatch("model.safetensors", p) for p in allow_patterns(ir))


@pytest.fixture(scope="module")
def hub_repo(tiny_source, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """The tiny BERT as a Hub repository holds it: safetensors plus files export must not download."""
    folder = tmp_path_factory.mktemp("hub") / "tiny"
    shutil.copytree(tiny_source("bert-mean"), folder)
    assert (folder / "model.safetensors").is_file()
    (folder / "pytorch_model.bin").write_bytes(b"not needed: safetensors is there")
    (folder / "onnx").mkdir()
    (folder / "onnx" / "model.onnx").write_bytes(b"not needed")
    (folder / "openvino").mkdir()
    (folder / "openvino" / "openvino_model.xml").write_text("<not needed/>")
    return folder


@pytest.fixture()
def hub(hub_repo: Path) -> Iterator[HubStandIn]:
    with hub_stand_in({"org/tiny": hub_repo, "org/gated": hub_repo}, gated={"org/gated"}) as stand_in:
        yield stand_in


def _export(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ovembed", "export", "--model_repository_path", str(tmp_path / "models"),
               "--weight-format", "fp32", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_export_from_the_hub(hub: HubStandIn, tmp_path: Path) -> None:
    done = _export(tmp_path, hub_env(tmp_path, hub.base_url), "--source_model", "org/tiny", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    model = tmp_path / "models" / "org" / "tiny"
    record = json.loads((model / "ovembed_model.json").read_text())
    assert record["source_model"] == "org/tiny"
    assert record["source_commit"] == hub.commit("org/tiny") and record["source_revision"] == "main"
    assert record["pooling"] == "MEAN"  # from the downloaded 1_Pooling/config.json
    assert record["verification"]["min_cosine"] >= 0.9999  # against the PyTorch reference
    got = hub.downloaded("org/tiny")
    assert {"config.json", "model.safetensors", "1_Pooling/config.json", "tokenizer.json"} <= got
    assert not {"pytorch_model.bin", "onnx/model.onnx", "openvino/openvino_model.xml"} & got
    assert str(tmp_path / "hf") in record["source_path"]  # HF_HOME honoured
    config = json.loads((tmp_path / "models" / "config.json").read_text())
    assert [e["config"]["name"] for e in config["model_config_list"]] == ["org/tiny"]

    # The same revision again comes from the cache, also offline.
    again = _export(tmp_path, hub_env(tmp_path, hub.base_url, offline=True), "--source_model", "org/tiny",
                    "--model_name", "tiny2", "--revision", hub.commit("org/tiny"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((tmp_path / "models" / "tiny2" / "ovembed_model.json").read_text())["source_commit"] == \
        hub.commit("org/tiny")


def _nothing_written(tmp_path: Path) -> None:
    models = tmp_path / "models"
    assert not models.exists() or not any(p for p in models.rglob("*") if p.name != "config.json")
    assert not (models / "config.json").exists()


def test_not_found_names_the_repository(hub: HubStandIn, tmp_path: Path) -> None:
    line = _one_line_error(_export(tmp_path, hub_env(tmp_path, hub.base_url), "--source_model", "org/missing"))
    assert line == ("ovembed export: error: model 'org/missing' was not found on the Hugging Face Hub (nor as a "
                    "local folder); if it is private, set HF_TOKEN (or pass --hf_token)")
    _nothing_written(tmp_path)


def test_gated_says_hf_token(hub: HubStandIn, tmp_path: Path) -> None:
    line = _one_line_error(_export(tmp_path, hub_env(tmp_path, hub.base_url), "--source_model", "org/gated"))
    assert "'org/gated' on the Hugging Face Hub is gated" in line and "HF_TOKEN" in line
    _nothing_written(tmp_path)


def test_gated_with_a_token(hub: HubStandIn, tmp_path: Path) -> None:
    """--hf_token, and HF_TOKEN in the environment, open a gated repository."""
    done = _export(tmp_path, hub_env(tmp_path, hub.base_url), "--source_model", "org/gated", "--hf_token", hub.token,
                   "--skip_verify", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    env = {**hub_env(tmp_path, hub.base_url), "HF_TOKEN": hub.token}
    again = _export(tmp_path, env, "--source_model", "org/gated", "--model_name", "gated2", "--skip_verify",
                    "--quiet", "--revision", hub.commit("org/gated"))
    assert again.returncode == 0, again.stdout + again.stderr
    wrong = _export(tmp_path, hub_env(tmp_path, hub.base_url), "--source_model", "org/gated", "--model_name", "g3",
                    "--hf_token", "hf_wrong", "--revision", "main")
    assert "is gated" in _one_line_error(wrong)


def test_unknown_revision(hub: HubStandIn, tmp_path: Path) -> None:
    line = _one_line_error(_export(tmp_path, hub_env(tmp_path, hub.base_url), "--source_model", "org/tiny",
                                   "--revision", "v9"))
    assert line == "ovembed export: error: model 'org/tiny' has no revision 'v9' (a branch, tag or commit)"


def test_offline_and_not_cached(hub: HubStandIn, tmp_path: Path) -> None:
    offline = hub_env(tmp_path, hub.base_url, offline=True)
    line = _one_line_error(_export(tmp_path, offline, "--source_model", "org/tiny"))
    assert "model 'org/tiny' is not in the Hugging Face cache" in line and "HF_HUB_OFFLINE is set" in line
    assert str(tmp_path / "hf" / "hub") in line  # the cache path
    assert hub.requests == []  # offline means offline
    _nothing_written(tmp_path)


def test_no_network(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    line = _one_line_error(_export(tmp_path, hub_env(tmp_path, closed), "--source_model", "org/tiny"))
    assert "model 'org/tiny' is not in the Hugging Face cache" in line
    assert f"the Hugging Face Hub ({closed}) cannot be reached" in line and str(tmp_path / "hf" / "hub") in line
    _nothing_written(tmp_path)


def test_disk_full_while_downloading_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    from types import SimpleNamespace

    import huggingface_hub
    from huggingface_hub import constants

    from ovembed.errors import ExportError
    from ovembed.export.hub import fetch

    def full(*args: object, **kwargs: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    info = SimpleNamespace(sha="a" * 40, siblings=[SimpleNamespace(rfilename="config.json"),
                                                    SimpleNamespace(rfilename="model.safetensors")])
    monkeypatch.setattr(constants, "is_offline_mode", lambda: False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, repo_id, revision=None: info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", full)
    with pytest.raises(ExportError) as caught:
        fetch("org/big", quiet=True)
    message = str(caught.value)
    assert message.startswith("disk full while downloading 'org/big' into ") and "HF_HUB_CACHE" in message
    assert "\n" not in message
