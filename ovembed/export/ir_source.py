"""A source that already is OpenVINO IR (the ``OpenVINO/*-ov`` repositories on the Hub, or such a folder):
used as it is, without conversion or torch, as OVMS's pull mode copies it.

The IR and its tokenizer IR are copied into the export's temporary folder with the tokenizer and
sentence-transformers files; a missing tokenizer IR is converted with openvino-tokenizers (transformers'
tokenizer only, no torch). Verification runs where a PyTorch reference exists: the source folder's own
weights (``*.safetensors``/``pytorch_model*.bin``), or ``--reference_model``.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ovembed.config import WeightFormat
from ovembed.errors import ExportError, MissingDependency

IR_XML = "openvino_model.xml"
IR_BIN = "openvino_model.bin"
TOKENIZER_IRS = ("openvino_tokenizer.xml", "openvino_tokenizer.bin", "openvino_detokenizer.xml",
                 "openvino_detokenizer.bin")
# Small files kept next to the IR: tokenizer, configs, sentence-transformers metadata (never weights).
_KEEP_SUFFIXES = {".json", ".txt", ".model", ".tiktoken", ".vocab", ".merges"}
_SKIP_NAMES = {"model.safetensors.index.json", "pytorch_model.bin.index.json"}
_WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin")

Log = Callable[[str], None]


def is_ir_folder(path: Path) -> bool:
    return (path / IR_XML).is_file() and (path / IR_BIN).is_file()


def has_pytorch_weights(path: Path) -> bool:
    return any(any(path.glob(pattern)) for pattern in _WEIGHT_GLOBS)


def require_ir_stack(need_tokenizer_conversion: bool) -> None:
    """What using an IR as it is needs: OpenVINO, and for a missing tokenizer IR openvino-tokenizers
    and transformers (never torch)."""
    needed = ["openvino", *(("openvino_tokenizers", "transformers") if need_tokenizer_conversion else ())]
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependency(f"using an OpenVINO IR source needs {', '.join(missing)}: "
                                f"pip install {' '.join(m.replace('_', '-') for m in missing)}")


def ir_weight_format(xml: Path) -> WeightFormat:
    """The dominant weight element type of the IR: int4 / int8 when compressed, else fp16 or fp32."""
    import numpy as np
    import openvino as ov

    try:
        model = ov.Core().read_model(xml)
    except RuntimeError as exc:
        raise ExportError(f"OpenVINO cannot read {xml}: {str(exc).strip().splitlines()[-1]}") from None
    sizes: dict[str, int] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant" or not op.get_output_partial_shape(0).is_static:
            continue
        shape = op.get_output_partial_shape(0)
        count = int(np.prod([d.get_length() for d in shape])) if len(shape) else 1
        if count >= 1024:
            kind = op.get_output_element_type(0).get_type_name()
            sizes[kind] = sizes.get(kind, 0) + count
    if any(t in sizes for t in ("u4", "i4", "nf4")):
        return WeightFormat.INT4
    if any(t in sizes for t in ("u8", "i8")):
        return WeightFormat.INT8
    if sizes and max(sizes, key=lambda k: sizes[k]) in ("f16", "bf16"):
        return WeightFormat.FP16
    return WeightFormat.FP32


def check_ir_outputs(xml: Path, *, rerank: bool) -> None:
    """Refuse an IR whose outputs are not what the task serves: hidden states (or one pooled vector) for
    embeddings, one logit per pair for rerank."""
    import openvino as ov

    model = ov.Core().read_model(xml)
    outputs = [(", ".join(sorted(o.get_names())) or "?", o.get_partial_shape()) for o in model.outputs]
    ranks = [shape.rank.get_length() if shape.rank.is_static else -1 for _, shape in outputs]
    found = "; ".join(f"{names} {shape}" for names, shape in outputs)
    if rerank:
        last = outputs[0][1][-1] if ranks == [2] else None
        if last is None or (last.is_static and last.get_length() != 1):
            raise ExportError(f"--task rerank needs an IR with one output of one logit per pair; {xml} has: {found}")
    elif 3 not in ranks and ranks != [2]:
        raise ExportError(f"{xml} outputs neither hidden states (last_hidden_state) nor one embedding: {found}")


def copy_ir(source: Path, work: Path) -> list[str]:
    """Copy the IR, the tokenizer IRs present and the small metadata files into ``work``; the names
    of the tokenizer IR files copied."""
    for name in (IR_XML, IR_BIN):
        shutil.copy2(source / name, work / name)
    copied = []
    for name in TOKENIZER_IRS:
        if (source / name).is_file():
            shutil.copy2(source / name, work / name)
            copied.append(name)
    for path in source.rglob("*"):
        rel = path.relative_to(source)
        if (not path.is_file() or path.suffix not in _KEEP_SUFFIXES or path.name in _SKIP_NAMES
                or any(part.startswith(".") for part in rel.parts)):
            continue
        target = work / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return copied


def prepare_tokenizer(source: Path, work: Path, *, max_length: int, trust_remote_code: bool,
                      add_special_tokens: bool = True) -> str:
    """Make sure ``work`` has tokenizer.json (ovembed serves with it) and openvino_tokenizer.xml (OVMS does):
    taken from the source when there, else made with transformers' tokenizer and openvino-tokenizers.
    Returns where the tokenizer IR came from."""
    has_ir = (work / "openvino_tokenizer.xml").is_file()
    if has_ir and (work / "tokenizer.json").is_file():
        return "from the source"
    from ovembed.export.tokenizer import export_tokenizer, load_hf_tokenizer

    tok = load_hf_tokenizer(source, max_length=max_length, trust_remote_code=trust_remote_code)
    if has_ir:  # only tokenizer.json is missing (a slow tokenizer's vocab files): write it
        tok.save_pretrained(str(work))
        if not (work / "tokenizer.json").is_file():
            raise ExportError(f"{source} has no tokenizer.json and its tokenizer has no fast version to write one")
        return "from the source"
    export_tokenizer(tok, work, add_special_tokens=add_special_tokens)
    return "converted with openvino-tokenizers"


def resolve_reference(reference_model: str | None, source: Path, *, revision: str | None, token: str | None,
                      quiet: bool) -> Path | None:
    """The PyTorch reference to verify an IR source against: ``--reference_model`` (a folder or Hub id),
    else the source's own weights when it has them, else none."""
    if reference_model is None:
        return source if has_pytorch_weights(source) else None
    from ovembed.export.source import resolve_source_path

    path, _ = resolve_source_path(reference_model, revision=None, token=token, quiet=quiet)
    if is_ir_folder(path) and not has_pytorch_weights(path):
        raise ExportError(f"--reference_model {reference_model} is OpenVINO IR too: it must hold PyTorch weights "
                          "(*.safetensors or pytorch_model.bin)")
    return path


def describe_ir_use(weight_format: WeightFormat, asked: WeightFormat, tokenizer_origin: str, log: Log) -> None:
    log(f"using the OpenVINO IR as published: no conversion, weights {weight_format.value}, "
        f"tokenizer IR {tokenizer_origin}")
    if asked is not weight_format:
        log(f"  note: --weight-format {asked.value} does not apply to an IR source (its weights are "
            f"{weight_format.value}); export from the PyTorch model to choose the compression")


def ir_record_fields(tokenizer_origin: str, copied: list[str]) -> dict[str, Any]:
    return {"source_format": "openvino_ir", "tokenizer_ir": tokenizer_origin,
            "quantization": {"applied": "as published", "copied": [IR_XML, IR_BIN, *copied]}}
