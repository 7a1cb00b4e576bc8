"""Load a RerankCalculatorOV model folder (ovembed's or OVMS's ``rerank_ov`` export).

The IR is optimum's ``text-classification`` one; :mod:`ovembed.heads.rerank` appends the score
head. The head's parameters come from ovembed_model.json, or for folders OVMS wrote, from the
model's files: column 1 of two logits (OVMS's rule), sigmoid, token types read off the
tokenizer's pair template. The window is the graph's ``max_position_embeddings`` when set, else
the model's maximum length.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovembed.config import Pooling, ServeConfig, Task
from ovembed.errors import ConfigError
from ovembed.graphs import RerankGraphOptions
from ovembed.heads.rerank import RerankHead, add_rerank_head, separator_for_token_types
from ovembed.hf_files import read_json_object
from ovembed.repository import read_record
from ovembed.serving.api import ModelInfo
from ovembed.serving.openvino.devices import check_device, device_info, device_summary, primary_device
from ovembed.serving.openvino.loader import (
    MODEL_FILENAME,
    LoadedModel,
    RerankSetup,
    compile_head_model,
    resolve_max_length,
)
from ovembed.serving.openvino.plan import property_text
from ovembed.serving.tasks.pair_chunker import PairChunker
from ovembed.serving.tasks.tokenizer import TOKENIZER_FILENAME, ServingTokenizer

if TYPE_CHECKING:
    import openvino as ov

log = logging.getLogger("ovembed.serving")

DEFAULT_MAX_DOC_LENGTH = 16000  # OVMS export_model.py rerank_ov --max_doc_length


def _head(record: dict[str, Any], hf_config: dict[str, Any], tokenizer_json: str) -> RerankHead:
    labels = hf_config.get("id2label")
    num_labels = len(labels) if isinstance(labels, dict) else int(hf_config.get("num_labels", 1))
    try:
        recorded = record.get("rerank_head")
        head = RerankHead.from_record(recorded, num_labels=num_labels)
        if recorded is None:
            from tokenizers import Tokenizer

            probe = Tokenizer.from_str(tokenizer_json)
            probe.no_padding()
            probe.no_truncation()
            head = RerankHead(label=head.label, sep_token_id=separator_for_token_types(probe))
    except ValueError as exc:
        raise ConfigError(f"rerank head: {exc}") from None
    return head


def load_rerank_model(core: ov.Core, name: str, base_path: Path, cfg: ServeConfig,
                      graph: RerankGraphOptions) -> LoadedModel:
    """Read, compile and warm up a rerank model; blocking (call it in a worker thread)."""
    started = time.perf_counter()
    model_dir = graph.model_dir(base_path)
    xml = model_dir / MODEL_FILENAME
    if not xml.is_file():
        raise ConfigError(f"{xml} not found")
    record = read_record(base_path) or read_record(model_dir)
    device = cfg.target_device or graph.target_device
    check_device(core, device)
    hf_config = read_json_object(model_dir / "config.json")
    tok_dir = model_dir if (model_dir / TOKENIZER_FILENAME).is_file() else base_path
    max_length = graph.max_position_embeddings or resolve_max_length(model_dir, record)
    vocab = hf_config.get("vocab_size")
    tokenizer = ServingTokenizer.from_dir(tok_dir, max_length=max_length,
                                          vocab_size=vocab if isinstance(vocab, int) else None)
    tokenizer_json = (tok_dir / TOKENIZER_FILENAME).read_text(encoding="utf-8")
    head = _head(record, hf_config, tokenizer_json)
    chunker = PairChunker(tokenizer_json, max_length=max_length)

    loaded = compile_head_model(core, name, xml, lambda model: add_rerank_head(model, head), graph, record, cfg,
                                device, {"head": "rerank", **head.describe()}, tokenizer,
                                ((1, 8), (4, min(128, max_length))))  # 2 outputs: raw logit, activated score
    compiled, precision, engine = loaded.compiled, loaded.precision, loaded.engine

    doc_length = record.get("max_doc_length")
    max_doc_length = doc_length if isinstance(doc_length, int) and doc_length > 0 else DEFAULT_MAX_DOC_LENGTH
    info = ModelInfo(name=name, dimensions=1, max_length=max_length, pooling=Pooling.CLS, normalize=False,
                     truncate=False, device=device, precision=precision, created=loaded.created,
                     task=Task.RERANK.value)
    dev = device_info(core, primary_device(core, device))
    exec_precision = property_text(compiled, "INFERENCE_PRECISION_HINT")
    log.info("rerank model %s ready on %s (%s): weights %s, inference precision %s, %s stream(s), "
             "%d infer request(s), window %d tokens, max_allowed_chunks %d, head %s, loaded in %.2f s; "
             "%.0f MB of mapped weights released", name, device, dev.full_name, precision,
             exec_precision or "default", property_text(compiled, "NUM_STREAMS"), engine.slots, max_length,
             graph.max_allowed_chunks, head.describe(), time.perf_counter() - started, loaded.released / 2**20)
    log.info("model %s device %s", name, device_summary(dev, precision, exec_precision))
    return LoadedModel(info, engine, tokenizer,
                       rerank=RerankSetup(chunker, graph.max_allowed_chunks, max_doc_length))
