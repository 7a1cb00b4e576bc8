"""``ovembed embed``: resolve the model (folder, repository entry, or pull as ``serve`` does), load it
in process, run the corpus job or the OpenAI batch file, print one summary line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ovembed.config import ServeConfig
from ovembed.errors import ExportError
from ovembed.exitcodes import ExitCode
from ovembed.offline.config import EmbedConfig
from ovembed.offline.model import Model, load


def _pull(cfg: EmbedConfig) -> tuple[Path, str]:
    """``--source_model``: export into the repository unless it is there already (``serving.models.pull``'s
    rules and command line); returns (config.json, served name)."""
    from ovembed.serving.models.pull import export_command, export_env, needs_export, pull_config, served_name

    serve = pull_config(ServeConfig(source_model=cfg.source_model, model_name=cfg.model_name,
                                    model_repository_path=cfg.model_repository_path,
                                    weight_format=cfg.weight_format))
    if needs_export(serve):
        print(f"ovembed embed: exporting {cfg.source_model} into {cfg.model_repository_path}", file=sys.stderr)
        done = subprocess.run(export_command(serve), env=export_env(serve), stdin=subprocess.DEVNULL,
                              stdout=sys.stderr, check=False)
        if done.returncode != 0:
            raise ExportError(f"exporting {cfg.source_model} failed (exit {done.returncode}, see above)")
    assert serve.config_path is not None
    return serve.config_path, served_name(serve)


def load_model(cfg: EmbedConfig) -> Model:
    options: dict[str, object] = {"max_batch_tokens": cfg.max_batch_tokens}
    if cfg.target_device is not None:
        options["target_device"] = cfg.target_device
    if cfg.source_model is not None:
        config_path, name = _pull(cfg)
        return load(name, config_path=config_path, **options)
    if cfg.config_path is not None:
        return load(str(cfg.model_name), config_path=cfg.config_path, **options)
    assert cfg.model_path is not None
    if cfg.model_name is not None:
        options["model_name"] = cfg.model_name
    return load(cfg.model_path, **options)


def run(cfg: EmbedConfig) -> int:
    with load_model(cfg) as model:
        if cfg.batch_file is not None:
            from ovembed.offline.batchfile import run_batch_file

            summary = run_batch_file(model, cfg.batch_file, cfg.output, overwrite=cfg.overwrite).summary()
        else:
            from ovembed.offline.job import JobOptions, run_job

            assert cfg.input is not None
            summary = run_job(model, JobOptions(
                input=cfg.input, output=cfg.output, text_field=cfg.text_field, id_field=cfg.id_field,
                truncate=True if cfg.truncate else None, prompt_name=cfg.prompt_name, dimensions=cfg.dimensions,
                precision=cfg.precision, keep_text=cfg.keep_text, batch_size=cfg.batch_size,
                rows_per_group=cfg.rows_per_group, overwrite=cfg.overwrite, progress=not cfg.quiet)).summary()
    print(f"ovembed embed: {summary}", file=sys.stderr)
    return ExitCode.OK
