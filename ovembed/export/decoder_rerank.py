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

from ovembed.config import Task
from ovembed.errors import ExportError
from ovembed.export.convert import IR_XML
from ovembed.export.rerank import RerankExport
from ovembed.export.task import Choices, require_architecture
from ovembed.heads.decoder_rerank import YesNoHead
from ovembed.heads.rerank import RerankHead
from ovembed.hf_files import read_json_object
from ovembed.rerank_template import RerankTemplate

if TYPE_CHECKING:
    from ovembed.config import WeightFormat


def is_decoder_reranker(source_path: Path) -> bool:
    architectures = read_json_object(source_path / "config.json").get("architectures") or []
    return any(str(a).endswith("ForCausalLM") for a in architectures)


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


def lm_head_rows(source: Path, ids: tuple[int, int], *, trust_remote_code: bool) -> np.ndarray:
    """The ``lm_head`` rows of ``ids`` (float32 ``[2, hidden]``; tied models: the input embeddings)."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(str(source), trust_remote_code=trust_remote_code,
                                                     dtype=torch.float32)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise ExportError(f"cannot load {source.name} as a causal LM: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    weight = model.get_output_embeddings().weight.detach()
    bias = getattr(model.get_output_embeddings(), "bias", None)
    if bias is not None and bool(torch.any(bias[list(ids)] != 0)):
        raise ExportError(f"{source.name}'s lm_head has a bias; ovembed's decoder rerank head has none")
    return weight[list(ids)].to(torch.float32).numpy().copy()


class DecoderRerankExport(RerankExport):
    """A causal LM scoring (query, document) with "yes" minus "no" at the last token (``heads.decoder_rerank``)."""

    hf_task = "feature-extraction"
    ir_refusal = ("a decoder reranker is exported from its PyTorch weights (the yes/no head is built from "
                  "lm_head); an OpenVINO IR source is not supported")
    reference_name = "transformers causal LM (Qwen3-Reranker recipe)"

    def __init__(self, cfg: Any, source: Any, log: Any) -> None:
        super().__init__(cfg, source, log)
        self.template = RerankTemplate()
        self.ids: tuple[int, int] | None = None
        self.route = ""

    def check(self) -> Choices:
        from ovembed.export.tokenizer import load_hf_tokenizer

        require_architecture(self.source, Task.RERANK, "a decoder reranker", "ForCausalLM")
        tok = load_hf_tokenizer(self.source.path, max_length=self.source.max_length,
                                trust_remote_code=self.cfg.trust_remote_code)
        if getattr(tok, "backend_tokenizer", None) is None:
            raise ExportError("--task rerank needs a fast (tokenizer.json) tokenizer")
        self.ids = yes_no_ids(tok, self.template, self.source.path)
        return Choices()

    def use_tokenizer(self, tok: Any) -> None:
        self.head = RerankHead(label=0, activation="sigmoid", sep_token_id=None)

    def convert(self) -> Path:
        import openvino as ov

        from ovembed.export.architectures import convert
        from ovembed.heads.decoder_rerank import add_yes_no_head

        assert self.ids is not None
        xml, self.route = convert(self.source, self.work, trust_remote_code=self.cfg.trust_remote_code, log=self.log)
        config = read_json_object(self.source.path / "config.json")
        cap = config.get("final_logit_softcapping") or (config.get("text_config") or {}).get("final_logit_softcapping")
        self.yes_no = YesNoHead(*self.ids, lm_head_rows(self.source.path, self.ids,
                                                        trust_remote_code=self.cfg.trust_remote_code),
                                softcap=float(cap) if cap else None)
        self.log(f"  head: last real token x lm_head rows of {self.template.yes_token!r} ({self.ids[0]}) and "
                 f"{self.template.no_token!r} ({self.ids[1]}) -> logits [batch, 1] = yes - no")
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
        return {**super().fields(), "decoder_head": self.yes_no.describe(), "rerank_template": self.template.describe(),
                "route": self.route}

    def check_ir(self) -> None:
        raise ExportError(self.ir_refusal or "")

    def verify(self, reference: Path, weight_format: WeightFormat) -> dict[str, Any]:
        from ovembed.export.verify_decoder_rerank import verify_decoder_scores

        assert self.head is not None
        return verify_decoder_scores(self.cfg, self.work, reference, self.head, self.template,
                                     self.source.max_length, weight_format, self.log)
