"""The TokenEmbeddingsCalculatorOV node of a graph.pbtxt, as the :class:`TokenGraphOptions` the rest of ovembed uses.

ovembed's own calculator (``graphs/proto/token/``; OVMS has none), for late-interaction (ColBERT-style) models
that return one vector per token. Options: ``models_path`` (required), ``target_device``, ``plugin_config`` (a
JSON string) and ``truncate`` (default for requests). What the model itself says (markers, skiplist, dimensions)
is in its ``ovembed_model.json``, not here: it is the model's, not a serving option.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ovembed.errors import ConfigError
from ovembed.graphs.embeddings import plugin_config_from_text
from ovembed.graphs.pbtxt import TOKEN_EMBED, Calculator, GraphNode, render_graph_text
from ovembed.graphs.proto.token_embeddings_calculator_ov_pb2 import TokenEmbeddingsCalculatorOVOptions


@dataclass(frozen=True)
class TokenGraphOptions:
    """Serving options of one token-vector model (TokenEmbeddingsCalculatorOVOptions)."""

    calculator: ClassVar[Calculator] = TOKEN_EMBED  # the graph node these options belong to

    models_path: str = "./"
    target_device: str = "CPU"
    plugin_config: dict[str, Any] = field(default_factory=dict)
    truncate: bool = False

    def model_dir(self, graph_dir: Path) -> Path:
        path = Path(self.models_path)
        return path if path.is_absolute() else (graph_dir / path).resolve()


def render_token_graph(options: TokenGraphOptions) -> str:
    """graph.pbtxt of ``options``' calculator (the token one, or another that shares its options: bge_m3)."""
    message = TokenEmbeddingsCalculatorOVOptions(models_path=options.models_path,
                                                 target_device=options.target_device)
    if options.truncate:
        message.truncate = True
    if options.plugin_config:
        message.plugin_config = json.dumps(options.plugin_config, ensure_ascii=False)
    return render_graph_text(options.calculator, message)


def token_options(node: GraphNode, kind: type[TokenGraphOptions] = TokenGraphOptions) -> TokenGraphOptions:
    """The options of a parsed node of ``kind``'s calculator (TokenEmbeddingsCalculatorOV by default); unset
    fields take the proto's defaults."""
    if node.calculator is not kind.calculator:
        raise ConfigError(f"graph.pbtxt has no {kind.calculator.name} node (it has a {node.calculator.name} node)")
    opts: Any = node.options
    return kind(
        models_path=str(opts.models_path),
        target_device=str(opts.target_device) if opts.HasField("target_device") else "CPU",
        plugin_config=plugin_config_from_text(str(opts.plugin_config)),
        truncate=bool(opts.truncate),
    )


def write_token_graph(model_dir: Path, options: TokenGraphOptions) -> Path:
    from ovembed.graphs.embeddings import GRAPH_FILENAME
    from ovembed.repository import atomic_write_text

    path = Path(model_dir) / GRAPH_FILENAME
    atomic_write_text(path, render_token_graph(options))
    return path
