"""`ovembed export --task token_embed`: a late-interaction (ColBERT-style) model, as sentence-transformers'
``MultiVectorEncoder`` saves it (Transformer -> Dense -> Normalize -> MultiVectorMask; PyLate and Stanford
ColBERT checkpoints load as the same modules there). The encoder becomes optimum-intel's ``feature-extraction``
IR (``last_hidden_state``) and the projection plus per-token L2 normalisation are appended to it before
compression (:func:`ovembed.heads.token_embed.add_projection`), so the served IR outputs ``token_embeddings``
``[batch, seq, dim]``. What the model's config says about inputs goes into the record (``token_embed``): the
query/document marker ids (a prompt that is one token of the tokenizer, such as ``[Q] ``), and the document
skiplist ids (``MultiVectorMask.skiplist_words``) that the server drops from document vectors. Verified per
token against the PyTorch recipe (:mod:`ovembed.export.verify_token_embed`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.config import Task
from ovembed.errors import ExportError
from ovembed.export.common import plugin_config
from ovembed.export.task import Choices, ExportTask, choose_prompts, require_passed
from ovembed.graphs import TokenGraphOptions, write_token_graph
from ovembed.hf_files import read_json_object
from ovembed.prompts import PromptSet

if TYPE_CHECKING:
    from ovembed.config import WeightFormat
    from ovembed.export.quantize import QuantizationParams
    from ovembed.export.static_quant import Calibration

_DENSE, _MASK = "Dense", "MultiVectorMask"


@dataclass
class TokenModel:
    """A late-interaction model's parts besides its encoder, read from its sentence-transformers modules."""

    weight: np.ndarray  # [dim, hidden]
    bias: np.ndarray | None
    skiplist_words: list[str] = field(default_factory=list)
    skiplist_tasks: list[str] = field(default_factory=lambda: ["document"])
    query_expansion: dict[str, Any] | None = None  # {"strategy", "length", "token"}: attend=true only

    @property
    def dimensions(self) -> int:
        return int(self.weight.shape[0])


def _module(modules: list[dict[str, Any]], suffix: str) -> dict[str, Any] | None:
    return next((m for m in modules if str(m.get("type", "")).rsplit(".", 1)[-1] == suffix), None)


def read_token_model(path: Path) -> TokenModel:
    """The projection and the skiplist of the model in ``path``; refuses what the server cannot reproduce."""
    from safetensors.numpy import load_file

    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        modules = []
    modules = [m for m in modules if isinstance(m, dict)] if isinstance(modules, list) else []
    dense = _module(modules, _DENSE)
    if dense is None:
        raise ExportError(f"--task token_embed needs a late-interaction model (sentence-transformers modules "
                          f"Transformer -> Dense -> ... -> MultiVectorMask); {path} has no Dense module")
    folder = path / str(dense.get("path", ""))
    config = read_json_object(folder / "config.json")
    activation = str(config.get("activation_function", "")).rsplit(".", 1)[-1]
    if activation not in ("Identity", ""):
        raise ExportError(f"{folder}: the projection's activation {activation} is not supported (Identity only)")
    weights = load_file(str(folder / "model.safetensors"))
    weight = weights.get("linear.weight")
    if weight is None:
        raise ExportError(f"{folder}/model.safetensors has no linear.weight")
    mask = _module(modules, _MASK)
    mask_config = read_json_object(path / str(mask.get("path", "")) / "config.json") if mask else {}
    tasks = mask_config.get("skiplist_tasks") or ["document"]
    if mask_config.get("keep_only_token_ids"):
        raise ExportError(f"{path}: MultiVectorMask keep_only_token_ids is not supported")
    if [t for t in tasks if t != "document"]:
        raise ExportError(f"{path}: a skiplist for {tasks} is not supported (documents only)")
    transformer = read_json_object(path / "sentence_bert_config.json") if (path / "sentence_bert_config.json"
                                                                           ).is_file() else {}
    return TokenModel(weight.astype(np.float32), weights.get("linear.bias"), list(mask_config.get("skiplist_words")
                                                                                  or []), list(tasks),
                      _query_expansion(path, transformer.get("query_expansion")))


def _query_expansion(path: Path, config: object) -> dict[str, Any] | None:
    """The Transformer's ``query_expansion`` (sentence-transformers 6): queries padded with ``token`` (the
    tokenizer's mask token by default) to ``length`` tokens, those positions attended (``attend: true``) and
    scored; ``fixed`` also truncates queries to ``length``, ``min`` does not."""
    if not config:
        return None
    if not isinstance(config, dict) or config.get("strategy") not in ("fixed", "min"):
        raise ExportError(f"{path}: query_expansion {config!r} is not supported (strategy 'fixed' or 'min')")
    if not config.get("attend", False):
        raise ExportError(f"{path}: query expansion with attend=false (expansion positions left out of attention) "
                          "is not supported yet; attend=true is")
    length = config.get("length")
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise ExportError(f"{path}: query_expansion needs a positive integer 'length', got {length!r}")
    return {"strategy": config["strategy"], "length": length, "token": config.get("token")}


