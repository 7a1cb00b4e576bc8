"""Render and parse the RerankCalculatorOV graph.pbtxt that OVMS and ovembed share.

The options are OVMS's ``RerankCalculatorOVOptions`` (src/rerank/rerank_calculator_ov.proto):
``models_path`` (required), ``max_allowed_chunks`` (default 10000), ``max_position_embeddings``
(optional: overrides the model's window), ``target_device``, ``plugin_config`` (a JSON string).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovembed.errors import ConfigError
from ovembed.graphs.pbtxt import as_list, parse_pbtxt

CALCULATOR = "RerankCalculatorOV"
DEFAULT_MAX_ALLOWED_CHUNKS = 10000
_OPTIONS_KEYS = ("[type.googleapis.com/mediapipe.RerankCalculatorOVOptions]",
                 "[mediapipe.RerankCalculatorOVOptions.ext]")


@dataclass(frozen=True)
class RerankGraphOptions:
    """Serving options of one rerank model (RerankCalculatorOVOptions)."""

    models_path: str = "./"
    max_allowed_chunks: int = DEFAULT_MAX_ALLOWED_CHUNKS
    max_position_embeddings: int | None = None
    target_device: str = "CPU"
    plugin_config: dict[str, Any] = field(default_factory=dict)

    def model_dir(self, graph_dir: Path) -> Path:
        path = Path(self.models_path)
        return path if path.is_absolute() else (graph_dir / path).resolve()


def render_rerank_graph(options: RerankGraphOptions) -> str:
    """graph.pbtxt text in the layout OVMS's export_model.py rerank_ov writes."""
    plugin = json.dumps(options.plugin_config, separators=(", ", ": "))
    if "'" in plugin:
        raise ConfigError("plugin_config values cannot contain single quotes")
    optional = ""
    if options.max_position_embeddings is not None:
        optional = f"      max_position_embeddings: {options.max_position_embeddings},\n"
    return (
        'input_stream: "REQUEST_PAYLOAD:input"\n'
        'output_stream: "RESPONSE_PAYLOAD:output"\n'
        "node {\n"
        '  name: "RerankExecutor"\n'
        '  input_side_packet: "RERANK_NODE_RESOURCES:rerank_servable"\n'
        f'  calculator: "{CALCULATOR}"\n'
        '  input_stream: "REQUEST_PAYLOAD:input"\n'
        '  output_stream: "RESPONSE_PAYLOAD:output"\n'
        "  node_options: {\n"
        "    [type.googleapis.com / mediapipe.RerankCalculatorOVOptions]: {\n"
        f"      models_path: {json.dumps(options.models_path)},\n"
        f"      max_allowed_chunks: {options.max_allowed_chunks},\n"
        f"{optional}"
        f"      target_device: {json.dumps(options.target_device)},\n"
        f"      plugin_config: '{plugin}'\n"
        "    }\n"
        "  }\n"
        "}\n"
    )


def _positive(opts: dict[str, Any], name: str) -> int | None:
    value = opts.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"graph.pbtxt: {name} must be a positive integer, got {value!r}")
    return value


def rerank_options_from(node: dict[str, Any]) -> RerankGraphOptions:
    """The options of one parsed RerankCalculatorOV node; missing fields take OVMS's defaults."""
    node_options = node.get("node_options") or node.get("options") or {}
    opts: dict[str, Any] = {}
    for key in _OPTIONS_KEYS:
        found = [c for c in as_list(node_options.get(key) if isinstance(node_options, dict) else None)
                 if isinstance(c, dict)]
        if found:
            opts = found[0]
            break
    for name in ("models_path", "target_device", "plugin_config"):
        if name in opts and not isinstance(opts[name], str):
            raise ConfigError(f"graph.pbtxt: {name} must be a string, got {opts[name]!r}")
    plugin_text = str(opts.get("plugin_config", "")).strip()
    try:
        plugin = json.loads(plugin_text) if plugin_text else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"graph.pbtxt: plugin_config is not valid JSON: {exc.msg}") from None
    if not isinstance(plugin, dict):
        raise ConfigError("graph.pbtxt: plugin_config must be a JSON object")
    return RerankGraphOptions(
        models_path=str(opts.get("models_path", "./")),
        max_allowed_chunks=_positive(opts, "max_allowed_chunks") or DEFAULT_MAX_ALLOWED_CHUNKS,
        max_position_embeddings=_positive(opts, "max_position_embeddings"),
        target_device=str(opts.get("target_device", "CPU")),
        plugin_config=plugin,
    )


def find_rerank_node(text: str) -> dict[str, Any] | None:
    """The RerankCalculatorOV node of a graph, or None when the graph has none."""
    graph = parse_pbtxt(text)
    for node in as_list(graph.get("node")):
        if isinstance(node, dict) and node.get("calculator") == CALCULATOR:
            return node
    return None


def parse_rerank_graph(text: str) -> RerankGraphOptions:
    node = find_rerank_node(text)
    if node is None:
        raise ConfigError(f"graph.pbtxt has no {CALCULATOR} node")
    return rerank_options_from(node)
