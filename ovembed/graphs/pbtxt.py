"""graph.pbtxt as OVMS reads it: a MediaPipe ``CalculatorGraphConfig`` in protobuf text format.

Parsing and printing are ``google.protobuf.text_format`` over the vendored protos in
:mod:`ovembed.graphs.proto`, so every escape, comment, separator and quoting rule is protobuf's own, and an
option the calculator's proto does not declare is refused, as OVMS refuses it. Each calculator ovembed serves
is a :class:`Calculator`; a task module (``graphs/embeddings.py``, ``graphs/rerank.py``) turns its typed
options message into the dataclass the rest of ovembed uses.

    node = parse_graph_text(text)              # -> GraphNode(calculator, options message, schema, header)
    text = render_graph_text(EMBEDDINGS, msg)  # the layout OVMS's export_model.py writes
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import message_factory, text_format
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import EncodeError, Message

from ovembed.errors import ConfigError
from ovembed.graphs.proto import (
    _pool,
    calculator_pb2,
    classification_calculator_ov_pb2,
    embeddings_calculator_ov_2025_2_pb2,
    embeddings_calculator_ov_pb2,
    rerank_calculator_ov_pb2,
    sparse_embeddings_calculator_ov_pb2,
    token_embeddings_calculator_ov_pb2,
)

# export_model.py's first line. OVMS reads it to size the graph pool; without it the pool is off.
QUEUE_HEADER_KEY = "OVMS_GRAPH_QUEUE_MAX_SIZE"
# OVMS's own pattern (mediapipegraphdefinition.cpp): a comment line anywhere in the file.
_HEADER = re.compile(r"(?:^|\n)\s*#\s*" + QUEUE_HEADER_KEY + r"\s*:\s*(\S+)\s*(?:\r?\n|$)")
_REQUEST_STREAM = "REQUEST_PAYLOAD:input"
_RESPONSE_STREAM = "RESPONSE_PAYLOAD:output"

CURRENT_SCHEMA = "OVMS 2026"
LEGACY_SCHEMA = "OVMS 2025.2"


@dataclass(frozen=True)
class Calculator:
    """A MediaPipe calculator ovembed serves, and the node OVMS's export_model.py writes for it."""

    name: str  # the node's `calculator:` value
    node_name: str
    side_packet: str  # input_side_packet, TAG:name
    options_type: type[Message]  # its options message in the current schema

    @property
    def options_name(self) -> str:
        return str(self.options_type.DESCRIPTOR.name)


EMBEDDINGS = Calculator("EmbeddingsCalculatorOV", "EmbeddingsExecutor",
                        "EMBEDDINGS_NODE_RESOURCES:embeddings_servable",
                        embeddings_calculator_ov_pb2.EmbeddingsCalculatorOVOptions)
RERANK = Calculator("RerankCalculatorOV", "RerankExecutor", "RERANK_NODE_RESOURCES:rerank_servable",
                    rerank_calculator_ov_pb2.RerankCalculatorOVOptions)
# ovembed's own (OVMS has no sparse calculator): graphs/proto/sparse/sparse_embeddings_calculator_ov.proto
SPARSE = Calculator("SparseEmbeddingsCalculatorOV", "SparseEmbeddingsExecutor",
                    "SPARSE_EMBEDDINGS_NODE_RESOURCES:sparse_embeddings_servable",
                    sparse_embeddings_calculator_ov_pb2.SparseEmbeddingsCalculatorOVOptions)
# ovembed's own: graphs/proto/token/token_embeddings_calculator_ov.proto (late interaction, one vector per token)
TOKEN_EMBED = Calculator("TokenEmbeddingsCalculatorOV", "TokenEmbeddingsExecutor",
                         "TOKEN_EMBEDDINGS_NODE_RESOURCES:token_embeddings_servable",
                         token_embeddings_calculator_ov_pb2.TokenEmbeddingsCalculatorOVOptions)
# ovembed's own: graphs/proto/classify/classification_calculator_ov.proto (sequence classification, several labels)
CLASSIFY = Calculator("ClassificationCalculatorOV", "ClassificationExecutor",
                      "CLASSIFICATION_NODE_RESOURCES:classification_servable",
                      classification_calculator_ov_pb2.ClassificationCalculatorOVOptions)
# ovembed's own: BGE-M3's dense + sparse + multi-vector heads in one IR; the token calculator's options message
BGE_M3 = Calculator("BgeM3EmbeddingsCalculatorOV", "BgeM3EmbeddingsExecutor",
                    "BGE_M3_NODE_RESOURCES:bge_m3_servable",
                    token_embeddings_calculator_ov_pb2.TokenEmbeddingsCalculatorOVOptions)
CALCULATORS: dict[str, Calculator] = {c.name: c for c in (EMBEDDINGS, RERANK, SPARSE, TOKEN_EMBED, BGE_M3,
                                                                    CLASSIFY)}

# Older schemas, tried when a graph does not parse against the current one. Same full message names.
_LEGACY_OPTIONS: dict[str, type[Message]] = {
    EMBEDDINGS.name: embeddings_calculator_ov_2025_2_pb2.EmbeddingsCalculatorOVOptions,
}


@dataclass(frozen=True)
class GraphNode:
    """The ovembed-served node of a graph: which calculator, its options message and the schema it matched."""

    calculator: Calculator
    options: Message  # calculator.options_type, or a legacy options type when schema is LEGACY_SCHEMA
    schema: str
    queue_max_size: str | None  # the `# OVMS_GRAPH_QUEUE_MAX_SIZE:` header, None when absent

    @property
    def legacy(self) -> bool:
        return self.schema != CURRENT_SCHEMA


