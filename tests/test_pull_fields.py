"""Pull mode's export options come from one declared list (ovembed/pull_fields.py): each one is a serve flag
with ExportConfig's type, default and env variable, reaches the export unchanged, and every other export
option is refused by `ovembed serve` with a message naming it."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest

from ovembed import cli
from ovembed.config import ExportConfig, Pooling, ServeConfig, Task, WeightFormat
from ovembed.errors import ConfigError
from ovembed.exitcodes import ExitCode
from ovembed.pull_fields import PULL_FIELDS, refusal
from ovembed.serving.models.pull import export_command, export_config, pull_config

EXPORT_FIELDS = {f.name: f for f in dataclasses.fields(ExportConfig)}
SERVE_FIELDS = {f.name: f for f in dataclasses.fields(ServeConfig)}
# Serve's own fields that mean the same in `ovembed export`: the source, the served name, the device (passed on)
# and the default prompt (applied when serving).
SHARED = {"source_model", "model_name", "target_device", "default_prompt_name"}

# A value other than the default for every accepted field (as a flag, and as ExportConfig holds it).
NON_DEFAULT: dict[str, tuple[list[str], Any]] = {
    "model_repository_path": (["/elsewhere"], Path("/elsewhere")),
    "weight_format": (["fp16"], WeightFormat.FP16),
    "pooling": (["MEAN"], Pooling.MEAN),
    "revision": (["v2"], "v2"),
    "task": (["rerank_ov"], Task.RERANK),
    "hf_token": (["hf_secret"], "hf_secret"),
    "extra_quantization_params": (["--group-size 64 --sym"], "--group-size 64 --sym"),
    "skip_normalize": ([], True),
    "truncate": ([], True),
    "num_streams": (["3"], 3),
    "max_doc_length": (["512"], 512),
    "max_allowed_chunks": (["9"], 9),
    "overwrite_models": ([], True),
    "trust_remote_code": ([], True),
    "reference_model": (["org/pt"], "org/pt"),
}


def _serve(*argv: str) -> ServeConfig:
    args = cli.build_parser().parse_args(cli._join_flag_values(["serve", *argv]))
    return cli.build_config(ServeConfig, args)  # type: ignore[no-any-return]


def _export_from_argv(command: list[str]) -> ExportConfig:
    args = cli.build_parser().parse_args(command[3:])
    return cli.build_config(ExportConfig, args)  # type: ignore[no-any-return]


def test_every_export_option_is_accepted_shared_or_refused() -> None:
    accepted = set(PULL_FIELDS)
    assert accepted <= set(EXPORT_FIELDS) and not accepted & SHARED
    assert set(SERVE_FIELDS) >= SHARED and accepted <= set(SERVE_FIELDS)
    refused = set(EXPORT_FIELDS) - accepted - SHARED
    assert refused == set(EXPORT_FIELDS) - set(SERVE_FIELDS)  # no other export name is also a serve flag
    assert set(NON_DEFAULT) == accepted  # a new entry needs its round-trip case below


def test_serve_fields_take_the_export_type_default_and_env() -> None:
    serve_hints, export_hints = typing.get_type_hints(ServeConfig), typing.get_type_hints(ExportConfig)
    for name, pulled in PULL_FIELDS.items():
        assert serve_hints[name] == export_hints[name], name
        assert SERVE_FIELDS[name].default == EXPORT_FIELDS[name].default, name
        assert SERVE_FIELDS[name].metadata["help"] == pulled.help
        assert SERVE_FIELDS[name].metadata["env"] is None  # OVEMBED_<NAME>, as for export


@pytest.mark.parametrize("name", list(PULL_FIELDS))
def test_each_accepted_flag_reaches_the_export(name: str, tmp_path: Path) -> None:
    flag_args, expected = NON_DEFAULT[name]
    task = {"pooling": "embeddings", "max_doc_length": "rerank", "max_allowed_chunks": "rerank"}.get(name)
    argv = ["--source_model", "org/m", f"--{name}", *flag_args, "--config_path", str(tmp_path / "c.json")]
    if task is not None:
        argv += ["--task", task]
    cfg = pull_config(_serve(*argv))
    assert getattr(cfg, name) == expected
    export = export_config(cfg)
    assert getattr(export, name) == expected
    from_argv = _export_from_argv(export_command(cfg))
    if name == "hf_token":  # never on the command line: the export gets it as HF_TOKEN
        assert from_argv.hf_token is None and dataclasses.replace(from_argv, hf_token="hf_secret") == export
    else:
        assert from_argv == export


def test_task_specific_flags_are_left_out_for_other_tasks(tmp_path: Path) -> None:
    cfg = pull_config(_serve("--source_model", "org/s", "--task", "sparse", "--pooling", "LAST",
                             "--max_doc_length", "5", "--config_path", str(tmp_path / "c.json")))
    export = export_config(cfg)
    assert export.pooling is None and export.max_doc_length == ExportConfig.max_doc_length
    assert export.task is Task.SPARSE and _export_from_argv(export_command(cfg)) == export


def test_what_pull_mode_sets_itself(tmp_path: Path) -> None:
    cfg = pull_config(_serve("--source_model", "org/m", "--model_name", "m", "--target_device", "GPU",
                             "--default_prompt_name", "query", "--model_repository_path", str(tmp_path)))
    export = export_config(cfg)
    assert (export.source_model, export.served_name, export.target_device) == ("org/m", "m", "GPU")
    assert export.config_path == tmp_path / "config.json" and export.quiet
    assert export.default_prompt_name is None  # applied when serving, for every model that has the prompt
    command = export_command(cfg)
    assert command[4] == "--quiet" and _export_from_argv(command) == export


def test_checks_are_the_exports() -> None:
    for kwargs, message in (({"num_streams": -1}, "--num_streams must be 0"),
                            ({"max_doc_length": 0}, "--max_doc_length must be at least 1"),
                            ({"max_allowed_chunks": 0}, "--max_allowed_chunks must be at least 1"),
                            ({"weight_format": "int3"}, "--weight_format must be one of fp32, fp16")):
        with pytest.raises(ConfigError, match=message):
            ServeConfig(**kwargs)


@pytest.mark.parametrize("name", sorted(set(EXPORT_FIELDS) - set(PULL_FIELDS) - SHARED))
def test_other_export_flags_are_refused_naming_the_flag(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    value = [] if typing.get_type_hints(ExportConfig)[name] is bool else ["1"]
    flag = EXPORT_FIELDS[name].metadata["flags"][0] if EXPORT_FIELDS[name].metadata["flags"] else f"--{name}"
    with pytest.raises(SystemExit) as exc:
        cli.main(["serve", "--source_model", "org/m", flag, *value])
    assert exc.value.code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"ovembed serve: error: {refusal(name)}" in err and f"--{name} is an `ovembed export` option" in err


def test_refused_flags_stay_out_of_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "--calibration_file" not in out and "--skip_verify" not in out and "--weight_format" in out
