"""`ovembed export --task rerank`: a cross-encoder (sequence classification, one logit) as OVMS's
``rerank_ov`` exports it: optimum-intel ``text-classification`` IR, NNCF weight compression,
the HF tokenizer (pair template kept) and an OpenVINO tokenizer IR without special tokens (what
OVMS's RerankCalculatorOV expects), verified against ``sentence_transformers.CrossEncoder``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovembed.config import Task
from ovembed.errors import ExportError
from ovembed.export.common import Log, plugin_config
from ovembed.export.convert import IR_XML
from ovembed.export.task import Choices, ExportTask, require_architecture, require_passed
from ovembed.graphs import RerankGraphOptions, write_rerank_graph
from ovembed.heads.rerank import RerankHead, separator_for_token_types
from ovembed.hf_files import read_json_object

if TYPE_CHECKING:
    from ovembed.config import ExportConfig, WeightFormat
    from ovembed.export.source import SourceModel


def check_cross_encoder(source: SourceModel) -> None:
    """Refuse, before any work, models that are not one-logit sequence classifiers (causal LMs are
    decoder rerankers: :mod:`ovembed.export.decoder_rerank`)."""
    config = require_architecture(source, Task.RERANK, "a cross-encoder", "ForSequenceClassification")
    labels = config.get("id2label")
    num_labels = len(labels) if isinstance(labels, dict) else int(config.get("num_labels", 2))
    if num_labels != 1:
        raise ExportError(f"--task rerank needs a cross-encoder with one logit; {source.path} has {num_labels} "
                          "labels (a classifier, not a reranker)")


_ACTIVATION_PATHS = {"Sigmoid": "sigmoid", "Identity": "identity"}


def declared_activation(root: Path) -> str:
    """The CrossEncoder activation the folder declares (sentence-transformers keeps it in
    config.json or config_sentence_transformers.json); sigmoid, its default for one logit."""
    config = read_json_object(root / "config.json")
    st = config.get("sentence_transformers")
    path = (st.get("activation_fn") if isinstance(st, dict) else None) \
        or config.get("sbert_ce_default_activation_function") \
        or read_json_object(root / "config_sentence_transformers.json").get("activation_fn")
    if not path:
        return "sigmoid"
    name = _ACTIVATION_PATHS.get(str(path).rsplit(".", 1)[-1])
    if name is None:
        raise ExportError(f"{root} declares the CrossEncoder activation {path}; ovembed supports "
                          f"{', '.join(_ACTIVATION_PATHS)}")
    return name


def head_for(tok: Any, activation: str) -> RerankHead:
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise ExportError("--task rerank needs a fast (tokenizer.json) tokenizer")
    if backend.num_special_tokens_to_add(True) <= backend.num_special_tokens_to_add(False):
        raise ExportError("the tokenizer has no pair template (query and document would run together); "
                          "a cross-encoder's tokenizer.json must define one")
    try:
        sep = separator_for_token_types(backend)
    except ValueError as exc:
        raise ExportError(f"unsupported pair template: {exc}") from None
    return RerankHead(label=0, activation=activation, sep_token_id=sep)  # type: ignore[arg-type]


def verify_scores(cfg: ExportConfig, work: Path, reference: Path, head: RerankHead, max_length: int,
                  weight_format: WeightFormat, log: Log) -> dict[str, Any]:
    """Compare the IR in ``work`` (plus ``head``) with the CrossEncoder ``reference``; raise when it
    fails; the record's ``verification``."""
    from ovembed.export.verify_rerank import (
        DEFAULT_MAX_SCORE_DIFF,
        DEFAULT_MIN_RANK_AGREEMENT,
        builtin_pairs,
        compare_scores,
    )

    max_diff = cfg.max_score_diff if cfg.max_score_diff is not None else DEFAULT_MAX_SCORE_DIFF[weight_format]
    min_agree = (cfg.min_rank_agreement if cfg.min_rank_agreement is not None
                 else DEFAULT_MIN_RANK_AGREEMENT[weight_format])
    pairs = builtin_pairs()
    log(f"verifying against sentence_transformers.CrossEncoder, {len(pairs)} (query, document) pairs")
    result = compare_scores(work, reference, pairs, head=head, max_length=max_length, max_diff=max_diff,
                            min_agreement=min_agree, trust_remote_code=cfg.trust_remote_code)
    log(f"  max score difference {result.max_diff:.6f} (threshold {max_diff}), "
        f"rank agreement {result.rank_agreement:.3f} (threshold {min_agree})")
    require_passed(result)
    return {"max_score_diff": result.max_diff, "threshold": max_diff, "rank_agreement": result.rank_agreement,
            "min_rank_agreement": min_agree, "pairs": len(pairs)}


class RerankExport(ExportTask):
    """A cross-encoder scoring (query, document) pairs with one logit (``heads.rerank``)."""

    task = Task.RERANK
    hf_task = "text-classification"
    ir_converts_tokenizer = True  # the tokenizer IR must be without special tokens
    special_tokens = False  # OVMS adds the pair's special tokens itself
    reference_name = "CrossEncoder"

    def __init__(self, cfg: ExportConfig, source: SourceModel, log: Log) -> None:
        super().__init__(cfg, source, log)
        self.head: RerankHead | None = None

    def check(self) -> Choices:
        check_cross_encoder(self.source)
        return Choices()  # a rerank head scores pairs: no pooling, no prompts

    def use_tokenizer(self, tok: Any) -> None:
        self.head = head_for(tok, declared_activation(self.source.path))

    def fields(self) -> dict[str, Any]:
        assert self.head is not None
        return {"rerank_head": self.head.describe(), "max_doc_length": self.cfg.max_doc_length}

    def refreshed_fields(self) -> dict[str, Any]:
        return {"max_doc_length": self.cfg.max_doc_length}

    def check_ir(self) -> None:
        from ovembed.export.ir_source import check_ir_outputs

        check_ir_outputs(self.source.path / IR_XML, rerank=True)

    def verify(self, reference: Path, weight_format: WeightFormat) -> dict[str, Any]:
        assert self.head is not None
        return verify_scores(self.cfg, self.work, reference, self.head, self.source.max_length, weight_format,
                             self.log)

    def write_graph(self, folder: Path) -> None:
        write_rerank_graph(folder, RerankGraphOptions(models_path="./", max_allowed_chunks=self.cfg.max_allowed_chunks,
                                                      target_device=self.cfg.target_device,
                                                      plugin_config=plugin_config(self.cfg)))