def _graph_class(pool: DescriptorPool) -> type[Message]:
    if pool is _pool.POOL:
        return calculator_pb2.CalculatorGraphConfig
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("mediapipe.CalculatorGraphConfig"))


def _parse(text: str, pool: DescriptorPool) -> Message:
    graph = _graph_class(pool)()
    try:
        text_format.Parse(text, graph, descriptor_pool=pool)
    except text_format.ParseError as exc:
        where = f"line {exc.GetLine()}" if exc.GetLine() else "graph"
        detail = re.sub(r"^(\d+:\d+ : )?('[^\n]*?': )?", "", str(exc)).rstrip(".")
        raise ConfigError(f"graph.pbtxt {where}: {detail}") from None
    except EncodeError as exc:  # an options message inside node_options lacks a required field
        raise ConfigError(f"graph.pbtxt: {exc}") from None
    return graph


def _options_of(node: Message, options_type: type[Message], calculator: str) -> Message:
    options = options_type()
    type_name = options.DESCRIPTOR.full_name
    found = [any_msg for any_msg in node.node_options if any_msg.type_url.split("/")[-1] == type_name]  # type: ignore[attr-defined]
    others = [any_msg.type_url for any_msg in node.node_options  # type: ignore[attr-defined]
              if any_msg.type_url.split("/")[-1] != type_name]
    if others:
        raise ConfigError(f"graph.pbtxt: the {calculator} node has options of another type: {', '.join(others)}")
    if len(found) > 1:
        raise ConfigError(f"graph.pbtxt: the {calculator} node has {type_name} twice")
    if found:
        found[0].Unpack(options)
        return options
    ext = options_type.DESCRIPTOR.extensions_by_name.get("ext")
    legacy_options = node.options  # type: ignore[attr-defined]
    if ext is not None and legacy_options.HasExtension(ext):
        options.CopyFrom(legacy_options.Extensions[ext])
        return options
    raise ConfigError(f"graph.pbtxt: the {calculator} node has no {type_name} options")


def _served_node(graph: Message) -> Message:
    nodes = [node for node in graph.node if node.calculator in CALCULATORS]  # type: ignore[attr-defined]
    if not nodes:
        names = " or ".join(CALCULATORS)
        present = sorted({n.calculator for n in graph.node if n.calculator})  # type: ignore[attr-defined]
        has = f" (it has {', '.join(present)})" if present else ""
        raise ConfigError(f"graph.pbtxt has no {names} node{has}")
    if len(nodes) > 1:
        raise ConfigError(f"graph.pbtxt has {len(nodes)} calculator nodes ovembed serves; one graph serves one model")
    return nodes[0]


def parse_graph_text(text: str) -> GraphNode:
    """The served node of a graph.pbtxt; a ``ConfigError`` naming the line and the offending option otherwise.

    The text is read against OVMS's current protos; if that fails and an older OVMS release's options proto
    reads it (``mean_pooling`` from 2025.2), that one is used. Otherwise the current schema's error is raised.
    """
    header = _HEADER.search(text)
    queue = header.group(1) if header else None
    try:
        graph = _parse(text, _pool.POOL)
    except ConfigError as current_error:
        try:
            graph = _parse(text, _pool.legacy_pool())
            node = _served_node(graph)
        except ConfigError:
            raise current_error from None
        legacy_type = _LEGACY_OPTIONS.get(node.calculator)  # type: ignore[attr-defined]
        if legacy_type is None:
            raise current_error from None
        calculator = CALCULATORS[node.calculator]  # type: ignore[attr-defined]
        return GraphNode(calculator, _options_of(node, legacy_type, calculator.name), LEGACY_SCHEMA, queue)
    node = _served_node(graph)
    calculator = CALCULATORS[node.calculator]  # type: ignore[attr-defined]
    return GraphNode(calculator, _options_of(node, calculator.options_type, calculator.name), CURRENT_SCHEMA,
                     queue)


def read_graph_text(path: Path) -> str:
    """The text of a graph file; a ``ConfigError`` naming it when it is missing or unreadable."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path} not found") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None


def read_graph_file(path: Path) -> GraphNode:
    """:func:`parse_graph_text` of a file; errors name the file."""
    text = read_graph_text(path)
    try:
        return parse_graph_text(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None


def render_graph_text(calculator: Calculator, options: Message, *, queue_max_size: str | None = "AUTO") -> str:
    """graph.pbtxt text for one calculator node, in the layout (and with the header) OVMS's export_model.py writes.

    Printed by protobuf's text_format, so any option value (quotes, backslashes, unicode) reads back exactly.
    """
    if not isinstance(options, calculator.options_type):
        raise TypeError(f"{calculator.name} takes {calculator.options_name}, not {type(options).__name__}")
    streams = calculator_pb2.CalculatorGraphConfig(input_stream=[_REQUEST_STREAM], output_stream=[_RESPONSE_STREAM])
    graph = calculator_pb2.CalculatorGraphConfig()
    node = graph.node.add(name=calculator.node_name, calculator=calculator.name,
                          input_side_packet=[calculator.side_packet],
                          input_stream=[_REQUEST_STREAM], output_stream=[_RESPONSE_STREAM])
    try:
        node.node_options.add().Pack(options)
    except EncodeError as exc:
        raise ConfigError(f"cannot write graph.pbtxt: {exc}") from None
    # Streams first, then the node, as OVMS lays it out (text_format alone orders by field number).
    body = "".join(text_format.MessageToString(part, descriptor_pool=_pool.POOL, as_utf8=True)
                   for part in (streams, graph))
    return (f"# {QUEUE_HEADER_KEY}: {queue_max_size}\n" if queue_max_size else "") + body
