"""Compare an exported rerank IR (with its in-graph head) with ``sentence_transformers.CrossEncoder``
on (query, document) pairs: the largest score difference and how often the two order a query's
documents the same way. Used after ``ovembed export --task rerank`` and by ``ovembed compare``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ovembed.config import CompareConfig, WeightFormat
from ovembed.errors import ExportError
from ovembed.heads.rerank import ACTIVATED, RerankHead

QUERIES: tuple[str, ...] = (
    "What is the capital of France?",
    "How do I reset my password?",
    "Wie schnell ist OpenVINO auf Intel CPUs?",
    "what is the capital of france",
)
DOCUMENTS: tuple[str, ...] = (
    "Paris is the capital and most populous city of France.",
    "Berlin is the capital of Germany.",
    "To reset your password, open Settings, choose Security and follow the link we email you.",
    "OpenVINO accelerates deep learning inference on Intel CPUs, GPUs and NPUs.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Le chat dort sur le canapé depuis ce matin.",
    "the quick brown fox jumps over the lazy dog",
    "Prices rose 3.5% in Q3, to $1,299.99 per unit.",
    " ".join(["Paris has many museums, bridges and cafés along the Seine."] * 30),  # longer than the model
)

# On the sigmoid score (0..1). Measured on 36 built-in pairs: fp16 0.0017-0.0028, int8 0.037-0.046
# (MiniLM cross-encoder and tiny random ones), int4 0.14 on MiniLM (tiny 32-wide models: 0.57, refused).
DEFAULT_MAX_SCORE_DIFF = {
    WeightFormat.FP32: 1e-4,
    WeightFormat.FP16: 5e-3,
    WeightFormat.INT8: 0.06,
    WeightFormat.INT4: 0.2,
}
# Share of a query's document pairs both sides order the same way (ties under 1e-6 ignored).
DEFAULT_MIN_RANK_AGREEMENT = {
    WeightFormat.FP32: 1.0,
    WeightFormat.FP16: 0.99,
    WeightFormat.INT8: 0.95,
    WeightFormat.INT4: 0.9,
}
_TIE = 1e-6

Pair = tuple[str, str]


def builtin_pairs() -> list[Pair]:
    return [(q, d) for q in QUERIES for d in DOCUMENTS]


@dataclass
class ScoreComparison:
    pairs: list[Pair]
    reference: np.ndarray  # activated scores, as CrossEncoder.predict returns them
    exported: np.ndarray
    max_diff_threshold: float
    min_agreement: float

    @property
    def max_diff(self) -> float:
        return float(np.max(np.abs(self.reference - self.exported))) if self.pairs else 0.0

    @property
    def rank_agreement(self) -> float:
        return rank_agreement(self.pairs, self.reference, self.exported)

    @property
    def passed(self) -> bool:
        return self.max_diff <= self.max_diff_threshold and self.rank_agreement >= self.min_agreement

    def summary(self) -> str:
        lines = [f"{'reference':>10} {'exported':>10}  query | document"]
        for (q, d), r, e in zip(self.pairs, self.reference, self.exported, strict=True):
            text = f"{q} | {d}".replace("\n", " ")
            lines.append(f"{r:10.6f} {e:10.6f}  {text[:60]}{'...' if len(text) > 60 else ''}")
        lines.append(f"max score difference {self.max_diff:.6f} (threshold {self.max_diff_threshold}), "
                     f"rank agreement {self.rank_agreement:.3f} (threshold {self.min_agreement}) over "
                     f"{len(self.pairs)} pairs -> {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def rank_agreement(pairs: Sequence[Pair], reference: np.ndarray, exported: np.ndarray) -> float:
    """Over every query, the share of its document pairs ordered the same way by both scores."""
    by_query: dict[str, list[int]] = {}
    for i, (q, _) in enumerate(pairs):
        by_query.setdefault(q, []).append(i)
    same = total = 0
    for rows in by_query.values():
        for a_pos, a in enumerate(rows):
            for b in rows[a_pos + 1:]:
                gap = reference[a] - reference[b]
                if abs(gap) < _TIE:
                    continue
                total += 1
                same += int(np.sign(gap) == np.sign(exported[a] - exported[b]))
    return same / total if total else 1.0


def reference_scores(source: Path, pairs: Sequence[Pair], *, max_length: int,
                     trust_remote_code: bool) -> np.ndarray:
    """``CrossEncoder.predict`` with the model's own activation (sigmoid for one logit)."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(source), device="cpu", max_length=max_length, trust_remote_code=trust_remote_code)
    scores = model.predict(list(pairs), batch_size=16, show_progress_bar=False, convert_to_numpy=True)
    return np.asarray(scores, dtype=np.float32).reshape(-1)


