"""The names of the files in a model folder, defined once (export writes them, serving reads them)."""

from __future__ import annotations

MODEL_XML = "openvino_model.xml"  # the IR (weights in the .bin beside it)
GRAPH_FILENAME = "graph.pbtxt"  # the serving options (OVMS calculator options); config.json may name another
RECORD_FILENAME = "ovembed_model.json"  # what ovembed recorded at export (options, versions, provenance)
HF_CONFIG = "config.json"  # the Hugging Face model config (vocab_size, max_position_embeddings, ...)
TOKENIZER_JSON = "tokenizer.json"  # the Hugging Face tokenizer ovembed serves with
TOKENIZER_CONFIG = "tokenizer_config.json"  # its pad token and model_max_length
POOLING_CONFIG = "1_Pooling/config.json"  # sentence-transformers' pooling module
TOKENIZER_IRS = ("openvino_tokenizer.xml", "openvino_tokenizer.bin", "openvino_detokenizer.xml",
                 "openvino_detokenizer.bin")  # openvino-tokenizers' IRs (what OVMS tokenizes with)
