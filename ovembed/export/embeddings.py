"""`ovembed export` of an embeddings model: convert (or take an OpenVINO IR as published),
compress, export the tokenizer, and verify against the PyTorch reference, inside the pipeline's
temporary folder (:mod:`ovembed.export.pipeline` owns the folder and its atomic rename)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovembed.config import ExportConfig, Pooling, Quantization, Task, WeightFormat
from ovembed.errors import ExportError
from ovembed.export.common import Log, plugin_config
from ovembed.export.source import SourceModel, inspect_source
from ovembed.export.static_quant import STATIC_MIN_COSINE, Calibration
from ovembed.export.task import Choices, ExportTask, choose_prompts, require_passed
from ovembed.graphs import GraphOptions, write_graph
from ovembed.hf_files import read_json_object
from ovembed.prompts import PromptSet, read_model_prompts

if TYPE_CHECKING:
    from ovembed.export.quantize import QuantizationParams

__all__ = ["EmbeddingsExport", "choose_pooling", "choose_prompts"]


def choose_pooling(cfg: ExportConfig, source: SourceModel, log: Log) -> Pooling:
    if cfg.pooling is not None:
        log(f"pooling: {cfg.pooling.value} (from --pooling)")
        return cfg.pooling
    if source.pooling_detected is not None:
        log(f"pooling: {source.pooling_detected.value} (from the model's sentence-transformers Pooling config)")
        return source.pooling_detected
    log("pooling: CLS (default; the model has no 1_Pooling/config.json)")
    return Pooling.CLS


def _own_prompt_names(source: SourceModel, prompts: PromptSet) -> list[str]:
    """Names whose text is the model's own (verified with sentence-transformers' prompt_name)."""
    own, _ = read_model_prompts(source.path)
    return [name for name, text in prompts.prompts.items() if own.get(name) == text]


def _threshold(cfg: ExportConfig, weight_format: WeightFormat) -> float:
    if cfg.min_cosine is not None:
        return cfg.min_cosine
    from ovembed.export.verify import DEFAULT_MIN_COSINE

    return STATIC_MIN_COSINE if cfg.quantization is Quantization.STATIC else DEFAULT_MIN_COSINE[weight_format]


def _static_int8(cfg: ExportConfig, source: SourceModel, pooling: Pooling, calibration: Calibration,
                 xml: Path, log: Log) -> dict[str, Any]:
    from ovembed.export.static_quant import quantize_static
    from ovembed.export.tokenizer import load_hf_tokenizer
    from ovembed.export.verify import SENTENCES, reference_embeddings

    use_st = source.is_sentence_transformers and source.pooling_detected is pooling

    def reference(texts: list[str]) -> Any:
        return reference_embeddings(source.path, texts, pooling=pooling, max_length=source.max_length,
                                    trust_remote_code=cfg.trust_remote_code, use_sentence_transformers=use_st)

    tok = load_hf_tokenizer(source.path, max_length=source.max_length, trust_remote_code=cfg.trust_remote_code)
    return quantize_static(xml, tok, calibration, max_length=source.max_length, pooling=pooling,
                           reference=reference, gate_texts=SENTENCES, threshold=_threshold(cfg, cfg.weight_format),
                           log=log)


def _tokenize_for(cfg: ExportConfig, source: SourceModel) -> Callable[[str], dict[str, Any]]:
    """text -> numpy model inputs with the source's HF tokenizer (data-aware weight compression)."""
    from ovembed.export.tokenizer import load_hf_tokenizer

    tok = load_hf_tokenizer(source.path, max_length=source.max_length, trust_remote_code=cfg.trust_remote_code)
    return lambda text: dict(tok([text], truncation=True, max_length=source.max_length, return_tensors="np"))


