"""Read a sentence-transformers folder's module chain, with its weights, into a
:class:`~ovembed.heads.st_modules.HeadSpec` (export side: loads the modules with sentence-transformers).

:func:`check_modules` runs before any work and refuses, in one line, a chain ovembed cannot compile;
:func:`read_head` loads the Dense and LayerNorm weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ovembed.config import Pooling
from ovembed.errors import ExportError
from ovembed.export.common import Log
from ovembed.heads.st_modules import (
    HeadSpec,
    Layer,
    ModuleEntry,
    UnmappableModule,
    check_chain,
    pooling_config,
    read_modules,
)

# torch.nn activation classes (as Dense stores them in its config) -> the head's names.
_ACTIVATIONS = {"Identity": "identity", "Tanh": "tanh", "ReLU": "relu", "Sigmoid": "sigmoid", "SiLU": "silu",
                "GELU": "gelu"}


def check_modules(folder: Path) -> list[ModuleEntry] | None:
    """modules.json of ``folder`` checked (None when it has none); ExportError naming the first module
    ovembed cannot map."""
    entries = read_modules(folder)
    if entries is None:
        return None
    try:
        check_chain(entries)
        for entry in entries:
            if entry.kind == "pooling":
                pooling_config(folder / entry.name)
            elif entry.kind == "dense":
                _dense_activation(folder / entry.name, entry)
    except UnmappableModule as exc:
        raise ExportError(f"cannot export {folder.name}: {exc}") from None
    return entries


def _dense_activation(folder: Path, entry: ModuleEntry) -> str:
    from ovembed.hf_files import read_json_object

    conf = read_json_object(folder / "config.json")
    name = str(conf.get("activation_function", "torch.nn.modules.activation.Tanh"))
    short = name.rsplit(".", 1)[-1]
    if short not in _ACTIVATIONS:
        raise UnmappableModule(f"module {entry.name} ({entry.cls}) uses activation {name}, which ovembed cannot map")
    return _ACTIVATIONS[short]


def _load_module(folder: Path, entry: ModuleEntry) -> Any:
    from sentence_transformers import models

    cls = {"dense": models.Dense, "layernorm": models.LayerNorm}[entry.kind]
    return cls.load(str(folder), subfolder=entry.name, local_files_only=True)


def _numpy(tensor: Any) -> np.ndarray:
    return np.asarray(tensor.detach().float().cpu().numpy(), dtype=np.float32)


def read_head(folder: Path, pooling: Pooling, pooling_given: bool, normalize: bool, log: Log) -> HeadSpec:
    """The head for ``folder``: its module chain, or the plain ``pooling`` when it has no modules.json.

    ``pooling_given``: --pooling replaces the chain's pooling modes.
    """
    entries = check_modules(folder)
    if entries is None:
        return HeadSpec.simple(pooling, normalize)
    modes: tuple[str, ...] = HeadSpec.simple(pooling, normalize).modes
    include_prompt = True
    layers: list[Layer] = []
    weights: dict[str, np.ndarray] = {}
    for entry in entries:
        if entry.kind == "pooling":
            modes, include_prompt = pooling_config(folder / entry.name)
        elif entry.kind == "normalize":
            layers.append(Layer("normalize", entry.name, entry.cls))
        elif entry.kind == "dense":
            module = _load_module(folder, entry)
            activation = _dense_activation(folder / entry.name, entry)
            if activation == "gelu" and getattr(module.activation_function, "approximate", "none") == "tanh":
                activation = "gelu_tanh"
            layers.append(Layer("dense", entry.name, entry.cls, activation, residual=bool(module.use_residual)))
            weights[f"{entry.name}/weight"] = _numpy(module.linear.weight)
            if module.linear.bias is not None:
                weights[f"{entry.name}/bias"] = _numpy(module.linear.bias)
            if module.use_residual and module.in_features != module.out_features:
                weights[f"{entry.name}/residual"] = _numpy(module.residual.weight)
        elif entry.kind == "layernorm":
            module = _load_module(folder, entry)
            layers.append(Layer("layernorm", entry.name, entry.cls, eps=float(module.norm.eps)))
            weights[f"{entry.name}/weight"] = _numpy(module.norm.weight)
            if module.norm.bias is not None:
                weights[f"{entry.name}/bias"] = _numpy(module.norm.bias)
    spec = HeadSpec(modes, include_prompt, tuple(layers), normalize, weights)
    if pooling_given:
        spec = spec.with_pooling(pooling)
    chain = " -> ".join([f"Pooling({'+'.join(spec.modes)}{'' if include_prompt else ', prompt excluded'})",
                         *(f"{layer.kind}({layer.name})" for layer in layers)])
    log(f"head: {chain}")
    if not spec.is_simple:
        log("note: OVMS's graph (EmbeddingsCalculatorOV) cannot represent this head (Dense, LayerNorm, "
            "multiple/max/weighted pooling or prompt exclusion): OVMS would serve other vectors; ovembed "
            "serves the whole chain")
    return spec


def chain_pooling(folder: Path, entries: list[ModuleEntry] | None) -> Pooling | None:
    """The graph.pbtxt pooling for a chain whose Pooling module the legacy detection does not name."""
    for entry in entries or []:
        if entry.kind == "pooling":
            modes, _ = pooling_config(folder / entry.name)
            return HeadSpec(modes).graph_pooling
    return None
