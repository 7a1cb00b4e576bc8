"""The sentence-transformers module chain after the Transformer, as a head ovembed compiles into the graph.

A sentence-transformers folder lists its modules in ``modules.json``: the Transformer, then modules mapping
token vectors to the output (Pooling, Dense, LayerNorm, Normalize, ...). :class:`HeadSpec` is that chain in
the form :func:`ovembed.heads.embeddings.add_head` appends to the IR: pooling modes (concatenated in
sentence-transformers' order), whether prompt tokens are pooled, and the layers after pooling, whose
weights live in ``ovembed_head.npz`` in the model folder. The export records the chain in
``ovembed_model.json`` (``"head"``); the server rebuilds it from there and refuses a folder whose
``modules.json`` holds a module the recorded chain lacks.

Standard library and numpy only: the server uses it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ovembed.config import Pooling
from ovembed.hf_files import read_json_object
from ovembed.layout import HEAD_WEIGHTS

WEIGHTS_FILENAME = HEAD_WEIGHTS
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
# Legacy Pooling config flags, in the order sentence-transformers concatenates the modes.
_LEGACY_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_MODE_OF_POOLING = {Pooling.CLS: "cls", Pooling.MEAN: "mean", Pooling.LAST: "lasttoken"}
ACTIVATIONS = ("identity", "tanh", "relu", "gelu", "gelu_tanh", "sigmoid", "silu")
# modules.json class names (last dotted part) and what ovembed does with them.
_KINDS = {"Transformer": "transformer", "Pooling": "pooling", "Dense": "dense", "LayerNorm": "layernorm",
          "Normalize": "normalize", "Dropout": "dropout"}


class UnmappableModule(ValueError):
    """A module of the chain the in-graph head cannot compute; the message is one line naming it."""


@dataclass(frozen=True)
class ModuleEntry:
    """One line of ``modules.json``."""

    name: str  # its folder ("2_Dense"; "" for the Transformer at the root)
    cls: str  # the class as modules.json names it
    kind: str  # one of _KINDS' values, or "" when ovembed has no mapping


@dataclass(frozen=True)
class Layer:
    """A layer after pooling: ``dense`` (weight ``[out, in]``, optional bias, activation, optional residual),
    ``layernorm`` (weight, bias, eps) or ``normalize`` (L2)."""

    kind: str
    name: str
    cls: str = ""
    activation: str = "identity"
    eps: float = 1e-5
    residual: bool = False

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name, "class": self.cls}
        if self.kind == "dense":
            out.update(activation=self.activation, residual=self.residual)
        elif self.kind == "layernorm":
            out["eps"] = self.eps
        return out


@dataclass(frozen=True)
class HeadSpec:
    modes: tuple[str, ...] = ("cls",)
    include_prompt: bool = True
    layers: tuple[Layer, ...] = ()
    normalize: bool = True  # the final L2 normalisation (graph.pbtxt normalize_embeddings)
    weights: Mapping[str, np.ndarray] = field(default_factory=dict)  # "<layer name>/weight" etc.

    @classmethod
    def simple(cls, pooling: Pooling, normalize: bool) -> HeadSpec:
        """The head OVMS's graph can describe: one pooling and the L2 normalisation."""
        return cls((_MODE_OF_POOLING[pooling],), True, (), normalize)

    @property
    def is_simple(self) -> bool:
        """Whether OVMS's EmbeddingsCalculatorOV computes the same vectors (one of its poolings, no layers)."""
        return (len(self.modes) == 1 and self.modes[0] in _MODE_OF_POOLING.values() and self.include_prompt
                and all(layer.kind == "normalize" for layer in self.layers))

    @property
    def graph_pooling(self) -> Pooling:
        """The graph.pbtxt pooling nearest to these modes (exact when :attr:`is_simple`)."""
        first = self.modes[0]
        for pooling, mode in _MODE_OF_POOLING.items():
            if mode == first:
                return pooling
        return Pooling.MEAN

    def with_pooling(self, pooling: Pooling) -> HeadSpec:
        return HeadSpec((_MODE_OF_POOLING[pooling],), self.include_prompt, self.layers, self.normalize, self.weights)

    def with_normalize(self, normalize: bool) -> HeadSpec:
        return HeadSpec(self.modes, self.include_prompt, self.layers, normalize, self.weights)

    def output_dim(self, hidden: int) -> int:
        dim = hidden * len(self.modes)
        for layer in self.layers:
            if layer.kind == "dense":
                dim = int(self.weights[f"{layer.name}/weight"].shape[0])
        return dim

    def record(self) -> dict[str, Any]:
        """The ``"head"`` of ovembed_model.json (weights go to :data:`WEIGHTS_FILENAME`)."""
        return {"pooling_modes": list(self.modes), "include_prompt": self.include_prompt,
                "modules": [layer.describe() for layer in self.layers],
                "weights_file": WEIGHTS_FILENAME if self.weights else None}

    def key(self) -> str:
        """What identifies the head's graph (keys the compiled-head cache)."""
        digest = hashlib.sha256()
        for name in sorted(self.weights):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(self.weights[name]).tobytes())
        return json.dumps({**self.record(), "normalize": self.normalize, "weights": digest.hexdigest()[:16]},
                          sort_keys=True)

    def save_weights(self, folder: Path) -> None:
        if self.weights:
            with open(Path(folder) / WEIGHTS_FILENAME, "wb") as fh:
                np.savez(fh, **{k: np.asarray(v, dtype=np.float32) for k, v in self.weights.items()})