def exported_scores(model_dir: Path, pairs: Sequence[Pair], *, head: RerankHead, max_length: int,
                    trust_remote_code: bool) -> np.ndarray:
    """Scores from the exported IR plus head, fed ids and mask from the HF tokenizer (token
    types come from the head, as when serving)."""
    import openvino as ov
    from transformers import AutoTokenizer

    from ovembed.heads.rerank import add_rerank_head

    tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    core = ov.Core()
    model = add_rerank_head(core.read_model(model_dir / "openvino_model.xml"), head)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    names = {name for port in compiled.inputs for name in port.get_names()}
    out = []
    for start in range(0, len(pairs), 16):
        chunk = pairs[start:start + 16]
        enc = tok([q for q, _ in chunk], [d for _, d in chunk], truncation=True, max_length=max_length,
                  padding=True, return_tensors="np")
        feed = {k: v for k, v in enc.items() if k in names}
        out.append(np.asarray(compiled(feed)[0], dtype=np.float32)[:, ACTIVATED])
    return np.concatenate(out) if out else np.empty(0, dtype=np.float32)


def compare_scores(model_dir: Path, source: Path, pairs: Sequence[Pair], *, head: RerankHead, max_length: int,
                   max_diff: float, min_agreement: float, trust_remote_code: bool) -> ScoreComparison:
    ref = reference_scores(source, pairs, max_length=max_length, trust_remote_code=trust_remote_code)
    got = exported_scores(model_dir, pairs, head=head, max_length=max_length, trust_remote_code=trust_remote_code)
    return ScoreComparison(list(pairs), ref, got, max_diff, min_agreement)


def compare_rerank_folder(cfg: CompareConfig, record: dict[str, object], log: Callable[[str], None] = print, *,
                          decoder: Callable[..., ScoreComparison] | None = None) -> ScoreComparison:
    """`ovembed compare` on a rerank folder: its recorded head against the CrossEncoder reference, or, for a
    decoder reranker, ``decoder`` (:func:`ovembed.export.verify_decoder_rerank.compare_decoder_folder`)."""
    from ovembed.export.source import inspect_source

    model_dir = Path(cfg.model_path)
    source_name = cfg.source_model or record.get("source_path") or record.get("source_model")
    if not source_name:
        raise ExportError(f"{model_dir} does not record its source model: pass --source_model")
    source = inspect_source(str(source_name))
    max_length = int(record.get("max_length") or source.max_length)  # type: ignore[call-overload]
    weight_format = WeightFormat(record.get("weight_format", "fp32"))
    head = _folder_head(model_dir, record)
    if cfg.input:
        pairs = [(cfg.query or QUERIES[0], doc) for doc in cfg.input]
    elif cfg.query:
        pairs = [(cfg.query, doc) for doc in DOCUMENTS]
    else:
        pairs = builtin_pairs()
    max_diff, min_agreement = _recorded_thresholds(record, weight_format)
    if decoder is not None:  # a decoder reranker: its model card's transformers recipe
        log(f"comparing {model_dir} ({weight_format.value}, decoder rerank) with the transformers recipe on "
            f"{source.path}, {len(pairs)} pairs")
        return decoder(model_dir, source.path, pairs, record, max_length=max_length, max_diff=max_diff,
                       min_agreement=min_agreement, trust_remote_code=cfg.trust_remote_code)
    log(f"comparing {model_dir} ({weight_format.value}, rerank) with sentence_transformers.CrossEncoder "
        f"reference {source.path}, {len(pairs)} pairs")
    return compare_scores(model_dir, source.path, pairs, head=head, max_length=max_length,
                          max_diff=max_diff, min_agreement=min_agreement,
                          trust_remote_code=cfg.trust_remote_code)


def _recorded_thresholds(record: dict[str, object], weight_format: WeightFormat) -> tuple[float, float]:
    """The thresholds the folder was exported against (``--max_score_diff`` may have set them),
    else the weight format's defaults."""
    verification = record.get("verification")
    max_diff, min_agreement = DEFAULT_MAX_SCORE_DIFF[weight_format], DEFAULT_MIN_RANK_AGREEMENT[weight_format]
    if isinstance(verification, dict):
        max_diff = float(verification.get("threshold", max_diff))
        min_agreement = float(verification.get("min_rank_agreement", min_agreement))
    return max_diff, min_agreement


def _folder_head(model_dir: Path, record: dict[str, object]) -> RerankHead:
    """The recorded head, or for OVMS-written folders the one serving would derive."""
    from tokenizers import Tokenizer

    from ovembed.heads.rerank import separator_for_token_types
    from ovembed.hf_files import read_json_object

    config = read_json_object(model_dir / "config.json")
    labels = config.get("id2label")
    num_labels = len(labels) if isinstance(labels, dict) else 1
    try:
        head = RerankHead.from_record(record.get("rerank_head"), num_labels=num_labels)
        if record.get("rerank_head") is None:
            backend = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            head = RerankHead(label=head.label, sep_token_id=separator_for_token_types(backend))
    except (ValueError, OSError) as exc:
        raise ExportError(f"{model_dir}: {exc}") from None
    return head
