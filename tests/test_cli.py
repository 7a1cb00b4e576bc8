"""The CLI: flags derived from the config dataclasses, env vars, usage errors, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ovembed import cli
from ovembed.config import ExportConfig, Pooling, WeightFormat


def _parse_export(argv: list[str]) -> ExportConfig:
    parser = cli.build_parser()
    args = parser.parse_args(cli._join_flag_values(["export", *argv]))
    return cli.build_config(ExportConfig, args)  # type: ignore[no-any-return]


def test_ovms_flags_in_both_spellings() -> None:
    cfg = _parse_export(["--source_model", "BAAI/bge-small-en-v1.5", "--weight-format", "fp16", "--pooling", "mean",
                         "--model-name", "bge", "--skip_normalize", "--truncate", "--num_streams", "2",
                         "--target_device", "GPU", "--overwrite-models", "--model_repository_path", "/r",
                         "--extra_quantization_params", "--group-size 64 --ratio 0.8"])
    assert cfg == ExportConfig(source_model="BAAI/bge-small-en-v1.5", weight_format=WeightFormat.FP16,
                               pooling=Pooling.MEAN, model_name="bge", skip_normalize=True, truncate=True,
                               num_streams=2, target_device="GPU", overwrite_models=True,
                               model_repository_path=Path("/r"),
                               extra_quantization_params="--group-size 64 --ratio 0.8")
    assert cfg.config_path == Path("/r/config.json") and cfg.served_name == "bge"


def test_defaults_match_ovms() -> None:
    cfg = _parse_export(["--source_model", "x"])
    assert cfg.weight_format is WeightFormat.INT8 and cfg.pooling is None and cfg.num_streams == 1
    assert cfg.target_device == "CPU" and cfg.model_repository_path == Path("models")
    assert not cfg.trust_remote_code and cfg.served_name == "x"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVEMBED_SOURCE_MODEL", "from-env")
    monkeypatch.setenv("OVEMBED_WEIGHT_FORMAT", "int4")
    monkeypatch.setenv("OVEMBED_TRUNCATE", "true")
    cfg = _parse_export([])
    assert cfg.source_model == "from-env" and cfg.weight_format is WeightFormat.INT4 and cfg.truncate
    assert _parse_export(["--weight-format", "fp32"]).weight_format is WeightFormat.FP32  # flag wins


def test_bad_choice_is_a_usage_error_listing_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["export", "--source_model", "x", "--weight-format", "int3"])
    assert exc.value.code == cli.ExitCode.USAGE
    assert "invalid choice: 'int3' (choose from fp32, fp16, int8, int4)" in capsys.readouterr().err


def test_bad_extra_quantization_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["export", "--source_model", "x", "--model_repository_path", str(tmp_path),
                     "--extra_quantization_params", "--bits 3"])
    assert code == cli.ExitCode.FAILURE
    assert "--extra_quantization_params: unrecognized arguments: --bits 3" in capsys.readouterr().err


def test_missing_source_is_one_line_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ovembed", "export", "--source_model", "nobody/nothing",
                           "--model_repository_path", str(tmp_path / "repo")],
                          capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
                          timeout=300)
    assert proc.returncode == cli.ExitCode.FAILURE
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ovembed export: error:")]
    assert len(lines) == 1
    assert "model 'nobody/nothing' is not in the Hugging Face cache" in lines[0]
    assert not (tmp_path / "repo" / "nobody").exists()


def test_missing_export_stack_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from ovembed.errors import MissingDependency
    from ovembed.export import require_export_stack

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nncf" else real(name, *a))
    with pytest.raises(MissingDependency, match=r"missing: nncf\). Run: pip install 'ovembed\[export\]'"):
        require_export_stack()


def test_help_lists_every_command() -> None:
    text = cli.build_parser().format_help()
    for name in ("export", "compare", "serve", "benchmark", "devices"):
        assert name in text


@pytest.mark.parametrize(("argv", "expected"), [
    (["serve", "--config", "c.json"], "ovembed serve: error: unrecognized arguments: --config c.json "
                                      "(did you mean --config_path?)"),
    (["export", "--source_model", "x", "--weight-formt", "int8"],
     "ovembed export: error: unrecognized arguments: --weight-formt int8 (did you mean --weight_format?)"),
    (["serve", "--rest_prot", "9"], "ovembed serve: error: unrecognized arguments: --rest_prot 9 "
                                    "(did you mean --rest_port?)"),
])
def test_a_flag_typo_is_two_lines_with_the_closest_flag(argv: list[str], expected: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == cli.ExitCode.USAGE
    assert capsys.readouterr().err.splitlines() == [expected, f"Run 'ovembed {argv[0]} --help' for the options."]


def test_flags_are_never_abbreviated(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--rest_po", "9000"])  # a prefix of --rest_port only, still refused
    assert "unrecognized arguments: --rest_po 9000" in capsys.readouterr().err


def test_serve_help_is_grouped_with_one_spelling_per_flag(capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses

    from ovembed.config import ServeConfig

    placed = [name for names in cli.SERVE_HELP_GROUPS.values() for name in names]
    assert sorted(placed) == sorted(f.name for f in dataclasses.fields(ServeConfig))  # each field, once
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    text = capsys.readouterr().out
    for title in cli.SERVE_HELP_GROUPS:
        assert f"\n{title}:\n" in text
    assert "--config-path" not in text and "--rest_port REST_PORT" in text  # dashed aliases parse, unshown
    assert cli.build_parser().parse_args(["serve", "--rest-port", "9001"]).rest_port == 9001