def expansion_token_id(expansion: dict[str, Any], tokenizer: Any) -> int:
    """As sentence-transformers: the configured token, else the mask token, else EOS."""
    if expansion.get("token") is not None:
        found = tokenizer.convert_tokens_to_ids(expansion["token"])
    else:
        found = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.eos_token_id
    if found is None:
        raise ExportError("query expansion needs a token id: the tokenizer has no mask or EOS token")
    return int(found)


def marker_ids(prompts: PromptSet, tokenizer: Any) -> tuple[dict[str, int], PromptSet]:
    """The query/document prompts that are one special token of the tokenizer (ColBERT's markers) as ids,
    and the prompts left (text prompts)."""
    markers: dict[str, int] = {}
    left = dict(prompts.prompts)
    for kind in ("query", "document"):
        text = left.get(kind)
        if text is None or not text.strip():
            continue
        word = text.strip()
        if tokenizer.tokenize(word) == [word] and len(text) - len(text.lstrip()) == 0:
            markers[kind] = int(tokenizer.convert_tokens_to_ids(word))
            del left[kind]
    default = prompts.default_name if prompts.default_name in left else None
    return markers, PromptSet(left, default)


def skiplist_ids(words: list[str], tokenizer: Any) -> list[int]:
    """As ``MultiVectorMask.resolve_with_tokenizer``: words that are no single token (unk) are dropped."""
    unk = getattr(tokenizer, "unk_token_id", None)
    ids = {int(tokenizer.convert_tokens_to_ids(w)) for w in words}
    return sorted(i for i in ids if i != unk or getattr(tokenizer, "unk_token", None) in words)


class TokenEmbedExport(ExportTask):
    """An encoder + projection + per-token L2 normalisation (one vector per token)."""

    task = Task.TOKEN_EMBED
    hf_task = "feature-extraction"
    ir_refusal = ("--task token_embed from an OpenVINO IR source is not supported yet; export the model from "
                  "its PyTorch weights")

    def check(self) -> Choices:
        self.model = read_token_model(self.source.path)
        self.markers: dict[str, int] = {}
        self.skiplist: list[int] = []
        self.expansion: dict[str, Any] | None = None
        return Choices(prompts=choose_prompts(self.cfg, self.source, self.log))

    def use_tokenizer(self, tok: Any) -> None:
        self.markers, prompts = marker_ids(self.choices.prompts, tok)
        self.choices = Choices(prompts=prompts)
        self.skiplist = skiplist_ids(self.model.skiplist_words, tok)
        expansion = self.model.query_expansion
        self.expansion = None if expansion is None else {"strategy": expansion["strategy"],
                                                         "length": expansion["length"],
                                                         "token_id": expansion_token_id(expansion, tok)}
        self.log(f"token vectors: {self.model.dimensions} dimensions, markers "
                 f"{self.markers or 'none'}, document skiplist {len(self.skiplist)} ids")

    def compress(self, xml: Path, params: QuantizationParams, calibration: Calibration | None) -> dict[str, Any]:
        import openvino as ov

        from ovembed.heads.token_embed import add_projection

        model = ov.Core().read_model(str(xml))
        headed = add_projection(model, self.model.weight, self.model.bias)
        tmp = xml.with_name("projected.xml")
        ov.save_model(headed, str(tmp), compress_to_fp16=False)
        del model, headed
        for suffix in (".xml", ".bin"):
            tmp.with_suffix(suffix).replace(xml.with_suffix(suffix))
        return super().compress(xml, params, calibration)

    def fields(self) -> dict[str, Any]:
        return {"dimensions": self.model.dimensions, **self.refreshed_fields()}

    def refreshed_fields(self) -> dict[str, Any]:
        prompts = self.choices.prompts
        return {"prompts": dict(prompts.prompts), "default_prompt_name": prompts.default_name,
                "token_embed": {"query_marker_id": self.markers.get("query"),
                                "document_marker_id": self.markers.get("document"),
                                "skiplist_ids": self.skiplist, "normalize": True,
                                "query_expansion": self.expansion}}

    def verify(self, reference: Path, weight_format: WeightFormat) -> dict[str, Any]:
        from ovembed.export.verify import SENTENCES
        from ovembed.export.verify_token_embed import DEFAULT_MIN_COSINE, compare_tokens

        min_cos = DEFAULT_MIN_COSINE[weight_format]
        texts = list(SENTENCES)
        self.log(f"verifying per token against the PyTorch encoder + projection, {len(texts)} sentences")
        result = compare_tokens(self.work, reference, texts, self.model.weight, self.model.bias,
                                max_length=self.source.max_length, min_cosine=min_cos,
                                trust_remote_code=self.cfg.trust_remote_code)
        self.log(f"  min per-token cosine {result.min_cosine:.6f} (threshold {min_cos}) over {result.tokens} tokens")
        require_passed(result)
        return {"min_token_cosine": result.min_cosine, "threshold": min_cos, "tokens": result.tokens,
                "texts": len(texts)}

    def write_graph(self, folder: Path) -> None:
        cfg = self.cfg
        write_token_graph(folder, TokenGraphOptions(models_path="./", target_device=cfg.target_device,
                                                    plugin_config=plugin_config(cfg), truncate=cfg.truncate))
