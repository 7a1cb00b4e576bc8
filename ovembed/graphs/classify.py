"""The ClassificationCalculatorOV node of a graph.pbtxt, as the :class:`ClassifyGraphOptions` the rest of ovembed uses.

ovembed's own calculator (``graphs/proto/classify/``; OVMS has none), for sequence classifiers with more than
one label. Options: ``models_path`` (required), ``target_device``, ``plugin_config`` (a JSON string) and
``truncate`` (default for requests). What the model itself says (labels, problem type) is in its
``ovembed_model.json``, not here: it is the model's, not a serving option.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ovembed.errors import ConfigError
from ovembed.graphs.embeddings import plugin_config_from_text
from ovembed.graphs.pbtxt import CLASSIFY, Calculator, GraphNode, render_graph_text
from ovembed.graphs.proto.classification_calculator_ov_pb2 import ClassificationCalculatorOVOptions


@dataclass(frozen=True)
class ClassifyGraphOptions:
    """Serving options of one classifier (ClassificationCalculatorOVOptions)."""

    calculator: ClassVar[Calculator] = CLASSIFY  # the graph node these options belong to

    models_path: str = "./"
    target_device: str = "CPU"
    plugin_config: dict[str, Any] = field(default_factory=dict)
    truncate: bool = False

    def model_dir(self, graph_dir: Path) -> Path:
        path = Path(self.models_path)
        return path if path.is_absolute() else (graph_dir / path).resolve()


def render_classify_graph(options: ClassifyGraphOptions) -> str:
    message = ClassificationCalculatorOVOptions(models_path=options.models_path,
                                                 target_device=options.target_device)
    if options.truncate:
        message.truncate = True
    if options.plugin_config:
        message.plugin_config = json.dumps(options.plugin_config, ensure_ascii=False)
    return render_graph_text(CLASSIFY, message)


def classify_options(node: GraphNode) -> ClassifyGraphOptions:
    """The options of a parsed ClassificationCalculatorOV node; unset fields take the proto's defaults."""
    if node.calculator is not CLASSIFY:
        raise ConfigError(f"graph.pbtxt has no {CLASSIFY.name} node (it has a {node.calculator.name} node)")
    opts: Any = node.options
    return ClassifyGraphOptions(
        models_path=str(opts.models_path),
        target_device=str(opts.target_device) if opts.HasField("target_device") else "CPU",
        plugin_config=plugin_config_from_text(str(opts.plugin_config)),
        truncate=bool(opts.truncate),
    )


def write_classify_graph(model_dir: Path, options: ClassifyGraphOptions) -> Path:
    from ovembed.graphs.embeddings import GRAPH_FILENAME
    from ovembed.repository import atomic_write_text

    path = Path(model_dir) / GRAPH_FILENAME
    atomic_write_text(path, render_classify_graph(options))
    return path
