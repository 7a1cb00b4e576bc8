"""Static int8 (weights and activations) with NNCF, calibrated on texts, gated on accuracy.

``ovembed export --weight-format int8 --quantization static`` runs :func:`quantize_static` in
place of weight compression: :func:`nncf.quantize` with the transformer preset and SmoothQuant
on a calibration corpus (built in, :data:`CORPUS`, or ``--calibration_file``), then the gate:
the min cosine between the quantized IR's embeddings and the PyTorch reference, on texts
disjoint from the calibration ones (:data:`ovembed.export.verify.SENTENCES`), must reach the
threshold (0.99 by default). When it does not, the feed-forward down-projections (the
MatMuls fed by GELU/ReLU/Swish, whose heavy-tailed inputs int8 serves worst: on MiniLM they
move the min cosine from 0.985 to 0.996) stay in float; when that still misses,
:func:`nncf.quantize_with_accuracy_control` reverts the most sensitive operations; when even
that misses, the export fails and writes nothing.

int8 activations pay off on CPUs with int8 dot-product instructions (VNNI, AMX); on AVX2-only
CPUs they are slower than fp32 (``ovembed devices`` says which this machine is).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.config import Pooling
from ovembed.errors import ExportError

if TYPE_CHECKING:
    import openvino as ov

STATIC_MIN_COSINE = 0.99
SMOOTH_QUANT_ALPHA = 0.95  # NNCF's and optimum-intel's choice for transformer MatMuls
_CORPUS_FILE = "calibration_texts.txt"
_MAX_ACCURACY_ITERATIONS = 8  # accuracy control reverts at most this many groups of operations
_ACTIVATIONS = frozenset({"Gelu", "Relu", "Swish", "HSwish", "Mish"})

Feed = dict[str, np.ndarray]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Calibration:
    """The calibration texts and where they came from (recorded in ovembed_model.json)."""

    texts: list[str]
    source: str  # "builtin" or the file's path

    def describe(self) -> dict[str, Any]:
        digest = hashlib.sha256("\n".join(self.texts).encode()).hexdigest()
        return {"source": self.source, "samples": len(self.texts), "sha256": digest}


def builtin_sentences() -> list[str]:
    """The packaged sentences: queries, prose, code, numbers, chat, ~25 languages and scripts."""
    text = resources.files("ovembed.export").joinpath(_CORPUS_FILE).read_text(encoding="utf-8")
    return [line.replace("\\n", "\n") for line in text.splitlines() if line.strip()]


def builtin_corpus(num_samples: int, seed: int = 0) -> list[str]:
    """``num_samples`` texts with lengths spread like real traffic: each packaged sentence alone
    (queries, short documents), then paragraphs of 2-5 and passages of 8-20 sentences
    (documents that fill the model's maximum length), shuffled with a fixed seed."""
    sentences = builtin_sentences()
    rng = random.Random(seed)
    texts = list(sentences)
    while len(texts) < max(num_samples, len(sentences) + 2):
        size = rng.randint(2, 5) if rng.random() < 0.7 else rng.randint(8, 20)
        texts.append(" ".join(rng.sample(sentences, size)))
    rng.shuffle(texts)
    return texts[:num_samples]


def load_calibration(file: Path | None, num_samples: int) -> Calibration:
    """The built-in corpus, or the first ``num_samples`` non-empty lines of ``file``."""
    if num_samples < 1:
        raise ExportError("--num_samples must be at least 1")
    if file is None:
        return Calibration(builtin_corpus(num_samples), "builtin")
    try:
        lines = Path(file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"cannot read --calibration_file {file}: {exc}") from None
    texts = [line for line in lines if line.strip()][:num_samples]
    if not texts:
        raise ExportError(f"--calibration_file {file} has no text (one text per line)")
    return Calibration(texts, str(file))


def _feeds(tokenizer: Any, model: ov.Model, texts: Sequence[str], max_length: int) -> list[Feed]:
    """One unpadded single-text input dict per text, keyed by the IR's input names."""
    names = {name for port in model.inputs for name in port.get_names()}
    out: list[Feed] = []
    for text in texts:
        enc = tokenizer([text], truncation=True, max_length=max_length, return_tensors="np")
        feed = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items() if k in names}
        ids = feed["input_ids"]
        if "token_type_ids" in names and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(ids)
        if "position_ids" in names:
            feed["position_ids"] = np.arange(ids.shape[1], dtype=np.int64)[None, :]
        out.append(feed)
    return out


def _pool(hidden: np.ndarray, pooling: Pooling) -> np.ndarray:
    """Pool one unpadded ``[1, tokens, hidden]`` output."""
    if pooling is Pooling.CLS:
        return hidden[0, 0]
    if pooling is Pooling.LAST:
        return hidden[0, -1]
    return hidden[0].mean(axis=0)


def _min_cosine(compiled: Any, feeds: Iterable[tuple[Feed, np.ndarray]], pooling: Pooling) -> float:
    worst = 1.0
    for feed, ref in feeds:
        got = _pool(np.asarray(compiled(feed)[0], dtype=np.float32), pooling)
        cos = float(got @ ref / max(float(np.linalg.norm(got) * np.linalg.norm(ref)), 1e-12))
        worst = min(worst, cos)
    return worst


