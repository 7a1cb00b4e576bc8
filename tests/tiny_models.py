"""Tiny random Hugging Face models built offline: one per family the exporter supports.

Each builder trains a small real tokenizer (tokenizers library) on an in-memory corpus, creates a
randomly initialised model from a transformers config, and saves both as a normal HF folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world this is a tiny corpus for a tiny tokenizer",
    "embeddings map text to vectors so that similar meanings are close",
    "openvino runs models fast on intel cpus gpus and npus",
    "what is the capital of france paris is the capital",
    "numbers like 1 2 3 42 and 2026 appear in text",
    "der schnelle braune fuchs springt über den faulen hund",
    "le chat dort sur le canapé depuis ce matin",
    "semantic search clustering retrieval and deduplication",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
] * 5

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}


def _train(kind: str, specials: list[str], corpus: list[str] | None = None):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]" if "[UNK]" in specials else "<unk>"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials)
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token="<unk>")
    else:  # byte-level BPE
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus or CORPUS, trainer)
    return _canonical(tok, kind, specials)


def _canonical(tok, kind: str, specials: list[str]):  # type: ignore[no-untyped-def]
    """The trainers of ``tokenizers`` are not deterministic: Unigram numbers the same pieces in a
    different order from run to run, and WordPiece picks among tied merges, so its very vocabulary
    changes. A different vocabulary makes a different random model (and a tiny int8 reranker that
    passes its export verification on one run and fails it on the next). Unigram keeps its pieces
    (scores rounded, as their float sums differ in the last bits) in a fixed order; WordPiece gets a
    vocabulary made from the corpus alone: the special tokens, every character alone and as a ``##``
    continuation, and every whole word, each group sorted."""
    import json

    from tokenizers import Tokenizer, models

    if kind == "unigram":
        state = json.loads(tok.to_str())
        pieces = [[piece, round(score, 4)] for piece, score in state["model"]["vocab"]]  # sums in any order
        rank = {s: i for i, s in enumerate(specials)}
        pieces.sort(key=lambda p: (0, rank[p[0]], 0.0, "") if p[0] in rank else (1, 0, -p[1], p[0]))
        state["model"]["vocab"] = pieces
        state["model"]["unk_id"] = [p[0] for p in pieces].index("<unk>")
        return Tokenizer.from_str(json.dumps(state))
    if kind == "wordpiece":
        words = sorted({w for text in CORPUS for w, _ in
                        tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text))})
        chars = sorted({c for w in words for c in w})
        vocab = [*specials, *chars, *(f"##{c}" for c in chars), *(w for w in words if len(w) > 1)]
        unk = "[UNK]" if "[UNK]" in specials else "<unk>"
        tok.model = models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token=unk)
    return tok


def _template(tok, single: str, specials: list[str]) -> None:  # type: ignore[no-untyped-def]
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=single + " $B:1", special_tokens=[(s, tok.token_to_id(s)) for s in specials]
    )


def _st_pooling(out: Path, mode: str, dim: int, max_seq_length: int) -> None:
    """sentence-transformers metadata: modules.json, 1_Pooling/config.json, sentence_bert_config.json."""
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": mode == "cls",
        "pooling_mode_mean_tokens": mode == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_lasttoken": mode == "lasttoken",
    }))
    (out / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]))
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))


def build_bert(out: Path, pooling: str | None = "mean") -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = _train("wordpiece", specials)
    _template(tok, "[CLS] $A:0 [SEP]", ["[CLS]", "[SEP]"])
    hf_tok = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                               sep_token="[SEP]", mask_token="[MASK]", model_max_length=128)
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=tok.get_vocab_size(), max_position_embeddings=128, **TINY))
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    if pooling is not None:
        _st_pooling(out, pooling, TINY["hidden_size"], 64)
    return out


def build_xlmr(out: Path) -> Path:
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = _train("unigram", specials)
    _template(tok, "<s> $A:0 </s>", ["<s>", "</s>"])
    hf_tok = XLMRobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                     cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    torch.manual_seed(1)
    config = XLMRobertaConfig(vocab_size=tok.get_vocab_size(), max_position_embeddings=66,
                              pad_token_id=tok.token_to_id("<pad>"), **TINY)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


def build_mpnet(out: Path) -> Path:
    import torch
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = _train("wordpiece", specials)
    _template(tok, "<s> $A:0 </s>", ["<s>", "</s>"])
    hf_tok = MPNetTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    torch.manual_seed(2)
    config = MPNetConfig(vocab_size=tok.get_vocab_size(), max_position_embeddings=66,
                         pad_token_id=tok.token_to_id("<pad>"), **TINY)
    MPNetModel(config, add_pooling_layer=False).save_pretrained(out)
    hf_tok.save_pretrained(out)
    _st_pooling(out, "mean", TINY["hidden_size"], 64)
    return out


def build_qwen3(out: Path) -> Path:
    """A Qwen3-Embedding-style decoder: byte-level BPE, EOS appended, LAST-token pooling."""
    import torch
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3Model

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = _train("bpe", specials)
    _template(tok, "$A:0 <|endoftext|>", ["<|endoftext|>"])
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                     padding_side="left", model_max_length=256)
    torch.manual_seed(3)
    config = Qwen3Config(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8, intermediate_size=64,
                         max_position_embeddings=256, eos_token_id=tok.token_to_id("<|endoftext|>"),
                         pad_token_id=tok.token_to_id("<|endoftext|>"))
    Qwen3Model(config).save_pretrained(out)
    hf_tok.save_pretrained(out)
    _st_pooling(out, "lasttoken", 32, 128)
    return out


PROMPTS = {"query": "query: ", "passage": "passage: "}


def build_bert_prompts(out: Path) -> Path:
    """bert-mean plus e5-style prompts in config_sentence_transformers.json (default: query)."""
    build_bert(out, "mean")
    (out / "config_sentence_transformers.json").write_text(json.dumps({
        "prompts": PROMPTS, "default_prompt_name": "query", "similarity_fn_name": "cosine"}))
    return out


def _pair_template(tok, single: str, pair: str, specials: list[str]) -> None:  # type: ignore[no-untyped-def]
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(s, tok.token_to_id(s)) for s in specials]
    )


def _spread_scores(model, last, hf_tok) -> None:  # type: ignore[no-untyped-def]
    """Random classifiers give every pair nearly the same logit. Rescale the last layer so the
    logits of corpus pairs have mean 0 and standard deviation 2: scores spread over (0, 1) and
    rankings are well defined."""
    import torch

    pairs = [(a, b) for a in CORPUS[:10] for b in CORPUS[:10]]
    model.eval()
    with torch.no_grad():
        enc = hf_tok([a for a, _ in pairs], [b for _, b in pairs], padding=True, truncation=True, return_tensors="pt")
        logits = model(**enc).logits[:, 0]
        scale = 2.0 / float(logits.std())
        last.weight.mul_(scale)
        last.bias.sub_(float(logits.mean())).mul_(scale)


def bert_pair_tokenizer():  # type: ignore[no-untyped-def]
    """A trained WordPiece ``tokenizers.Tokenizer`` with BERT's pair template (no torch needed)."""
    tok = _train("wordpiece", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    _pair_template(tok, "[CLS] $A:0 [SEP]", "[CLS] $A:0 [SEP] $B:1 [SEP]:1", ["[CLS]", "[SEP]"])
    return tok


def build_bert_reranker(out: Path) -> Path:
    """A cross-encoder like ms-marco-MiniLM: BERT pair template with token types, one logit."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    tok = bert_pair_tokenizer()
    hf_tok = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                               sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    torch.manual_seed(4)
    config = BertConfig(vocab_size=tok.get_vocab_size(), max_position_embeddings=64, num_labels=1,
                        initializer_range=0.2, **TINY)
    model = BertForSequenceClassification(config)
    _spread_scores(model, model.classifier, hf_tok)
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


NLI_LABELS = ("contradiction", "neutral", "entailment")
GUARD_LABELS = ("toxic", "insult", "threat")


def build_bert_classifier(out: Path, *, multi_label: bool = False) -> Path:
    """A sequence classifier with three labels: NLI-style (softmax, ``NLI_LABELS``) or, with ``multi_label``, a
    toxicity/guard-style one (``problem_type`` multi_label_classification, sigmoid, ``GUARD_LABELS``). BERT's
    pair template with token types; logits rescaled so their spread over corpus texts is about 2."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    tok = bert_pair_tokenizer()
    hf_tok = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                               sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    labels = GUARD_LABELS if multi_label else NLI_LABELS
    torch.manual_seed(6 if multi_label else 7)
    config = BertConfig(vocab_size=tok.get_vocab_size(), max_position_embeddings=64, num_labels=len(labels),
                        id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)},
                        initializer_range=0.2, **TINY)
    if multi_label:
        config.problem_type = "multi_label_classification"
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():
        enc = hf_tok(CORPUS[:10], padding=True, truncation=True, return_tensors="pt")
        logits = model(**enc).logits
        scale = 2.0 / float(logits.std())
        model.classifier.weight.mul_(scale)
        model.classifier.bias.sub_(logits.mean(dim=0)).mul_(scale)
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


