"""Load a SparseEmbeddingsCalculatorOV model folder (``ovembed export --task sparse``).

The IR is optimum's ``fill-mask`` one (logits ``[batch, seq, vocab]``); :mod:`ovembed.heads.sparse`
appends SPLADE's max(log(1 + relu)) over real tokens, so the engine returns one ``[vocab]`` row per
input. Everything else (private weights, plugin config, inference precision, warm-up) is the
embeddings loader's.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ovembed.config import Pooling, ServeConfig, Task
from ovembed.errors import ConfigError
from ovembed.graphs import SparseGraphOptions
from ovembed.heads.sparse import add_sparse_head
from ovembed.hf_files import read_json_object
from ovembed.prompts import prompts_from_record
from ovembed.repository import read_record
from ovembed.serving.api import ModelInfo, SparseOptions
from ovembed.serving.openvino.devices import check_device, device_info, device_summary, primary_device
from ovembed.serving.openvino.loader import (
    MODEL_FILENAME,
    LoadedModel,
    compile_head_model,
    resolve_max_length,
)
from ovembed.serving.openvino.plan import property_text
from ovembed.serving.tasks.tokenizer import TOKENIZER_FILENAME, ServingTokenizer

if TYPE_CHECKING:
    import openvino as ov

log = logging.getLogger("ovembed.serving")

# The head reduces [batch, seq, vocab] logits that OpenVINO materialises: a batch's padded tokens x vocab
# x 4 bytes. Keep that under this many bytes by bounding the model's token budget (30522-word BERT
# vocabularies: 2,198 tokens, about --max_batch_tokens' default).
LOGITS_BUDGET_BYTES = 256 * 2**20


def batch_token_budget(max_batch_tokens: int, vocab: int) -> int:
    """The sparse model's token budget: ``--max_batch_tokens``, bounded by :data:`LOGITS_BUDGET_BYTES`."""
    return max(1, min(max_batch_tokens, LOGITS_BUDGET_BYTES // (4 * max(vocab, 1))))


def load_sparse_model(core: ov.Core, name: str, base_path: Path, cfg: ServeConfig,
                      graph: SparseGraphOptions) -> LoadedModel:
    """Read, compile and warm up a sparse model; blocking (call it in a worker thread)."""
    started = time.perf_counter()
    model_dir = graph.model_dir(base_path)
    xml = model_dir / MODEL_FILENAME
    if not xml.is_file():
        raise ConfigError(f"{xml} not found")
    record = read_record(base_path) or read_record(model_dir)
    device = cfg.target_device or graph.target_device
    check_device(core, device)
    hf_config = read_json_object(model_dir / "config.json")
    vocab = hf_config.get("vocab_size")
    tok_dir = model_dir if (model_dir / TOKENIZER_FILENAME).is_file() else base_path
    max_length = resolve_max_length(model_dir, record)
    tokenizer = ServingTokenizer.from_dir(tok_dir, max_length=max_length,
                                          vocab_size=vocab if isinstance(vocab, int) else None)
    loaded = compile_head_model(core, name, xml, add_sparse_head, graph, record, cfg, device,
                                {"head": "sparse", "activation": "log1p_relu", "pooling": "max"}, tokenizer,
                                ((1, 8), (2, min(64, max_length))))  # output width: the vocabulary
    compiled, precision, engine = loaded.compiled, loaded.precision, loaded.engine

    info = ModelInfo(name=name, dimensions=engine.dimensions, max_length=max_length, pooling=Pooling.CLS,
                     normalize=False, truncate=graph.truncate, device=device, precision=precision,
                     created=loaded.created, task=Task.SPARSE.value,
                     prompts=prompts_from_record(record).with_default(cfg.default_prompt_name),
                     pruning=SparseOptions(top_k=graph.top_k, threshold=graph.threshold))
    dev = device_info(core, primary_device(core, device))
    exec_precision = property_text(compiled, "INFERENCE_PRECISION_HINT")
    log.info("sparse model %s ready on %s (%s): weights %s, inference precision %s, %s stream(s), "
             "%d infer request(s), vocabulary %d, max_length %d, token budget %d, default top_k %s threshold %g, "
             "loaded in %.2f s; %.0f MB of mapped weights released", name, device, dev.full_name, precision,
             exec_precision or "default", property_text(compiled, "NUM_STREAMS"), engine.slots, engine.dimensions,
             max_length, batch_token_budget(cfg.max_batch_tokens, engine.dimensions), graph.top_k or "all",
             graph.threshold, time.perf_counter() - started, loaded.released / 2**20)
    log.info("model %s device %s", name, device_summary(dev, precision, exec_precision))
    return LoadedModel(info, engine, tokenizer)