def sensitive_matmuls(model: ov.Model) -> list[str]:
    """MatMuls whose input comes straight from an activation function (the feed-forward
    down-projections of a transformer encoder)."""
    return [op.get_friendly_name() for op in model.get_ordered_ops()
            if op.get_type_name() == "MatMul"
            and op.input_value(0).get_node().get_type_name() in _ACTIVATIONS]


def _compile(model: ov.Model) -> Any:
    import openvino as ov

    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def quantize_static(xml_path: Path, tokenizer: Any, calibration: Calibration, *, max_length: int,
                    pooling: Pooling, reference: Callable[[list[str]], np.ndarray],
                    gate_texts: Sequence[str], threshold: float = STATIC_MIN_COSINE,
                    log: Log = lambda _: None) -> dict[str, Any]:
    """Rewrite the fp32 IR at ``xml_path`` as static int8; return what was applied.

    ``reference(texts)`` gives the PyTorch embeddings of the gate texts.
    """
    import logging

    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import (
        AdvancedAccuracyRestorerParameters,
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )

    nncf.set_log_level(logging.ERROR)
    model = ov.Core().read_model(xml_path)
    calib = nncf.Dataset(_feeds(tokenizer, model, calibration.texts, max_length))
    refs = reference(list(gate_texts))
    gate = list(zip(_feeds(tokenizer, model, gate_texts, max_length), refs, strict=True))
    advanced = AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=SMOOTH_QUANT_ALPHA))
    common: dict[str, Any] = {"model_type": nncf.ModelType.TRANSFORMER,
                              "subset_size": len(calibration.texts)}
    applied: dict[str, Any] = {
        "weight_format": "int8", "mode": "static", "preset": "mixed (NNCF transformer default)",
        "smooth_quant_alpha": SMOOTH_QUANT_ALPHA, "calibration": calibration.describe(),
        "gate": {"texts": len(gate), "threshold": threshold},
    }
    log(f"  static int8: calibrating on {len(calibration.texts)} texts ({calibration.source})")
    try:
        quantized = nncf.quantize(model, calib, advanced_parameters=advanced, **common)
    except Exception as exc:  # NNCF reports unsupported graphs with various types
        raise ExportError(f"NNCF static quantization failed: {exc}") from exc
    achieved = _min_cosine(_compile(quantized), gate, pooling)
    log(f"  static int8: min cosine {achieved:.6f} vs PyTorch (gate {threshold})")
    applied["accuracy_control"] = False
    applied["float_operations"] = []
    if achieved < threshold and (kept := sensitive_matmuls(model)):
        log(f"  static int8: below the gate; keeping the {len(kept)} feed-forward down-projections "
            "in float")
        ignored = nncf.IgnoredScope(names=kept)
        try:
            quantized = nncf.quantize(model, calib, advanced_parameters=advanced,
                                      ignored_scope=ignored, **common)
        except Exception as exc:
            raise ExportError(f"NNCF static quantization failed: {exc}") from exc
        achieved = _min_cosine(_compile(quantized), gate, pooling)
        applied["float_operations"] = kept
        common["ignored_scope"] = ignored
        log(f"  static int8: min cosine {achieved:.6f}")
    if achieved < threshold:
        log("  static int8: below the gate; NNCF accuracy control keeps the most sensitive "
            "operations in float")
        reference_metric = _min_cosine(_compile(model), gate, pooling)
        restorer = AdvancedAccuracyRestorerParameters(max_num_iterations=_MAX_ACCURACY_ITERATIONS)
        try:
            quantized = nncf.quantize_with_accuracy_control(
                model, calib, nncf.Dataset(gate),
                lambda compiled, data: _min_cosine(compiled, data, pooling),
                max_drop=max(0.0, reference_metric - threshold), drop_type=nncf.DropType.ABSOLUTE,
                advanced_quantization_parameters=advanced,
                advanced_accuracy_restorer_parameters=restorer, **common)
        except Exception as exc:
            raise ExportError(f"NNCF accuracy-controlled quantization failed: {exc}") from exc
        achieved = _min_cosine(_compile(quantized), gate, pooling)
        applied["accuracy_control"] = True
        log(f"  static int8 with accuracy control: min cosine {achieved:.6f}")
        if achieved < threshold:
            raise ExportError(
                f"static int8 misses the accuracy gate even with NNCF accuracy control: min cosine "
                f"{achieved:.6f} < {threshold} vs the PyTorch reference; nothing was written. Use "
                "--quantization weight_only, more representative --calibration_file texts, or a "
                "lower --min_cosine")
    applied["gate"]["min_cosine"] = achieved
    tmp = xml_path.with_name(xml_path.stem + ".static.xml")
    ov.save_model(quantized, tmp, compress_to_fp16=False)
    del quantized, model
    tmp.replace(xml_path)
    tmp.with_suffix(".bin").replace(xml_path.with_suffix(".bin"))
    return applied