def module_kind(cls: str) -> str:
    return _KINDS.get(cls.rsplit(".", 1)[-1], "")


def read_modules(folder: Path) -> list[ModuleEntry] | None:
    """``modules.json`` of ``folder`` (None when there is none or it is not a list)."""
    try:
        data = json.loads((Path(folder) / "modules.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, list):
        return None
    out = []
    for item in data:
        if isinstance(item, dict):
            cls = str(item.get("type", ""))
            out.append(ModuleEntry(str(item.get("path", "")), cls, module_kind(cls)))
    return out


def _label(entry: ModuleEntry) -> str:
    return f"{entry.name or '(root)'} ({entry.cls})"


def pooling_config(folder: Path) -> tuple[tuple[str, ...], bool]:
    """(modes, include_prompt) of a Pooling module's config.json, in sentence-transformers' order."""
    conf = read_json_object(Path(folder) / "config.json")
    raw = conf.get("pooling_mode")
    if isinstance(raw, str):
        modes: tuple[str, ...] = (raw,)
    elif isinstance(raw, list) and raw:
        modes = tuple(str(m) for m in raw)
    else:
        modes = tuple(mode for key, mode in _LEGACY_FLAGS.items() if conf.get(key) is True) or ("mean",)
    modes = tuple({"cls_token": "cls", "mean_tokens": "mean", "max_tokens": "max"}.get(m, m) for m in modes)
    bad = [m for m in modes if m not in POOLING_MODES]
    if bad:
        raise UnmappableModule(f"{folder.name}: pooling mode {bad[0]!r} is not one of {', '.join(POOLING_MODES)}")
    return modes, conf.get("include_prompt", True) is not False


def check_chain(entries: list[ModuleEntry]) -> None:
    """Raise :class:`UnmappableModule` (one line) for the first module no in-graph head computes."""
    for i, entry in enumerate(entries):
        if entry.kind == "":
            raise UnmappableModule(f"module {_label(entry)} of modules.json has no in-graph equivalent in ovembed")
        if entry.kind == "transformer" and i != 0:
            raise UnmappableModule(f"module {_label(entry)} of modules.json: a second Transformer is not supported")
    if entries and entries[0].kind != "transformer":
        raise UnmappableModule(f"module {_label(entries[0])} of modules.json: the chain must start with a Transformer")
    if sum(e.kind == "pooling" for e in entries) > 1:
        raise UnmappableModule("modules.json holds more than one Pooling module")


def load_head(folder: Path, record: Mapping[str, Any], normalize: bool) -> HeadSpec | None:
    """The head ovembed_model.json records for ``folder`` (None for a record without one)."""
    head = record.get("head")
    if not isinstance(head, dict):
        return None
    weights: dict[str, np.ndarray] = {}
    if head.get("weights_file"):
        with np.load(Path(folder) / str(head["weights_file"]), allow_pickle=False) as npz:
            weights = {name: np.asarray(npz[name], dtype=np.float32) for name in npz.files}
    layers = tuple(Layer(str(m["kind"]), str(m["name"]), str(m.get("class", "")), str(m.get("activation", "identity")),
                         float(m.get("eps", 1e-5)), bool(m.get("residual", False)))
                   for m in head.get("modules", []))
    return HeadSpec(tuple(head.get("pooling_modes") or ("cls",)), bool(head.get("include_prompt", True)), layers,
                    normalize, weights)


def unserved_modules(folder: Path, head: HeadSpec | None) -> str | None:
    """Why ``folder`` must not be served with ``head`` (None: the graph holds every module of its modules.json).

    ``head`` is what ovembed_model.json records, None when it records no chain (an OVMS export, or an
    ovembed export older than module chains), in which case only a plain Pooling, Normalize and Dropout are
    served: anything else would give vectors other than sentence-transformers'.
    """
    entries = read_modules(folder)
    if entries is None:
        return None
    recorded = {layer.name for layer in head.layers} if head is not None else set()
    for entry in entries:
        if entry.kind in ("transformer", "dropout") or entry.name in recorded:
            continue
        if entry.kind == "normalize":  # L2 scale only: graph.pbtxt's normalize_embeddings decides it
            continue
        if entry.kind == "pooling":
            try:
                modes, include_prompt = pooling_config(Path(folder) / entry.name)
            except UnmappableModule as exc:
                return str(exc)
            if head is not None and ((set(modes) != set(head.modes) and len(head.modes) > 1)
                                     or include_prompt != head.include_prompt):
                return (f"modules.json's {_label(entry)} pools {'+'.join(modes)} (include_prompt {include_prompt}) "
                        f"but the graph pools {'+'.join(head.modes)} (include_prompt {head.include_prompt})")
            if head is None and (len(modes) > 1 or modes[0] not in _MODE_OF_POOLING.values() or not include_prompt):
                return (f"modules.json's {_label(entry)} pools {'+'.join(modes)} (include_prompt {include_prompt}), "
                        "which the graph (one of CLS, MEAN, LAST over every token) does not; export it with "
                        "ovembed export")
            continue
        return (f"modules.json lists {_label(entry)}, which the served graph does not contain; "
                "export the model with ovembed export to compile it into the graph")
    return None


def prompt_token_count(prompt_ids: list[int], special_ids: set[int]) -> int:
    """Tokens of a prompt excluded from pooling, counted as sentence-transformers counts them: the prompt
    tokenized alone, less a trailing special token (EOS, SEP)."""
    count = len(prompt_ids)
    return count - 1 if prompt_ids and prompt_ids[-1] in special_ids else count


def mark_prompt(input_ids: np.ndarray, attention_mask: np.ndarray, count: int) -> np.ndarray:
    """``input_ids`` with the first ``count`` real tokens of each row (after any left padding) sent as
    ``-1 - id``: the head's mark for tokens pooling excludes (:mod:`ovembed.heads.embeddings`)."""
    ids = np.array(input_ids, copy=True)
    first = np.argmax(attention_mask > 0, axis=1)
    positions = np.arange(ids.shape[1])[None, :]
    marked = (positions >= first[:, None]) & (positions < first[:, None] + count) & (ids >= 0)
    ids[marked] = -1 - ids[marked]
    return ids


def served_head(folder: Path, record: Mapping[str, Any], pooling: Pooling, normalize: bool) -> HeadSpec:
    """The head to serve ``folder`` with: the chain ovembed_model.json records (its single OVMS pooling
    replaced by graph.pbtxt's ``pooling`` when they differ), else ``pooling`` alone. Raises
    :class:`UnmappableModule` when the folder's modules.json holds a module that head lacks."""
    head = load_head(folder, record, normalize)
    reason = unserved_modules(folder, head)
    if reason is not None:
        raise UnmappableModule(reason)
    if head is None:
        return HeadSpec.simple(pooling, normalize)
    if len(head.modes) == 1 and head.modes[0] in _MODE_OF_POOLING.values() and head.graph_pooling is not pooling:
        return head.with_pooling(pooling)
    return head