def build_xlmr_reranker(out: Path) -> Path:
    """A cross-encoder like bge-reranker: XLM-R pair template (all type 0), one logit."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = _train("unigram", specials)
    _pair_template(tok, "<s> $A:0 </s>", "<s> $A:0 </s> </s> $B:0 </s>", ["<s>", "</s>"])
    hf_tok = XLMRobertaTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                     cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                     model_max_length=64)
    torch.manual_seed(5)
    config = XLMRobertaConfig(vocab_size=tok.get_vocab_size(), max_position_embeddings=66, num_labels=1,
                              pad_token_id=tok.token_to_id("<pad>"), initializer_range=0.2, **TINY)
    model = XLMRobertaForSequenceClassification(config)
    _spread_scores(model, model.classifier.out_proj, hf_tok)
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


def build_cross_encoder_from(encoder: Path, out: Path) -> Path:
    """A cross-encoder from a real BERT-family encoder (e.g. the packaged MiniLM) with a random
    one-logit head: scores are meaningless, shapes and speed are real."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(6)
    hf_tok = AutoTokenizer.from_pretrained(str(encoder))
    model = AutoModelForSequenceClassification.from_pretrained(str(encoder), num_labels=1)
    _spread_scores(model, model.classifier, hf_tok)
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


def build_bert_sparse(out: Path) -> Path:
    """A SPLADE-style masked LM: BERT with an MLM head (tied embeddings), wide random weights so the
    log(1 + relu(logits)) weights are spread and a few hundred vocabulary entries are non-zero."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = _train("wordpiece", specials)
    _template(tok, "[CLS] $A:0 [SEP]", ["[CLS]", "[SEP]"])
    hf_tok = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                               sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    torch.manual_seed(7)
    config = BertConfig(vocab_size=tok.get_vocab_size(), max_position_embeddings=64, initializer_range=0.2, **TINY)
    model = BertForMaskedLM(config)
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "bert-mean": lambda p: build_bert(p, "mean"),
    "bert-cls": lambda p: build_bert(p, "cls"),
    "xlmr": build_xlmr,
    "mpnet": build_mpnet,
    "qwen3": build_qwen3,
    "bert-prompts": build_bert_prompts,
    "bert-rerank": build_bert_reranker,
    "xlmr-rerank": build_xlmr_reranker,
    "bert-sparse": build_bert_sparse,
    "bert-classify": build_bert_classifier,
    "bert-multilabel": lambda p: build_bert_classifier(p, multi_label=True),
}


# Random tiny weights amplify int8 error: on CPUs with VNNI/AMX OpenVINO also quantizes the
# activations of int8 layers dynamically, which took the tiny XLM-R's max score difference from
# 0.038 to 0.098 (Xeon with AMX); a real cross-encoder stays far below the 0.06 default.
TINY_INT8_MAX_SCORE_DIFF = 0.15
# The same error swaps some of the 144 (document, document) orders of the built-in pairs whose tiny-model
# scores lie close together: 0.979 of them kept their order on a Xeon with VNNI, and random builds (before
# the builds were made deterministic) ranged 0.938-0.986 on two CPUs, against the int8 default of 0.95.
TINY_INT8_MIN_RANK_AGREEMENT = 0.9


def build_bge_m3(out: Path, colbert_dim: int = 16) -> Path:
    """A BGE-M3-style folder as FlagEmbedding ships it: the tiny XLM-R encoder with ``sparse_linear.pt`` (hidden -> 1)
    and ``colbert_linear.pt`` (hidden -> ``colbert_dim``) beside it, seeded; the sparse bias keeps some weights > 0."""
    import torch

    build_xlmr(out)
    hidden = TINY["hidden_size"]
    torch.manual_seed(13)
    sparse = torch.nn.Linear(hidden, 1)
    torch.nn.init.normal_(sparse.weight, std=0.5)
    torch.nn.init.constant_(sparse.bias, 0.1)
    colbert = torch.nn.Linear(hidden, colbert_dim)
    torch.save(sparse.state_dict(), out / "sparse_linear.pt")
    torch.save(colbert.state_dict(), out / "colbert_linear.pt")
    return out
