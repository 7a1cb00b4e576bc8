"""What every export task shares: the progress log, the versions and Hub provenance recorded
with a model, quiet third-party logging, and the device options written into every graph."""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ovembed import __version__

if TYPE_CHECKING:
    from ovembed.config import ExportConfig
    from ovembed.export.source import SourceModel

Log = Callable[[str], None]


def versions() -> dict[str, str]:
    """Versions of ovembed and the export stack, recorded next to every export."""
    out = {"ovembed": __version__}
    for dist in ("openvino", "openvino-tokenizers", "optimum-intel", "optimum", "nncf", "transformers", "torch",
                 "sentence-transformers"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    return out


def hub_record(source: SourceModel) -> dict[str, Any]:
    if source.hub is None:
        return {}
    return {"source_revision": source.hub.revision or "main", "source_commit": source.hub.commit}


def quiet_libraries() -> None:
    """transformers, NNCF and optimum print progress tables and load reports; keep the CLI readable."""
    import logging

    import transformers

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    for name in ("nncf", "optimum", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)


def plugin_config(cfg: ExportConfig) -> dict[str, Any]:
    """The graph's ``plugin_config``: streams, and the compiled-model cache folder when given."""
    plugin: dict[str, Any] = {"NUM_STREAMS": str(cfg.num_streams)}
    if cfg.ov_cache_dir is not None:
        plugin["CACHE_DIR"] = str(cfg.ov_cache_dir)
    return plugin
