"""`ovembed export --task bge_m3`: an encoder with BGE-M3's three heads, as FlagEmbedding ships it (the encoder's
Hugging Face folder with ``sparse_linear.pt`` and ``colbert_linear.pt`` beside it). The encoder becomes
optimum-intel's ``feature-extraction`` IR and the three heads are appended to it before compression
(:func:`ovembed.heads.bge_m3.add_heads`), so ONE IR has three outputs (dense, sparse, colbert) and one inference
gives all three. The special token ids that the sparse output drops (cls, eos, pad, unk) go into the record
(``bge_m3``). Verified against the PyTorch recipe (:mod:`ovembed.export.verify_bge_m3`).

An explicit task rather than detecting the two files under ``--task embeddings``: what is served (routes, rerank by
the combined score, the IR's outputs) changes, and an embeddings export of the same folder (dense only) keeps
working as it did.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.config import Task
from ovembed.errors import ExportError
from ovembed.export.common import plugin_config
from ovembed.export.task import Choices, ExportTask, choose_prompts, require_passed
from ovembed.graphs import BgeM3GraphOptions, write_bge_m3_graph
from ovembed.heads.bge_m3 import Heads

if TYPE_CHECKING:
    from ovembed.config import WeightFormat
    from ovembed.export.quantize import QuantizationParams
    from ovembed.export.static_quant import Calibration

SPARSE_FILE, COLBERT_FILE = "sparse_linear.pt", "colbert_linear.pt"
SPECIAL_TOKENS = ("cls_token", "eos_token", "pad_token", "unk_token")  # FlagEmbedding's unused_tokens


def _linear(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ExportError(f"{path} is not a readable PyTorch state dict ({type(exc).__name__})") from None
    weight = state.get("weight") if isinstance(state, dict) else None
    if weight is None or weight.ndim != 2:
        raise ExportError(f"{path} holds no linear layer (a state dict with a 2-D 'weight')")
    bias = state.get("bias")
    return weight.float().numpy(), None if bias is None else bias.float().numpy()


def read_heads(path: Path, hidden: int) -> Heads:
    """The two heads of the model in ``path``; refuses a folder without them or with shapes that do not fit."""
    missing = [f for f in (SPARSE_FILE, COLBERT_FILE) if not (path / f).is_file()]
    if missing:
        raise ExportError(f"--task bge_m3 needs a BGE-M3-style folder ({SPARSE_FILE} and {COLBERT_FILE} beside the "
                          f"encoder); {path} has no {' or '.join(missing)}")
    sw, sb = _linear(path / SPARSE_FILE)
    cw, cb = _linear(path / COLBERT_FILE)
    if sw.shape != (1, hidden) or cw.shape[1] != hidden:
        raise ExportError(f"{path}: the heads do not fit the encoder's hidden size {hidden} ({SPARSE_FILE} "
                          f"{list(sw.shape)}, {COLBERT_FILE} {list(cw.shape)})")
    return Heads(sw, sb, cw, cb)


def unused_token_ids(tok: Any) -> list[int]:
    """The ids of the tokenizer's cls, eos, pad and unk tokens (the sparse output drops them)."""
    ids = set()
    for name in SPECIAL_TOKENS:
        token = tok.special_tokens_map.get(name)
        if isinstance(token, str):
            ids.add(int(tok.convert_tokens_to_ids(token)))
    return sorted(ids)


class BgeM3Export(ExportTask):
    """An encoder + BGE-M3's dense, sparse and colbert heads in one IR."""

    task = Task.BGE_M3
    hf_task = "feature-extraction"
    ir_refusal = ("--task bge_m3 from an OpenVINO IR source is not supported; export the model from its PyTorch "
                  "weights (with sparse_linear.pt and colbert_linear.pt)")

    def check(self) -> Choices:
        from ovembed.hf_files import read_json_object

        hidden = read_json_object(self.source.path / "config.json").get("hidden_size")
        if not isinstance(hidden, int):
            raise ExportError(f"{self.source.path}/config.json has no hidden_size")
        self.heads = read_heads(self.source.path, hidden)
        self.unused: list[int] = []
        return Choices(prompts=choose_prompts(self.cfg, self.source, self.log))

    def use_tokenizer(self, tok: Any) -> None:
        self.unused = unused_token_ids(tok)
        self.log(f"bge_m3 heads: dense {self.heads.hidden}, colbert {self.heads.dim} per token, sparse drops ids "
                 f"{self.unused}")

    def compress(self, xml: Path, params: QuantizationParams, calibration: Calibration | None) -> dict[str, Any]:
        import openvino as ov

        from ovembed.heads.bge_m3 import add_heads

        model = ov.Core().read_model(str(xml))
        headed = add_heads(model, self.heads)
        tmp = xml.with_name("headed.xml")
        ov.save_model(headed, str(tmp), compress_to_fp16=False)
        del model, headed
        for suffix in (".xml", ".bin"):
            tmp.with_suffix(suffix).replace(xml.with_suffix(suffix))
        return super().compress(xml, params, calibration)

    def fields(self) -> dict[str, Any]:
        return {"dimensions": self.heads.hidden, **self.refreshed_fields()}

    def refreshed_fields(self) -> dict[str, Any]:
        prompts = self.choices.prompts
        return {"prompts": dict(prompts.prompts), "default_prompt_name": prompts.default_name,
                "bge_m3": {"dense_dimensions": self.heads.hidden, "colbert_dimensions": self.heads.dim,
                           "unused_token_ids": self.unused}}

    def verify(self, reference: Path, weight_format: WeightFormat) -> dict[str, Any]:
        from ovembed.export.verify import SENTENCES
        from ovembed.export.verify_bge_m3 import DEFAULT_MAX_SPARSE_DIFF, DEFAULT_MIN_COSINE, compare_m3

        min_cos, max_diff = DEFAULT_MIN_COSINE[weight_format], DEFAULT_MAX_SPARSE_DIFF[weight_format]
        texts = list(SENTENCES)
        self.log(f"verifying the three outputs against the PyTorch encoder + heads, {len(texts)} sentences")
        result = compare_m3(self.work, reference, texts, self.heads, self.unused, max_length=self.source.max_length,
                            min_cosine=min_cos, max_sparse_diff=max_diff,
                            trust_remote_code=self.cfg.trust_remote_code)
        self.log(f"  min dense cosine {result.dense_min_cosine:.6f}, min colbert per-token cosine "
                 f"{result.colbert_min_cosine:.6f} (threshold {min_cos}); max sparse weight difference "
                 f"{result.sparse_max_diff:.6f} (threshold {max_diff})")
        require_passed(result)
        return {"min_dense_cosine": result.dense_min_cosine, "min_colbert_cosine": result.colbert_min_cosine,
                "max_sparse_diff": result.sparse_max_diff, "min_cosine_threshold": min_cos,
                "max_sparse_diff_threshold": max_diff, "texts": len(texts)}

    def write_graph(self, folder: Path) -> None:
        cfg = self.cfg
        write_bge_m3_graph(folder, BgeM3GraphOptions(models_path="./", target_device=cfg.target_device,
                                                     plugin_config=plugin_config(cfg), truncate=cfg.truncate))
