"""Container args of the deploy/ manifests and chart, parsed by ovembed's own CLI, so a flag the server
does not know, a wrong value or an impossible combination fails the deploy tests."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest


def serve_config(args: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The ServeConfig of ``ovembed <args>`` (args[0] == "serve"), checked as the server checks it:
    pull mode (--source_model) serves ``<model_repository_path>/config.json`` (pull_config, whose
    file write is left out here)."""
    from ovembed.cli import build_config, build_parser
    from ovembed.config import ServeConfig
    from ovembed.serving.http.server import check_config

    _clear_env(monkeypatch)
    assert args[0] == "serve"
    cfg = build_config(ServeConfig, build_parser().parse_args(args))
    if cfg.source_model is not None:
        assert cfg.config_path is None and cfg.model_path is None
        check_config(dataclasses.replace(cfg, config_path=Path(cfg.model_repository_path) / "config.json"))
    else:
        check_config(cfg)
    return cfg


def export_config(args: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The ExportConfig of ``ovembed <args>`` (args[0] == "export")."""
    from ovembed.cli import build_config, build_parser
    from ovembed.config import ExportConfig

    _clear_env(monkeypatch)
    assert args[0] == "export"
    return build_config(ExportConfig, build_parser().parse_args(args))


def _clear_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("OVEMBED_")]:
        monkeypatch.delenv(key)
