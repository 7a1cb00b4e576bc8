"""Tokenizer export: the HF tokenizer files and an OpenVINO tokenizer IR (openvino-tokenizers).

A tokenizer.json may declare fixed padding and truncation (MiniLM's pads and truncates to 128).
Those are stripped before saving and converting: truncation is a serving decision driven by the
model's recorded maximum, and padding is done per batch by the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ovembed.errors import ExportError

TOKENIZER_XML = "openvino_tokenizer.xml"


def load_hf_tokenizer(source: Path, *, max_length: int, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    except Exception as exc:  # transformers raises OSError/ValueError/... for bad folders
        raise ExportError(f"cannot load the tokenizer of {source}: {exc}") from exc
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        backend.no_padding()
        backend.no_truncation()
    tok.model_max_length = max_length
    if tok.pad_token is None and tok.eos_token is not None:  # decoder tokenizers often have none
        tok.pad_token = tok.eos_token
    return tok


def export_tokenizer(tok: Any, out_dir: Path, *, add_special_tokens: bool = True) -> Path:
    """Save the cleaned HF tokenizer files and openvino_tokenizer.xml/.bin into ``out_dir``.

    ``add_special_tokens=False`` writes the IR OVMS's rerank calculator expects (it adds the
    pair's special tokens itself); tokenizer.json keeps its pair template for ovembed.
    """
    import openvino as ov
    from openvino_tokenizers import convert_tokenizer

    tok.save_pretrained(str(out_dir))
    try:
        ov_tokenizer = convert_tokenizer(tok, with_detokenizer=False, add_special_tokens=add_special_tokens)
    except Exception as exc:  # openvino-tokenizers raises OVTypeError/NotImplementedError/...
        raise ExportError(f"openvino-tokenizers could not convert the tokenizer: {exc}") from exc
    path = out_dir / TOKENIZER_XML
    ov.save_model(ov_tokenizer, path)
    return path


def ov_tokenize(out_dir: Path, texts: list[str]) -> list[list[int]]:
    """Token ids from the exported tokenizer IR (unpadded), to check it against the HF tokenizer."""
    import numpy as np
    import openvino as ov
    import openvino_tokenizers  # noqa: F401  (registers the tokenizer operations)

    compiled = ov.Core().compile_model(out_dir / TOKENIZER_XML, "CPU")
    result = compiled([np.array(texts)])
    ids = result["input_ids"]
    mask = result["attention_mask"]
    return [[int(t) for t, m in zip(row, mrow, strict=True) if m] for row, mrow in zip(ids, mask, strict=True)]
