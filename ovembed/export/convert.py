"""Convert a Hugging Face model to an fp32 OpenVINO IR with optimum-intel (task feature-extraction).

Pooling is not baked in here: the IR outputs ``last_hidden_state`` exactly like OVMS's export,
and pooling + normalisation are appended at load time (:mod:`ovembed.heads.embeddings`).
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

from ovembed.errors import ExportError
from ovembed.export.source import SourceModel

IR_XML = "openvino_model.xml"
IR_BIN = "openvino_model.bin"
# Small files worth keeping next to the IR (tokenizer, configs, sentence-transformers metadata).
_KEEP_SUFFIXES = {".json", ".txt", ".model", ".tiktoken", ".vocab", ".merges"}
_SKIP_NAMES = {"model.safetensors.index.json", "pytorch_model.bin.index.json"}


def convert_to_ir(source: SourceModel, out_dir: Path, *, trust_remote_code: bool,
                  task: str = "feature-extraction") -> Path:
    """Write openvino_model.xml/.bin (fp32 weights) plus the HF config files into ``out_dir``.

    ``task`` is optimum's: ``feature-extraction`` (embeddings) or ``text-classification`` (rerank).
    """
    from optimum.exporters.openvino import main_export
    from optimum.intel import OVConfig

    # optimum logs a lot at INFO; the pipeline prints its own progress.
    logging.getLogger("optimum").setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            # torch.jit tracing warns about data-dependent branches in every HF model; not actionable.
            warnings.filterwarnings("ignore", message=".*might cause the trace to be incorrect.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            main_export(
                model_name_or_path=str(source.path),
                output=out_dir,
                task=task,
                library_name="transformers",
                trust_remote_code=trust_remote_code,
                local_files_only=True,
                ov_config=OVConfig(dtype="fp32"),  # no automatic compression: quantize.py decides
                convert_tokenizer=False,
            )
    except ExportError:
        raise
    except Exception as exc:  # optimum/torch raise many kinds; report them as one export failure
        raise ExportError(f"conversion with optimum-intel failed: {type(exc).__name__}: {exc}") from exc
    xml = out_dir / IR_XML
    if not xml.is_file():
        raise ExportError(f"optimum-intel did not produce {IR_XML}")
    _copy_metadata(source.path, out_dir)
    return xml


def _copy_metadata(src: Path, out_dir: Path) -> None:
    """Copy tokenizer/config/sentence-transformers files (never weights) that are not there yet."""
    for path in src.rglob("*"):
        if not path.is_file() or path.suffix not in _KEEP_SUFFIXES or path.name in _SKIP_NAMES:
            continue
        rel = path.relative_to(src)
        if any(part.startswith(".") for part in rel.parts):
            continue
        target = out_dir / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
