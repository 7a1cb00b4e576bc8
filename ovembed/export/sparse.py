"""`ovembed export --task sparse`: a SPLADE-style masked LM (``*ForMaskedLM``) as optimum-intel's
``fill-mask`` IR (logits ``[batch, seq, vocab]``), NNCF weight compression, the HF tokenizer and an
OpenVINO tokenizer IR, verified against the PyTorch masked LM with the SPLADE head
(:mod:`ovembed.export.verify_sparse`). The head itself (:mod:`ovembed.heads.sparse`) is appended in-graph
when serving and verifying, as pooling is for embeddings models.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovembed.config import Task
from ovembed.errors import ExportError
from ovembed.export.common import plugin_config
from ovembed.export.task import Choices, ExportTask, choose_prompts, require_architecture, require_passed
from ovembed.graphs import SparseGraphOptions, write_sparse_graph

if TYPE_CHECKING:
    from ovembed.config import WeightFormat
    from ovembed.export.source import SourceModel


def check_masked_lm(source: SourceModel) -> int:
    """Refuse, before any work, models that are not masked LMs; the vocabulary size otherwise."""
    config = require_architecture(source, Task.SPARSE, "a SPLADE-style masked language model", "ForMaskedLM")
    vocab = config.get("vocab_size")
    if not isinstance(vocab, int) or vocab < 1:
        raise ExportError(f"{source.path}/config.json has no vocab_size")
    return vocab


class SparseExport(ExportTask):
    """A SPLADE-style masked LM: token logits max-pooled into vocabulary weights (``heads.sparse``)."""

    task = Task.SPARSE
    hf_task = "fill-mask"
    vocab = 0  # set by check
    ir_refusal = ("--task sparse from an OpenVINO IR source is not supported yet; export the "
                  "masked language model from its PyTorch model")

    def check(self) -> Choices:
        self.vocab = check_masked_lm(self.source)
        return Choices(prompts=choose_prompts(self.cfg, self.source, self.log))  # the head max-pools over tokens

    def fields(self) -> dict[str, Any]:
        return {"sparse_head": {"activation": "log1p_relu", "pooling": "max"}, "dimensions": self.vocab,
                **self.refreshed_fields()}

    def refreshed_fields(self) -> dict[str, Any]:
        prompts = self.choices.prompts
        return {"prompts": dict(prompts.prompts), "default_prompt_name": prompts.default_name}

    def verify(self, reference: Path, weight_format: WeightFormat) -> dict[str, Any]:
        from ovembed.export.verify import SENTENCES
        from ovembed.export.verify_sparse import DEFAULT_MAX_VALUE_DIFF, DEFAULT_MIN_TOPK_AGREEMENT, compare_sparse

        cfg, log = self.cfg, self.log
        max_diff = cfg.max_value_diff if cfg.max_value_diff is not None else DEFAULT_MAX_VALUE_DIFF[weight_format]
        min_agree = DEFAULT_MIN_TOPK_AGREEMENT[weight_format]
        texts = list(SENTENCES)
        log(f"verifying against the PyTorch masked LM with the SPLADE head, {len(texts)} sentences")
        result = compare_sparse(self.work, reference, texts, max_length=self.source.max_length, max_diff=max_diff,
                                min_agreement=min_agree, trust_remote_code=cfg.trust_remote_code)
        log(f"  max relative value difference {result.max_diff:.6f} (threshold {max_diff}), "
            f"top-k agreement {result.topk_agreement:.3f} (threshold {min_agree})")
        require_passed(result)
        return {"max_value_diff": result.max_diff, "threshold": max_diff, "topk_agreement": result.topk_agreement,
                "min_topk_agreement": min_agree, "texts": len(texts)}

    def write_graph(self, folder: Path) -> None:
        cfg = self.cfg
        write_sparse_graph(folder, SparseGraphOptions(models_path="./", target_device=cfg.target_device,
                                                      plugin_config=plugin_config(cfg), truncate=cfg.truncate,
                                                      top_k=cfg.sparse_top_k or None,
                                                      threshold=cfg.sparse_threshold))
