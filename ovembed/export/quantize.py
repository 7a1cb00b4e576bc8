"""Weight compression with NNCF (weight-only, as OVMS's export does), and the fp16/fp32 saves.

``--extra_quantization_params`` takes optimum-cli style options; the ones that shape weight
compression are passed to :func:`nncf.compress_weights`, the rest are validated and reported.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovembed.config import WeightFormat
from ovembed.errors import ExportError, InvalidInput

# Embedding encoders are small and sensitive: optimum-cli's LLM-oriented int4 default (group 128,
# every layer in int4) gives MiniLM a min cosine of 0.93 against PyTorch. Group 32 with half of the
# layers in int4 (NNCF ranks them by weight quantization error; the rest stay int8) gives 0.988.
INT4_DEFAULT_GROUP_SIZE = 32
INT4_DEFAULT_RATIO = 0.5


@dataclass(frozen=True)
class QuantizationParams:
    group_size: int | None = None  # int4 only; -1 = per channel
    ratio: float | None = None  # int4 only: share of layers in int4 (rest in backup precision)
    sym: bool = False
    all_layers: bool = False
    backup_precision: str | None = None
    library: str = "transformers"

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, False)}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise InvalidInput(f"--extra_quantization_params: {message}")


def parse_extra_params(text: str | None) -> QuantizationParams:
    """Parse e.g. ``--group-size 64 --ratio 0.8 --sym --library sentence_transformers``."""
    if not text:
        return QuantizationParams()
    parser = _Parser(prog="--extra_quantization_params", add_help=False)
    parser.add_argument("--group-size", "--group_size", dest="group_size", type=int)
    parser.add_argument("--ratio", type=float)
    parser.add_argument("--sym", action="store_true")
    parser.add_argument("--all-layers", "--all_layers", dest="all_layers", action="store_true")
    parser.add_argument("--backup-precision", "--backup_precision", dest="backup_precision",
                        choices=["none", "int8_sym", "int8_asym"])
    parser.add_argument("--library", choices=["transformers", "sentence_transformers"], default="transformers")
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise InvalidInput(f"--extra_quantization_params: {exc}") from None
    ns = parser.parse_args(tokens)
    if ns.ratio is not None and not 0.0 < ns.ratio <= 1.0:
        raise InvalidInput("--extra_quantization_params: --ratio must be in (0, 1]")
    if ns.group_size is not None and (ns.group_size == 0 or ns.group_size < -1):
        raise InvalidInput("--extra_quantization_params: --group-size must be -1 or positive")
    return QuantizationParams(**vars(ns))


def _nncf_kwargs(weight_format: WeightFormat, params: QuantizationParams) -> dict[str, Any]:
    import nncf

    if weight_format is WeightFormat.INT8:
        mode = nncf.CompressWeightsMode.INT8_SYM if params.sym else nncf.CompressWeightsMode.INT8_ASYM
        return {"mode": mode}
    mode = nncf.CompressWeightsMode.INT4_SYM if params.sym else nncf.CompressWeightsMode.INT4_ASYM
    kwargs: dict[str, Any] = {
        "mode": mode,
        "group_size": params.group_size if params.group_size is not None else INT4_DEFAULT_GROUP_SIZE,
        "ratio": params.ratio if params.ratio is not None else INT4_DEFAULT_RATIO,
        "all_layers": params.all_layers,
    }
    if params.backup_precision is not None:
        backup = params.backup_precision
        kwargs["backup_mode"] = nncf.BackupMode(backup.upper() if backup != "none" else "none")
    return kwargs


def compress_and_save(xml_path: Path, weight_format: WeightFormat, params: QuantizationParams) -> dict[str, Any]:
    """Rewrite the IR at ``xml_path`` in the requested weight format; return what was applied."""
    import openvino as ov

    model = ov.Core().read_model(xml_path)
    applied: dict[str, Any] = {"weight_format": weight_format.value}
    if weight_format in (WeightFormat.INT8, WeightFormat.INT4):
        import logging

        import nncf

        nncf.set_log_level(logging.ERROR)  # no bit-width table or progress bar in our output

        kwargs = _nncf_kwargs(weight_format, params)
        try:
            model = nncf.compress_weights(model, **kwargs)
        except Exception as exc:  # NNCF reports unsupported shapes/options with various types
            raise ExportError(f"NNCF weight compression ({weight_format.value}) failed: {exc}") from exc
        applied["nncf"] = {k: str(v) for k, v in kwargs.items()}
    tmp = xml_path.with_name(xml_path.stem + ".compressed.xml")
    ov.save_model(model, tmp, compress_to_fp16=weight_format is WeightFormat.FP16)
    del model
    tmp.replace(xml_path)
    tmp.with_suffix(".bin").replace(xml_path.with_suffix(".bin"))
    return applied
