"""Render and parse the EmbeddingsCalculatorOV graph.pbtxt that OVMS and ovembed share.

This module is the one place that knows the serving options a graph carries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovembed.config import Pooling
from ovembed.errors import ConfigError
from ovembed.graphs.pbtxt import as_list, parse_pbtxt

GRAPH_FILENAME = "graph.pbtxt"
CALCULATOR = "EmbeddingsCalculatorOV"
_OPTIONS_KEY = "[type.googleapis.com/mediapipe.EmbeddingsCalculatorOVOptions]"
_OPTIONS_EXT_KEY = "[mediapipe.EmbeddingsCalculatorOVOptions.ext]"
# OVMS's proto has used CLS / LAST_TOKEN / LAST / MEAN over time.
_POOLING_NAMES = {"CLS": Pooling.CLS, "MEAN": Pooling.MEAN, "LAST": Pooling.LAST, "LAST_TOKEN": Pooling.LAST}


@dataclass(frozen=True)
class GraphOptions:
    """Serving options of one embeddings model (EmbeddingsCalculatorOVOptions)."""

    models_path: str = "./"
    normalize_embeddings: bool = True
    pooling: Pooling = Pooling.CLS
    truncate: bool = False
    target_device: str = "CPU"
    plugin_config: dict[str, Any] = field(default_factory=dict)

    def model_dir(self, graph_dir: Path) -> Path:
        """The folder holding the IR files, resolved against the graph's folder."""
        path = Path(self.models_path)
        return path if path.is_absolute() else (graph_dir / path).resolve()


def _quote(value: str) -> str:
    return json.dumps(value)


def render_graph(options: GraphOptions) -> str:
    """graph.pbtxt text in the layout OVMS's export_model.py writes."""
    plugin = json.dumps(options.plugin_config, separators=(", ", ": "))
    if "'" in plugin:
        raise ConfigError("plugin_config values cannot contain single quotes")
    return (
        'input_stream: "REQUEST_PAYLOAD:input"\n'
        'output_stream: "RESPONSE_PAYLOAD:output"\n'
        "node {\n"
        '  name: "EmbeddingsExecutor"\n'
        '  input_side_packet: "EMBEDDINGS_NODE_RESOURCES:embeddings_servable"\n'
        f'  calculator: "{CALCULATOR}"\n'
        '  input_stream: "REQUEST_PAYLOAD:input"\n'
        '  output_stream: "RESPONSE_PAYLOAD:output"\n'
        "  node_options: {\n"
        "    [type.googleapis.com / mediapipe.EmbeddingsCalculatorOVOptions]: {\n"
        f"      models_path: {_quote(options.models_path)},\n"
        f"      normalize_embeddings: {str(options.normalize_embeddings).lower()},\n"
        f"      pooling: {options.pooling.value},\n"
        f"      truncate: {str(options.truncate).lower()},\n"
        f"      target_device: {_quote(options.target_device)},\n"
        f"      plugin_config: '{plugin}'\n"
        "    }\n"
        "  }\n"
        "}\n"
    )


def _find_options(graph: dict[str, Any]) -> dict[str, Any]:
    for node in as_list(graph.get("node")):
        if not isinstance(node, dict) or node.get("calculator") != CALCULATOR:
            continue
        node_options = node.get("node_options") or node.get("options") or {}
        for key in (_OPTIONS_KEY, _OPTIONS_EXT_KEY):
            for candidate in as_list(node_options.get(key) if isinstance(node_options, dict) else None):
                if isinstance(candidate, dict):
                    return candidate
        return {}
    raise ConfigError(f"graph.pbtxt has no {CALCULATOR} node")


def _bool(opts: dict[str, Any], name: str, default: bool) -> bool:
    value = opts.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"graph.pbtxt: {name} must be true or false, got {value!r}")
    return value


def _str(opts: dict[str, Any], name: str, default: str) -> str:
    value = opts.get(name, default)
    if not isinstance(value, str):
        raise ConfigError(f"graph.pbtxt: {name} must be a string, got {value!r}")
    return value


def parse_graph(text: str) -> GraphOptions:
    """Read the options of the EmbeddingsCalculatorOV node; missing fields take OVMS's defaults."""
    opts = _find_options(parse_pbtxt(text))
    pooling_name = str(opts.get("pooling", "CLS"))
    pooling = _POOLING_NAMES.get(pooling_name.upper())
    if pooling is None:
        raise ConfigError(f"graph.pbtxt: unknown pooling {pooling_name!r} (choose CLS, MEAN or LAST)")
    plugin_text = _str(opts, "plugin_config", "").strip()
    try:
        plugin = json.loads(plugin_text) if plugin_text else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"graph.pbtxt: plugin_config is not valid JSON: {exc.msg}") from None
    if not isinstance(plugin, dict):
        raise ConfigError("graph.pbtxt: plugin_config must be a JSON object")
    return GraphOptions(
        models_path=_str(opts, "models_path", "./"),
        normalize_embeddings=_bool(opts, "normalize_embeddings", True),
        pooling=pooling,
        truncate=_bool(opts, "truncate", False),
        target_device=_str(opts, "target_device", "CPU"),
        plugin_config=plugin,
    )


def read_graph(model_dir: Path) -> GraphOptions:
    path = Path(model_dir) / GRAPH_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path} not found") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return parse_graph(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None


def write_graph(model_dir: Path, options: GraphOptions) -> Path:
    """Write graph.pbtxt atomically (temp file + rename)."""
    from ovembed.repository import atomic_write_text

    path = Path(model_dir) / GRAPH_FILENAME
    atomic_write_text(path, render_graph(options))
    return path