class EmbeddingsExport(ExportTask):
    """A sentence-embeddings model: hidden states, pooled and normalised in the graph (``heads.embeddings``)."""

    task = Task.EMBEDDINGS
    hf_task = "feature-extraction"
    static_quantization = True
    recorded_task = False

    def check(self) -> Choices:
        return Choices(choose_pooling(self.cfg, self.source, self.log), choose_prompts(self.cfg, self.source, self.log))

    def fields(self) -> dict[str, Any]:
        return {"pooling": self.choices.pooling.value, "normalize": not self.cfg.skip_normalize,
                "dimensions": self.source.hidden_size, **self._prompt_fields()}

    def refreshed_fields(self) -> dict[str, Any]:
        return {"pooling": self.choices.pooling.value, "normalize": not self.cfg.skip_normalize,
                **self._prompt_fields()}

    def _prompt_fields(self) -> dict[str, Any]:
        prompts = self.choices.prompts
        return {"prompts": dict(prompts.prompts), "default_prompt_name": prompts.default_name}

    def build(self, params: QuantizationParams, calibration: Calibration | None) -> dict[str, Any]:
        if params.library == "sentence_transformers":
            self.log("note: --library sentence_transformers: converting through transformers; "
                     "ovembed applies the model's pooling and normalisation inside the OpenVINO graph")
        return super().build(params, calibration)

    def compress(self, xml: Path, params: QuantizationParams, calibration: Calibration | None) -> dict[str, Any]:
        from ovembed.export.quantize import compress_and_save

        if calibration is not None:
            return _static_int8(self.cfg, self.source, self.choices.pooling, calibration, xml, self.log)
        tokenize = _tokenize_for(self.cfg, self.source) if params.dataset is not None else None
        return compress_and_save(xml, self.cfg.weight_format, params, tokenize)

    def check_ir(self) -> None:
        architectures = read_json_object(self.source.path / "config.json").get("architectures") or []
        if any(str(a).endswith("ForSequenceClassification") for a in architectures):
            raise ExportError(f"{self.cfg.source_model} is a cross-encoder (sequence classification): export it "
                              "with --task rerank")
        super().check_ir()

    def verify(self, reference: Path, weight_format: WeightFormat) -> dict[str, Any]:
        from ovembed.export.verify import SENTENCES, compare

        cfg, source, log, pooling, prompts = self.cfg, self.source, self.log, self.choices.pooling, self.choices.prompts
        ref = source if reference == source.path else inspect_source(str(reference))
        threshold = _threshold(cfg, weight_format)
        use_st = ref.is_sentence_transformers and ref.pooling_detected is pooling
        log(f"verifying against the PyTorch reference ({'sentence-transformers' if use_st else 'transformers'}),"
            f" {len(SENTENCES)} sentences" + (f", {len(prompts.prompts)} prompt(s)" if prompts.prompts else ""))
        result = compare(self.work, ref.path, list(SENTENCES), pooling=pooling, max_length=source.max_length,
                         threshold=threshold, trust_remote_code=cfg.trust_remote_code,
                         use_sentence_transformers=use_st, prompts=prompts.prompts,
                         own_prompts=_own_prompt_names(ref, prompts))
        log(f"  min cosine {result.min_cosine:.6f} (threshold {threshold})")
        if result.tokenizer_mismatches:
            log(f"  warning: openvino_tokenizer.xml differs from the HF tokenizer on "
                f"{len(result.tokenizer_mismatches)} of {len(SENTENCES)} sentences (ovembed serves with "
                "tokenizer.json; OVMS uses the IR)")
        require_passed(result)
        return {"min_cosine": result.min_cosine, "threshold": threshold, "texts": len(result.texts),
                "tokenizer_ir_mismatches": len(result.tokenizer_mismatches)}

    def write_graph(self, folder: Path) -> None:
        cfg = self.cfg
        write_graph(folder, GraphOptions(models_path="./", normalize_embeddings=not cfg.skip_normalize,
                                         pooling=self.choices.pooling, truncate=cfg.truncate,
                                         target_device=cfg.target_device, plugin_config=plugin_config(cfg)))
