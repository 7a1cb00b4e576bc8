"""Which route converts a model to the IR the embeddings head expects (output ``last_hidden_state``).

- ``optimum-intel``: optimum-intel's exporter (task feature-extraction), for the architectures it
  exports under the locked transformers.
- ``convert_model``: ``openvino.convert_model`` on the traced PyTorch module (inputs ``input_ids`` and
  ``attention_mask``, dynamic batch and sequence), for the architectures optimum-intel does not export
  here: ModernBERT (no export config), Gemma3 text as EmbeddingGemma uses it (optimum-intel caps
  transformers at 5.0), Mistral/Llama decoders as embedders (optimum-intel looks for a ``.model`` the
  bare decoder lacks), T5 encoders (sentence-t5/GTR: the seq2seq export fails at inference).

Either way the export's verification against sentence-transformers gates the result, and
ovembed_model.json records the route.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ovembed.errors import ExportError
from ovembed.export.common import Log
from ovembed.export.convert import IR_XML, _copy_metadata, convert_to_ir
from ovembed.export.source import SourceModel

OPTIMUM = "optimum-intel"
CONVERT_MODEL = "convert_model"
# model_type -> why optimum-intel is not used for it.
_CONVERT_MODEL_TYPES = {
    "modernbert": "optimum-intel has no export config for modernbert",
    "gemma3_text": "optimum-intel's gemma3 config needs transformers <= 5.0",
    "gemma3": "optimum-intel's gemma3 config needs transformers <= 5.0",
    "gemma": "optimum-intel's gemma config needs transformers <= 5.0",
    "gemma2": "optimum-intel's gemma2 config needs transformers <= 5.0",
    "mistral": "optimum-intel exports Mistral only as a causal LM",
    "llama": "optimum-intel exports Llama only as a causal LM",
    "t5": "optimum-intel exports T5 as a seq2seq model; the encoder alone is wanted",
    "mt5": "optimum-intel exports mT5 as a seq2seq model; the encoder alone is wanted",
}
_ENCODER_ONLY = frozenset({"t5", "mt5"})


def route_for(model_type: str) -> str:
    return CONVERT_MODEL if model_type in _CONVERT_MODEL_TYPES else OPTIMUM


def convert(source: SourceModel, work: Path, *, trust_remote_code: bool, log: Log) -> tuple[Path, str]:
    """Write the fp32 IR into ``work``; returns (its xml, the route used)."""
    route = route_for(source.model_type)
    if route == OPTIMUM:
        log(f"converting {source.path} with optimum-intel (task feature-extraction)")
        return convert_to_ir(source, work, trust_remote_code=trust_remote_code), OPTIMUM
    log(f"converting {source.path} with openvino.convert_model on the traced PyTorch module "
        f"({_CONVERT_MODEL_TYPES[source.model_type]})")
    return convert_traced(source, work, trust_remote_code=trust_remote_code), CONVERT_MODEL


def _load(source: SourceModel, trust_remote_code: bool) -> Any:
    from transformers import AutoConfig, AutoModel, T5EncoderModel

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "attn_implementation": "eager"}
    if source.model_type in _ENCODER_ONLY:
        return T5EncoderModel.from_pretrained(str(source.path), **kwargs)
    config = AutoConfig.from_pretrained(str(source.path), trust_remote_code=trust_remote_code)
    if getattr(config, "use_cache", None):
        config.use_cache = False
    return AutoModel.from_pretrained(str(source.path), config=config, **kwargs)


def convert_traced(source: SourceModel, work: Path, *, trust_remote_code: bool) -> Path:
    import openvino as ov
    import torch

    try:
        model = _load(source, trust_remote_code).eval()
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise ExportError(f"cannot load {source.path.name} ({source.model_type}) with transformers: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None

    class _LastHiddenState(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    # torch.export, not TorchScript tracing: transformers 5 builds its attention masks from shapes that
    # tracing turns into tensors (ModernBERT: IndexError in sdpa_mask). Sizes above 1 keep both dims dynamic.
    example = {"input_ids": torch.tensor([[2, 3, 4, 5, 6, 7], [2, 3, 4, 0, 0, 0]], dtype=torch.int64),
               "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.int64)}
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore")
            program = torch.export.export(_LastHiddenState(model), (), kwargs=example, strict=False,
                                          dynamic_shapes={name: {0: batch, 1: seq} for name in example})
            ov_model = ov.convert_model(program)
    except Exception as exc:  # torch.export and the frontend raise many kinds: one export failure
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ExportError(f"neither optimum-intel nor openvino.convert_model exports {source.model_type}: "
                          f"{type(exc).__name__}: {first[:300]}") from None
    ov_model.outputs[0].get_tensor().set_names({"last_hidden_state"})
    for port, name in zip(ov_model.inputs, ("input_ids", "attention_mask"), strict=True):
        port.get_tensor().set_names({name})
    xml = work / IR_XML
    ov.save_model(ov_model, xml, compress_to_fp16=False)
    model.config.save_pretrained(work)
    _copy_metadata(source.path, work)
    return xml
