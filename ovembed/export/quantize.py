"""Weight compression with NNCF (weight-only, as OVMS's export does), and the fp16/fp32 saves.

``--extra_quantization_params`` takes optimum-cli's weight-compression options (OVMS passes the string to
optimum-cli verbatim) and maps each onto :func:`nncf.compress_weights`; any other option is refused with the
list of accepted ones. Data-aware options (``--awq``, ``--scale-estimation``, ``--gptq``, an activation
``--sensitivity-metric``) calibrate on ``--dataset``: ``builtin`` (ovembed's multilingual corpus) or a text file
with one text per line (Hub dataset names such as wikitext2 would need the network).
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, Sequence
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
    awq: bool = False
    scale_estimation: bool = False
    gptq: bool = False
    dataset: str | None = None  # "builtin" or a text file
    num_samples: int | None = None
    sensitivity_metric: str | None = None

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, False)}

    @property
    def data_aware(self) -> bool:
        return (self.awq or self.scale_estimation or self.gptq
                or self.sensitivity_metric not in (None, "weight_quantization_error"))

    def check(self, weight_format: WeightFormat) -> None:
        """Refuse combinations NNCF cannot run, before any work."""
        int4_only = [flag for flag, on in (("--awq", self.awq), ("--scale-estimation", self.scale_estimation),
                                           ("--gptq", self.gptq), ("--ratio", self.ratio is not None),
                                           ("--group-size", self.group_size is not None),
                                           ("--sensitivity-metric", self.sensitivity_metric is not None))
                     if on]
        if int4_only and weight_format is not WeightFormat.INT4:
            raise InvalidInput(f"--extra_quantization_params: {', '.join(int4_only)} apply to --weight-format int4 "
                               f"(mixed precision), not {weight_format.value}")
        if self.data_aware and self.dataset is None:
            raise InvalidInput("--extra_quantization_params: --awq, --scale-estimation, --gptq and activation "
                               "sensitivity metrics need --dataset (builtin, or a file with one text per line)")
        if self.dataset is not None and self.dataset not in ("builtin", "auto") and not Path(self.dataset).is_file():
            raise InvalidInput(f"--extra_quantization_params: --dataset {self.dataset}: not 'builtin' and not a "
                               "text file; ovembed calibrates on its built-in corpus or your texts, not on Hub "
                               "datasets (offline)")


# optimum-cli's weight-compression options ovembed maps onto NNCF.
ACCEPTED_OPTIONS = ("--group-size", "--ratio", "--sym", "--all-layers", "--backup-precision", "--awq",
                    "--scale-estimation", "--gptq", "--dataset", "--num-samples", "--sensitivity-metric", "--library")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments"):
            message += f" (accepted: {', '.join(ACCEPTED_OPTIONS)})"
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
    parser.add_argument("--awq", action="store_true")
    parser.add_argument("--scale-estimation", "--scale_estimation", dest="scale_estimation", action="store_true")
    parser.add_argument("--gptq", action="store_true")
    parser.add_argument("--dataset")
    parser.add_argument("--num-samples", "--num_samples", dest="num_samples", type=int)
    parser.add_argument("--sensitivity-metric", "--sensitivity_metric", dest="sensitivity_metric",
                        choices=["weight_quantization_error", "hessian_input_activation", "mean_activation_variance",
                                 "max_activation_variance", "mean_activation_magnitude"])
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise InvalidInput(f"--extra_quantization_params: {exc}") from None
    ns = parser.parse_args(tokens)
    if ns.ratio is not None and not 0.0 < ns.ratio <= 1.0:
        raise InvalidInput("--extra_quantization_params: --ratio must be in (0, 1]")
    if ns.group_size is not None and (ns.group_size == 0 or ns.group_size < -1):
        raise InvalidInput("--extra_quantization_params: --group-size must be -1 or positive")
    if ns.num_samples is not None and ns.num_samples < 1:
        raise InvalidInput("--extra_quantization_params: --num-samples must be at least 1")
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
        kwargs["backup_mode"] = nncf.BackupMode(params.backup_precision)  # values: none, int8_sym, int8_asym
    for flag in ("awq", "scale_estimation", "gptq"):
        if getattr(params, flag):
            kwargs[flag] = True
    if params.sensitivity_metric is not None:
        kwargs["sensitivity_metric"] = nncf.SensitivityMetric(params.sensitivity_metric)
    return kwargs


Feed = dict[str, Any]


def calibration_texts(params: QuantizationParams) -> list[str]:
    """The texts ``--dataset`` names (optimum-cli's default of 128 samples)."""
    from ovembed.export.static_quant import load_calibration

    samples = params.num_samples or 128
    file = None if params.dataset in (None, "builtin", "auto") else Path(str(params.dataset))
    return load_calibration(file, samples).texts


def _feeds(model: Any, tokenize: Callable[[str], dict[str, Any]], texts: Sequence[str]) -> list[Feed]:
    """One input dict per text, keyed by the IR's input names (what nncf.Dataset iterates)."""
    import numpy as np

    names = {name for port in model.inputs for name in port.get_names()}
    feeds = []
    for text in texts:
        feed = {k: np.asarray(v, dtype=np.int64) for k, v in tokenize(text).items() if k in names}
        if "token_type_ids" in names and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        if "position_ids" in names:
            feed["position_ids"] = np.arange(feed["input_ids"].shape[1], dtype=np.int64)[None, :]
        feeds.append(feed)
    return feeds


def compress_and_save(xml_path: Path, weight_format: WeightFormat, params: QuantizationParams,
                      tokenize: Callable[[str], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Rewrite the IR at ``xml_path`` in the requested weight format; return what was applied.

    ``tokenize`` (text -> numpy inputs) is needed for data-aware compression (``params.data_aware``).
    """
    import openvino as ov

    model = ov.Core().read_model(xml_path)
    applied: dict[str, Any] = {"weight_format": weight_format.value}
    if weight_format in (WeightFormat.INT8, WeightFormat.INT4):
        import logging

        import nncf

        nncf.set_log_level(logging.ERROR)  # no bit-width table or progress bar in our output

        kwargs = _nncf_kwargs(weight_format, params)
        if params.dataset is not None and weight_format is WeightFormat.INT4:
            if tokenize is None:
                raise ExportError("data-aware weight compression needs the tokenizer")
            texts = calibration_texts(params)
            kwargs["dataset"] = nncf.Dataset(_feeds(model, tokenize, texts))
            kwargs["subset_size"] = len(texts)
        try:
            model = nncf.compress_weights(model, **kwargs)
        except Exception as exc:  # NNCF reports unsupported shapes/options with various types
            raise ExportError(f"NNCF weight compression ({weight_format.value}) failed: {exc}") from exc
        applied["nncf"] = {k: (f"{len(texts)} texts from {params.dataset}" if k == "dataset" else str(v))
                           for k, v in kwargs.items()}
    tmp = xml_path.with_name(xml_path.stem + ".compressed.xml")
    ov.save_model(model, tmp, compress_to_fp16=weight_format is WeightFormat.FP16)
    del model
    tmp.replace(xml_path)
    tmp.with_suffix(".bin").replace(xml_path.with_suffix(".bin"))
    return applied
