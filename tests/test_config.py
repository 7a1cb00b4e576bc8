"""Config classes check their values on construction, the same for CLI, env and library callers."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovembed.cli import main
from ovembed.config import BenchmarkConfig, ExportConfig, LogFormat, LogLevel, ServeConfig, WeightFormat
from ovembed.errors import ConfigError
from ovembed.exitcodes import ExitCode


def test_enum_fields_accept_their_values_as_strings() -> None:
    cfg = ServeConfig(config_path=Path("c.json"), log_level="debug", log_format="JSON")  # type: ignore[arg-type]
    assert cfg.log_level is LogLevel.DEBUG and cfg.log_format is LogFormat.JSON
    assert ExportConfig(source_model="m", weight_format="INT4").weight_format is WeightFormat.INT4  # type: ignore[arg-type]


@pytest.mark.parametrize(("build", "message"), [
    (lambda: ServeConfig(log_level="LOUD"), "--log_level must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"),
    (lambda: ServeConfig(max_queue=0), "--max_queue must be positive, got 0"),
    (lambda: ServeConfig(max_wait_ms=-1.0), "--max_wait_ms cannot be negative"),
    (lambda: ServeConfig(graceful_timeout=float("nan")), "--graceful_timeout cannot be negative"),
    (lambda: ExportConfig(source_model="m", weight_format="int3"), "--weight_format must be one of fp32, fp16"),
    (lambda: ExportConfig(source_model="m", num_streams=-1), "--num_streams must be 0"),
    (lambda: ExportConfig(source_model="m", min_rank_agreement=1.5), "--min_rank_agreement must be between 0 and 1"),
    (lambda: BenchmarkConfig(model="m", warmup=-1), "--warmup cannot be negative"),
])
def test_bad_values_name_the_flag(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build()


def test_cli_and_env_values_are_usage_errors(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--config_path", "c.json", "--max_batch_size", "0"]) == ExitCode.USAGE
    assert "ovembed serve: error: --max_batch_size must be positive, got 0" in capsys.readouterr().err
    monkeypatch.setenv("OVEMBED_CONCURRENCY", "0")
    assert main(["benchmark", "--model", "m"]) == ExitCode.USAGE
    assert "--concurrency must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(("source", "served"), [("./my-model", "my-model"), ("../a/b/", "b"), ("/srv/m/e5", "e5"),
                                                ("org/name", "org/name"), ("name", "name")])
def test_a_path_like_source_is_served_under_its_folder_name(source: str, served: str) -> None:
    assert ExportConfig(source_model=source).served_name == served
    assert ExportConfig(source_model=source, model_name="given").served_name == "given"
