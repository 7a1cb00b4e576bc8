"""Compare an exported classifier IR (with its in-graph head) with transformers'
``AutoModelForSequenceClassification`` on built-in texts and text pairs: the largest logit difference, the
largest probability difference and how often both pick the same top label. Used after
``ovembed export --task classify``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ovembed.config import CompareConfig, WeightFormat
from ovembed.errors import ExportError
from ovembed.export.verify_rerank import DOCUMENTS, QUERIES
from ovembed.heads.classify import ClassifyHead, activate

# On the logits. The fp32 value is OpenVINO's f32 arithmetic against PyTorch's; the others were chosen to
# match rerank's measured spread on tiny random models (fp16 ~1e-3, int8 ~0.05), with room for real logits.
DEFAULT_MAX_LOGIT_DIFF = {
    WeightFormat.FP32: 1e-3,
    WeightFormat.FP16: 0.05,
    WeightFormat.INT8: 0.5,
    WeightFormat.INT4: 1.0,
}
# Share of inputs whose top label (argmax) is the reference's (ties under 1e-6 ignored).
DEFAULT_MIN_AGREEMENT = {
    WeightFormat.FP32: 1.0,
    WeightFormat.FP16: 0.99,
    WeightFormat.INT8: 0.9,
    WeightFormat.INT4: 0.85,
}
_TIE = 1e-6

Text = str | tuple[str, str]


def builtin_inputs() -> list[Text]:
    """Single texts (the rerank set's documents and queries) and (premise, hypothesis)-style pairs."""
    pairs: list[Text] = [(q, d) for q in QUERIES[:2] for d in DOCUMENTS]
    return [*DOCUMENTS, *QUERIES, *pairs]


@dataclass
class ClassifyComparison:
    inputs: list[Text]
    reference: np.ndarray  # logits [n, labels] from transformers
    exported: np.ndarray  # logits [n, labels] from the IR
    problem_type: str
    max_diff_threshold: float
    min_agreement: float

    @property
    def max_diff(self) -> float:
        return float(np.max(np.abs(self.reference - self.exported))) if self.inputs else 0.0

    @property
    def max_prob_diff(self) -> float:
        if not self.inputs:
            return 0.0
        kind = self.problem_type  # type: ignore[assignment]
        return float(np.max(np.abs(activate(self.reference, kind) - activate(self.exported, kind))))  # type: ignore[arg-type]

    @property
    def agreement(self) -> float:
        """Share of inputs with the same top label, leaving out those whose reference top two tie."""
        same = total = 0
        for ref, got in zip(self.reference, self.exported, strict=True):
            top2 = np.sort(ref)[-2:]
            if top2[1] - top2[0] < _TIE:
                continue
            total += 1
            same += int(np.argmax(ref) == np.argmax(got))
        return same / total if total else 1.0

    @property
    def passed(self) -> bool:
        return self.max_diff <= self.max_diff_threshold and self.agreement >= self.min_agreement

    def summary(self) -> str:
        lines = [f"{'max |diff|':>10} {'ref top':>7} {'ov top':>6}  input"]
        for text, ref, got in zip(self.inputs, self.reference, self.exported, strict=True):
            shown = (" | ".join(text) if isinstance(text, tuple) else text).replace("\n", " ")
            lines.append(f"{float(np.max(np.abs(ref - got))):10.6f} {int(np.argmax(ref)):7d} {int(np.argmax(got)):6d}  "
                         f"{shown[:60]}{'...' if len(shown) > 60 else ''}")
        lines.append(f"max logit difference {self.max_diff:.6f} (threshold {self.max_diff_threshold}), "
                     f"top-label agreement {self.agreement:.3f} (threshold {self.min_agreement}) over "
                     f"{len(self.inputs)} inputs -> {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def _encode(tok: object, batch: Sequence[Text], max_length: int) -> dict[str, np.ndarray]:
    singles = [t for t in batch if isinstance(t, str)]
    if len(singles) == len(batch):
        return tok(list(batch), truncation=True, max_length=max_length, padding=True,  # type: ignore[operator, no-any-return]
                   return_tensors="np")
    if singles:
        raise ValueError("a batch mixes texts and pairs")
    return tok([a for a, _ in batch], [b for _, b in batch], truncation=True,  # type: ignore[operator, no-any-return]
               max_length=max_length, padding=True, return_tensors="np")


def _batches(inputs: Sequence[Text], size: int = 16) -> list[list[Text]]:
    """Runs of texts and runs of pairs, at most ``size`` each (a tokenizer call takes one kind)."""
    out: list[list[Text]] = []
    for item in inputs:
        if out and len(out[-1]) < size and isinstance(out[-1][0], str) == isinstance(item, str):
            out[-1].append(item)
        else:
            out.append([item])
    return out


def reference_logits(source: Path, inputs: Sequence[Text], *, max_length: int,
                     trust_remote_code: bool) -> np.ndarray:
    """``AutoModelForSequenceClassification`` logits, fp32 on CPU."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(str(source), trust_remote_code=trust_remote_code,
                                                               torch_dtype=torch.float32).eval()
    out = []
    with torch.inference_mode():
        for batch in _batches(inputs):
            enc = _encode(tok, batch, max_length)
            feed = {k: torch.from_numpy(v) for k, v in enc.items()}
            out.append(model(**feed).logits.float().numpy())
    return np.concatenate(out).astype(np.float32)


def exported_logits(model_dir: Path, inputs: Sequence[Text], *, head: ClassifyHead, max_length: int,
                    trust_remote_code: bool) -> np.ndarray:
    """Logits from the exported IR plus head, fed ids and mask from the HF tokenizer (token types come from
    the head, as when serving)."""
    import openvino as ov
    from transformers import AutoTokenizer

    from ovembed.heads.classify import add_classify_head

    tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    core = ov.Core()
    model = add_classify_head(core.read_model(model_dir / "openvino_model.xml"), head)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    names = {name for port in compiled.inputs for name in port.get_names()}
    labels = len(head.labels)
    out = []
    for batch in _batches(inputs):
        enc = _encode(tok, batch, max_length)
        feed = {k: v for k, v in enc.items() if k in names}
        out.append(np.asarray(compiled(feed)[0], dtype=np.float32)[:, :labels])
    return np.concatenate(out) if out else np.empty((0, labels), dtype=np.float32)


def compare_classifier(model_dir: Path, source: Path, inputs: Sequence[Text], *, head: ClassifyHead,
                       max_length: int, max_diff: float, min_agreement: float,
                       trust_remote_code: bool) -> ClassifyComparison:
    ref = reference_logits(source, inputs, max_length=max_length, trust_remote_code=trust_remote_code)
    got = exported_logits(model_dir, inputs, head=head, max_length=max_length, trust_remote_code=trust_remote_code)
    return ClassifyComparison(list(inputs), ref, got, head.problem_type, max_diff, min_agreement)


def compare_classify_folder(cfg: CompareConfig, record: dict[str, object],
                            log: Callable[[str], None] = print) -> ClassifyComparison:
    """`ovembed compare` on a classify folder: its recorded head against transformers, on ``--input`` texts
    (default: the built-in texts and pairs), with the thresholds it was exported against."""
    from ovembed.export.source import inspect_source

    model_dir = Path(cfg.model_path)
    source_name = cfg.source_model or record.get("source_path") or record.get("source_model")
    if not source_name:
        raise ExportError(f"{model_dir} does not record its source model: pass --source_model")
    source = inspect_source(str(source_name))
    try:
        head = ClassifyHead.from_record(record.get("classify_head"))
    except ValueError as exc:
        raise ExportError(f"{model_dir}: {exc}") from None
    max_length = int(record.get("max_length") or source.max_length)  # type: ignore[call-overload]
    weight_format = WeightFormat(record.get("weight_format", "fp32"))
    max_diff, min_agreement = DEFAULT_MAX_LOGIT_DIFF[weight_format], DEFAULT_MIN_AGREEMENT[weight_format]
    verification = record.get("verification")
    if isinstance(verification, dict):
        max_diff = float(verification.get("threshold", max_diff))
        min_agreement = float(verification.get("min_agreement", min_agreement))
    inputs: list[Text] = list(cfg.input) if cfg.input else builtin_inputs()
    log(f"comparing {model_dir} ({weight_format.value}, classify) with transformers reference {source.path}, "
        f"{len(inputs)} inputs")
    return compare_classifier(model_dir, source.path, inputs, head=head, max_length=max_length, max_diff=max_diff,
                              min_agreement=min_agreement, trust_remote_code=cfg.trust_remote_code)
