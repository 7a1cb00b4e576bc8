"""`ovembed export --task classify`: a sequence classifier with more than one label (sentiment, NLI,
toxicity/guard models): optimum-intel ``text-classification`` IR, NNCF weight compression, the tokenizer
through openvino-tokenizers, the labels (``id2label``) and ``problem_type`` (softmax or sigmoid) recorded in
ovembed_model.json, verified against transformers' ``AutoModelForSequenceClassification`` on texts and pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovembed.config import Task
from ovembed.errors import ExportError
from ovembed.export.common import plugin_config
from ovembed.export.convert import IR_XML
from ovembed.export.task import Choices, ExportTask, require_architecture, require_passed
from ovembed.graphs.classify import ClassifyGraphOptions, write_classify_graph
from ovembed.heads.classify import ClassifyHead, labels_of, problem_type_of
from ovembed.heads.rerank import separator_for_token_types

if TYPE_CHECKING:
    from ovembed.config import WeightFormat


def classifier_head(config: dict[str, Any], source: Path) -> ClassifyHead:
    """The labels and problem type of a ``*ForSequenceClassification`` config; one line when it has one label."""
    try:
        labels, problem = labels_of(config), problem_type_of(config)
    except ValueError as exc:
        raise ExportError(f"--task classify: {source}: {exc}") from None
    if len(labels) < 2:
        raise ExportError(f"--task classify needs a classifier with at least two labels; {source} has one logit "
                          "(a cross-encoder: export it with --task rerank)")
    return ClassifyHead(labels, problem)


class ClassifyExport(ExportTask):
    """A sequence classifier: texts or text pairs -> one probability per label (``heads.classify``)."""

    task = Task.CLASSIFY
    hf_task = "text-classification"
    ir_converts_tokenizer = True  # the head's token-type rule is read off the HF tokenizer
    reference_name = "AutoModelForSequenceClassification"

    def __init__(self, cfg: Any, source: Any, log: Any) -> None:
        super().__init__(cfg, source, log)
        self.head: ClassifyHead | None = None

    def check(self) -> Choices:
        config = require_architecture(self.source, Task.CLASSIFY, "a sequence classifier", "ForSequenceClassification")
        self.head = classifier_head(config, self.source.path)
        return Choices()  # a classifier has its own head: no pooling, no prompts

    def use_tokenizer(self, tok: Any) -> None:
        assert self.head is not None
        backend = getattr(tok, "backend_tokenizer", None)
        if backend is None:
            raise ExportError("--task classify needs a fast (tokenizer.json) tokenizer")
        try:
            sep = separator_for_token_types(backend)
        except ValueError as exc:
            raise ExportError(f"unsupported pair template: {exc}") from None
        self.head = ClassifyHead(self.head.labels, self.head.problem_type, sep)

    def fields(self) -> dict[str, Any]:
        assert self.head is not None
        return {"classify_head": self.head.describe()}

    def check_ir(self) -> None:
        """An IR source must output logits ``[batch, labels]``, one column per label of its config."""
        import openvino as ov

        assert self.head is not None
        xml = self.source.path / IR_XML
        outputs = ov.Core().read_model(xml).outputs
        shape = outputs[0].get_partial_shape() if len(outputs) == 1 else None
        if shape is None or not shape.rank.is_static or shape.rank.get_length() != 2 or (
                shape[1].is_static and shape[1].get_length() != len(self.head.labels)):
            found = "; ".join(f"{', '.join(sorted(o.get_names())) or '?'} {o.get_partial_shape()}" for o in outputs)
            raise ExportError(f"--task classify needs an IR with one output of {len(self.head.labels)} logits "
                              f"(one per label); {xml} has: {found}")

    def verify(self, reference: Path, weight_format: WeightFormat) -> dict[str, Any]:
        from ovembed.export.verify_classify import (
            DEFAULT_MAX_LOGIT_DIFF,
            DEFAULT_MIN_AGREEMENT,
            builtin_inputs,
            compare_classifier,
        )

        assert self.head is not None
        cfg = self.cfg
        max_diff = cfg.max_score_diff if cfg.max_score_diff is not None else DEFAULT_MAX_LOGIT_DIFF[weight_format]
        min_agree = (cfg.min_rank_agreement if cfg.min_rank_agreement is not None
                     else DEFAULT_MIN_AGREEMENT[weight_format])
        inputs = builtin_inputs()
        pairs = sum(isinstance(t, tuple) for t in inputs)
        self.log(f"verifying against transformers AutoModelForSequenceClassification, {len(inputs) - pairs} texts "
                 f"and {pairs} text pairs")
        result = compare_classifier(self.work, reference, inputs, head=self.head, max_length=self.source.max_length,
                                    max_diff=max_diff, min_agreement=min_agree,
                                    trust_remote_code=cfg.trust_remote_code)
        self.log(f"  max logit difference {result.max_diff:.6f} (threshold {max_diff}), max probability difference "
                 f"{result.max_prob_diff:.6f}, top-label agreement {result.agreement:.3f} (threshold {min_agree})")
        require_passed(result)
        return {"max_logit_diff": result.max_diff, "threshold": max_diff, "max_prob_diff": result.max_prob_diff,
                "top_label_agreement": result.agreement, "min_agreement": min_agree, "texts": len(inputs) - pairs,
                "pairs": pairs}

    def write_graph(self, folder: Path) -> None:
        write_classify_graph(folder, ClassifyGraphOptions(models_path="./", target_device=self.cfg.target_device,
                                                          plugin_config=plugin_config(self.cfg)))
