"""`ovembed export --task rerank` of a decoder reranker in its original form (Qwen3-Reranker style: a
``*ForCausalLM`` scoring a prompt-formatted pair with its "yes"/"no" logits at the last token).

The decoder is converted as the embeddings exporter converts decoders (:mod:`ovembed.export.architectures`:
optimum-intel feature-extraction, or ``openvino.convert_model`` for Llama/Mistral/Gemma3), then
:mod:`ovembed.heads.decoder_rerank` appends the last-real-token pick and the two ``lm_head`` rows, so the
saved IR outputs ``logits`` ``[batch, 1]`` = yes - no, like a one-logit cross-encoder: serving, batching,
chunking and the sigmoid score (the model card's ``softmax([no, yes])[1]``) are the rerank task's. The
prompt template (:class:`~ovembed.rerank_template.RerankTemplate`) is recorded in ovembed_model.json and
applied by the server. It is the rerank task's variant, not a task of its own (one ``Task.RERANK`` row
chooses it from the source's architecture): the API, the graph and the servable are the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.errors import ExportError
from ovembed.export.rerank import RerankExport
from ovembed.export.task import Choices
from ovembed.heads.decoder_rerank import YesNoHead
from ovembed.heads.rerank import RerankHead
from ovembed.hf_files import read_json_object
from ovembed.rerank_template import RerankTemplate

if TYPE_CHECKING:
    from ovembed.config import ExportConfig, WeightFormat
    from ovembed.export.common import Log
    from ovembed.export.source import SourceModel


# Decoders whose one-label ``*ForSequenceClassification`` copies are decoder rerankers (Qwen3-Reranker-seq-cls).
_DECODER_TYPES = frozenset({"qwen3", "qwen2", "llama", "mistral", "gemma", "gemma2", "gemma3_text"})


def _is_seq_cls(config: dict[str, Any]) -> bool:
    return any(str(a).endswith("ForSequenceClassification") for a in config.get("architectures") or [])


def is_decoder_reranker(source_path: Path) -> bool:
    """A causal LM, or a one-label sequence classifier over a decoder (a ``*-seq-cls`` copy)."""
    config = read_json_object(source_path / "config.json")
    if any(str(a).endswith("ForCausalLM") for a in config.get("architectures") or []):
        return True
    return _is_seq_cls(config) and config.get("model_type") in _DECODER_TYPES


def yes_no_ids(tok: Any, template: RerankTemplate, where: Path) -> tuple[int, int]:
    """The token ids of the answer words (as the recipe's ``convert_tokens_to_ids``); refuse a vocabulary
    without them."""
    ids = []
    unk = getattr(tok, "unk_token_id", None)
    for word in (template.yes_token, template.no_token):
        found = tok.convert_tokens_to_ids(word)
        if found is None or found == unk:
            raise ExportError(f"--task rerank of a causal LM needs the tokens {template.yes_token!r} and "
                              f"{template.no_token!r} in its vocabulary; {where} has no {word!r} token")
        ids.append(int(found))
    return ids[0], ids[1]


def head_rows(source: Path, ids: tuple[int, int] | None, *, trust_remote_code: bool) -> np.ndarray:
    """float32 ``[2, hidden]``: the ``lm_head`` rows of ``ids`` (tied models: the input embeddings), or for a
    seq-cls copy (``ids`` None) its ``score`` row and a zero row."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    auto = AutoModelForCausalLM if ids is not None else AutoModelForSequenceClassification
    try:
        model = auto.from_pretrained(str(source), trust_remote_code=trust_remote_code, dtype=torch.float32)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise ExportError(f"cannot load {source.name} with {auto.__name__}: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    layer = model.get_output_embeddings() if ids is not None else getattr(model, "score", None)
    if layer is None or not hasattr(layer, "weight"):
        raise ExportError(f"{source.name} has no score layer to read the relevance row from")
    bias = getattr(layer, "bias", None)
    if bias is not None and bool(torch.any(bias != 0)):
        raise ExportError(f"{source.name}'s output layer has a bias; ovembed's decoder rerank head has none")
    weight = layer.weight.detach().to(torch.float32)
    if ids is None:
        return torch.cat([weight[:1], torch.zeros_like(weight[:1])]).numpy().copy()
    return weight[list(ids)].numpy().copy()


class DecoderRerankExport(RerankExport):
    """A causal LM scoring (query, document) with "yes" minus "no" at the last token (``heads.decoder_rerank``),
    or its ``*-seq-cls`` copy (one score row), both with the prompt template applied on the server."""

    hf_task = "feature-extraction"
    ir_refusal = ("a decoder reranker is exported from its PyTorch weights (the yes/no head is built from "
                  "lm_head); an OpenVINO IR source is not supported")
    reference_name = "transformers causal LM (Qwen3-Reranker recipe)"

    def __init__(self, cfg: ExportConfig, source: SourceModel, log: Log) -> None:
        super().__init__(cfg, source, log)
        self.template = RerankTemplate()  # Qwen3-Reranker's (the model card's recipe)
        self.ids: tuple[int, int] | None = None  # "yes", "no"; None for a seq-cls copy
        self.seq_cls = False
        self.yes_no: YesNoHead | None = None
        self.route = ""

    def check(self) -> Choices:
        from ovembed.export.rerank import check_cross_encoder
        from ovembed.export.tokenizer import load_hf_tokenizer

        self.seq_cls = _is_seq_cls(read_json_object(self.source.path / "config.json"))
        if self.seq_cls:
            check_cross_encoder(self.source)  # one label
        tok = load_hf_tokenizer(self.source.path, max_length=self.source.max_length,
                                trust_remote_code=self.cfg.trust_remote_code)
        if getattr(tok, "backend_tokenizer", None) is None:
            raise ExportError("--task rerank needs a fast (tokenizer.json) tokenizer")
        self.ids = None if self.seq_cls else yes_no_ids(tok, self.template, self.source.path)
        return Choices()

    def use_tokenizer(self, tok: Any) -> None:
        self.head = RerankHead(label=0, activation="sigmoid", sep_token_id=None)

    def convert(self) -> Path:
        import openvino as ov

        from ovembed.export.architectures import convert
        from ovembed.heads.decoder_rerank import add_yes_no_head

        xml, self.route = convert(self.source, self.work, trust_remote_code=self.cfg.trust_remote_code, log=self.log)
        config = read_json_object(self.source.path / "config.json")
        cap = config.get("final_logit_softcapping") or (config.get("text_config") or {}).get("final_logit_softcapping")
        rows = head_rows(self.source.path, self.ids, trust_remote_code=self.cfg.trust_remote_code)
        yes, no = self.ids if self.ids is not None else (None, None)
        self.yes_no = YesNoHead(yes, no, rows, softcap=float(cap) if cap else None)
        if self.ids is None:
            self.log("  head: last real token x the seq-cls score row -> logits [batch, 1]")
        else:
            self.log(f"  head: last real token x lm_head rows of {self.template.yes_token!r} ({yes}) and "
                     f"{self.template.no_token!r} ({no}) -> logits [batch, 1] = yes - no")
        core = ov.Core()
        model = add_yes_no_head(core.read_model(xml), self.yes_no)
        bin_path = xml.with_suffix(".bin")
        tmp = xml.with_name("headed.xml")
        ov.save_model(model, tmp, compress_to_fp16=False)
        del model
        xml.unlink()
        bin_path.unlink()
        tmp.rename(xml)
        tmp.with_suffix(".bin").rename(bin_path)
        return xml

    def fields(self) -> dict[str, Any]:
        assert self.yes_no is not None
        return {**super().fields(), "decoder_head": self.yes_no.describe(), "rerank_template": self.template.describe(),
                "route": self.route}

    def check_ir(self) -> None:
        raise ExportError(self.ir_refusal or "")

    def verify(self, reference: Path, weight_format: WeightFormat) -> dict[str, Any]:
        from ovembed.export.verify_decoder_rerank import verify_decoder_scores

        assert self.head is not None
        return verify_decoder_scores(self.cfg, self.work, reference, self.head, self.template,
                                     self.source.max_length, weight_format, self.log, seq_cls=self.seq_cls)
