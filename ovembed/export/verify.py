"""Compare the exported IR with the PyTorch reference (sentence-transformers, or transformers
plus the chosen pooling), on built-in sentences after export and on user texts with
``ovembed compare``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.config import CompareConfig, Pooling, WeightFormat
from ovembed.errors import ExportError
from ovembed.heads.st_modules import HeadSpec, mark_prompt, prompt_token_count

if TYPE_CHECKING:
    from ovembed.export.verify_classify import ClassifyComparison
    from ovembed.export.verify_rerank import ScoreComparison
    from ovembed.export.verify_sparse import SparseComparison

# Varied on purpose: short and long, punctuation, numbers, code, several languages and scripts.
SENTENCES: tuple[str, ...] = (
    "Hello world",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "The quick brown fox jumps over the lazy dog.",
    "OpenVINO accelerates deep learning inference on Intel CPUs, GPUs and NPUs.",
    "I can't believe it's already 2026!",
    "Prices rose 3.5% in Q3, to $1,299.99 per unit.",
    "def add(a, b):\n    return a + b",
    "SELECT name, email FROM users WHERE created_at > '2024-01-01';",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Le chat dort sur le canapé depuis ce matin.",
    "El aprendizaje automático transforma la industria.",
    "東京は日本の首都です。",
    "Машинное обучение меняет мир.",
    "emoji test 🚀🔥 with symbols & < > \" '",
    "a",
    "   leading and trailing spaces   ",
    "Embeddings map text to vectors so that similar meanings are close together in the vector space, "
    "which makes semantic search, clustering, deduplication and retrieval-augmented generation possible.",
    "The mitochondria is the powerhouse of the cell; it produces ATP through oxidative phosphorylation.",
    "Terms and conditions apply. See store for details. Offer valid while supplies last.",
    "How do I reset my password if I no longer have access to my email account?",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    " ".join(["This sentence is repeated to make a long input that exceeds the maximum length."] * 40),
    "user@example.com visited https://example.org/path?query=1#frag at 10:45",
)

PROMPT_SENTENCES = 6  # sentences verified under each prompt

DEFAULT_MIN_COSINE = {
    WeightFormat.FP32: 0.9999,
    WeightFormat.FP16: 0.999,
    WeightFormat.INT8: 0.995,
    WeightFormat.INT4: 0.98,
}


@dataclass
class Comparison:
    texts: list[str]
    cosines: np.ndarray
    threshold: float
    tokenizer_mismatches: list[int] = field(default_factory=list)

    @property
    def min_cosine(self) -> float:
        return float(self.cosines.min())

    @property
    def passed(self) -> bool:
        """Embeddings decide. openvino_tokenizer.xml mismatches are reported, not fatal: ovembed
        serves with tokenizer.json; the IR tokenizer is for OVMS."""
        return self.min_cosine >= self.threshold

    def summary(self) -> str:
        lines = [f"{'cosine':>9}  text"]
        for text, cos in zip(self.texts, self.cosines, strict=True):
            short = text.replace("\n", " ")
            lines.append(f"{cos:9.6f}  {short[:70]}{'...' if len(short) > 70 else ''}")
        lines.append(f"min cosine {self.min_cosine:.6f} (threshold {self.threshold}) over {len(self.texts)} texts"
                     f" -> {'PASS' if self.passed else 'FAIL'}")
        if self.tokenizer_mismatches:
            lines.append(f"warning: openvino_tokenizer.xml differs from the HF tokenizer on texts "
                         f"{self.tokenizer_mismatches} (ovembed serves with tokenizer.json; OVMS would differ)")
        return "\n".join(lines)


def _pool_torch(hidden: Any, mask: Any, pooling: Pooling) -> Any:
    import torch

    if pooling is Pooling.CLS:
        return hidden[:, 0]
    if pooling is Pooling.MEAN:
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    positions = torch.arange(mask.shape[1]).unsqueeze(0) * mask  # last real token, any padding side
    return hidden[torch.arange(hidden.shape[0]), positions.max(1).values]


def reference_embeddings(source: Path, texts: list[str], *, pooling: Pooling, max_length: int,
                         trust_remote_code: bool, use_sentence_transformers: bool,
                         prompt: str = "", prompt_name: str | None = None) -> np.ndarray:
    """PyTorch reference vectors (not normalised: cosine does not care).

    ``prompt_name`` is one of the model's own prompts (sentence-transformers'
    ``encode(prompt_name=...)``); ``prompt`` is literal text put in front of every input.
    """
    import torch

    if use_sentence_transformers:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(source), device="cpu", trust_remote_code=trust_remote_code)
        st.max_seq_length = max_length
        extra: dict[str, Any] = {"prompt_name": prompt_name} if prompt_name else {"prompt": prompt}
        return np.asarray(st.encode(texts, convert_to_numpy=True, normalize_embeddings=False, **extra),
                          dtype=np.float32)
    texts = [prompt + text for text in texts]
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModel.from_pretrained(str(source), trust_remote_code=trust_remote_code).eval()
    out = []
    with torch.inference_mode():
        for text in texts:  # one at a time: no padding effects in the reference
            enc = tok([text], truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            out.append(_pool_torch(hidden, enc["attention_mask"], pooling)[0].float().numpy())
    return np.stack(out)


def ir_embeddings(model_dir: Path, texts: list[str], *, pooling: Pooling, max_length: int,
                  trust_remote_code: bool, head: HeadSpec | None = None, prompt: str = "") -> np.ndarray:
    """Vectors from the exported IR with the in-graph head (``head``, else ``pooling``), fed with the HF
    tokenizer's ids; ``prompt`` (already in front of each text) is marked as the server marks it when
    the head excludes prompt tokens."""
    import openvino as ov
    from transformers import AutoTokenizer

    from ovembed.heads.embeddings import add_head

    tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    core = ov.Core()
    spec = (head or HeadSpec.simple(pooling, False)).with_normalize(False)
    model = add_head(core.read_model(model_dir / "openvino_model.xml"), spec)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    names = {name for inp in compiled.inputs for name in inp.get_names()}
    enc = tok(texts, truncation=True, max_length=max_length, padding=True, return_tensors="np")
    if prompt and not spec.include_prompt:
        count = prompt_token_count(list(tok([prompt])["input_ids"][0]), set(tok.all_special_ids))
        enc["input_ids"] = mark_prompt(enc["input_ids"], enc["attention_mask"], count)
    feed = {k: v for k, v in enc.items() if k in names}
    if "token_type_ids" in names and "token_type_ids" not in feed:
        feed["token_type_ids"] = np.zeros_like(enc["input_ids"])
    if "position_ids" in names:
        mask = enc["attention_mask"]
        feed["position_ids"] = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
    return np.asarray(compiled(feed)[0], dtype=np.float32)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.asarray(np.sum(a * b, axis=1), dtype=np.float32)


def tokenizer_mismatches(model_dir: Path, texts: list[str], trust_remote_code: bool) -> list[int]:
    """Indexes of texts where openvino_tokenizer.xml and the HF tokenizer disagree."""
    from transformers import AutoTokenizer

    from ovembed.export.tokenizer import ov_tokenize

    tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    hf_ids = tok(texts)["input_ids"]
    ov_ids = ov_tokenize(model_dir, texts)
    return [i for i, (a, b) in enumerate(zip(hf_ids, ov_ids, strict=True)) if list(a) != list(b)]


def compare(model_dir: Path, source: Path, texts: list[str], *, pooling: Pooling, max_length: int,
            threshold: float, trust_remote_code: bool, use_sentence_transformers: bool,
            prompts: Mapping[str, str] | None = None, own_prompts: Collection[str] = (),
            head: HeadSpec | None = None) -> Comparison:
    """IR vs reference on ``texts``, plus the first few of them under each of ``prompts``
    (``own_prompts``: the names the source model itself defines)."""
    ref = reference_embeddings(source, texts, pooling=pooling, max_length=max_length,
                               trust_remote_code=trust_remote_code,
                               use_sentence_transformers=use_sentence_transformers)
    got = ir_embeddings(model_dir, texts, pooling=pooling, max_length=max_length,
                        trust_remote_code=trust_remote_code, head=head)
    mismatches = tokenizer_mismatches(model_dir, texts, trust_remote_code)
    labels, cosines = list(texts), [cosine_rows(ref, got)]
    for name, text in (prompts or {}).items():
        # The model's own prompts go through encode(prompt_name=...), so its configuration (not
        # our copy of the text) is the reference; --prompt additions through encode(prompt=...).
        own = name in (own_prompts or ())
        sample = list(texts[:PROMPT_SENTENCES])
        ref = reference_embeddings(source, sample, pooling=pooling, max_length=max_length,
                                   trust_remote_code=trust_remote_code,
                                   use_sentence_transformers=use_sentence_transformers,
                                   prompt=text, prompt_name=name if own and use_sentence_transformers else None)
        got = ir_embeddings(model_dir, [text + t for t in sample], pooling=pooling, max_length=max_length,
                            trust_remote_code=trust_remote_code, head=head, prompt=text)
        labels += [f"[prompt {name}] {t}" for t in sample]
        cosines.append(cosine_rows(ref, got))
    return Comparison(labels, np.concatenate(cosines), threshold, mismatches)


def compare_folder(cfg: CompareConfig, log: Callable[[str], None] = print
                   ) -> Comparison | ScoreComparison | SparseComparison | ClassifyComparison:
    """`ovembed compare`: an exported folder against its (or a given) PyTorch reference."""
    from ovembed.export import require_export_stack
    from ovembed.export.source import inspect_source
    from ovembed.graphs import ClassifyGraphOptions, GraphOptions, SparseGraphOptions, read_model_graph
    from ovembed.prompts import prompts_from_record, read_model_prompts
    from ovembed.repository import read_record
    from ovembed.serving.tasks.pooling import resolve_pooling

    require_export_stack()
    model_dir = Path(cfg.model_path)
    options = read_model_graph(model_dir)
    record = read_record(model_dir)
    if isinstance(options, ClassifyGraphOptions):
        from ovembed.export.verify_classify import compare_classify_folder

        return compare_classify_folder(cfg, record, log)
    if isinstance(options, SparseGraphOptions):
        from ovembed.export.verify_sparse import compare_sparse_folder

        return compare_sparse_folder(cfg, record, SENTENCES, log)
    if not isinstance(options, GraphOptions):  # a RerankCalculatorOV graph
        from ovembed.export.verify_rerank import compare_rerank_folder

        decoder = None
        if "rerank_template" in record:  # a decoder reranker
            from ovembed.export.verify_decoder_rerank import compare_decoder_folder as decoder
        return compare_rerank_folder(cfg, record, log, decoder=decoder)
    pooling = resolve_pooling(options.pooling, options.model_dir(model_dir), record).pooling
    source_name = cfg.source_model or record.get("source_path") or record.get("source_model")
    if not source_name:
        raise ExportError(f"{model_dir} does not record its source model: pass --source_model")
    source = inspect_source(str(source_name))
    max_length = int(record.get("max_length") or source.max_length)
    weight_format = WeightFormat(record.get("weight_format", "fp32"))
    use_st = source.is_sentence_transformers
    from ovembed.heads.st_modules import load_head

    head = load_head(options.model_dir(model_dir), record, False)
    log(f"comparing {model_dir} ({weight_format.value}, {pooling.value} pooling) with "
        f"{'sentence-transformers' if use_st else 'transformers'} reference {source.path}")
    prompts = prompts_from_record(record).prompts
    own, _ = read_model_prompts(source.path)
    return compare(model_dir, source.path, list(cfg.input) or list(SENTENCES), pooling=pooling,
                   max_length=max_length, threshold=DEFAULT_MIN_COSINE[weight_format],
                   trust_remote_code=cfg.trust_remote_code, use_sentence_transformers=use_st,
                   prompts=prompts, own_prompts=[n for n, t in prompts.items() if own.get(n) == t], head=head)
