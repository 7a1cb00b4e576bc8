"""Tiny random sentence-transformers folders for the model families of issue 22: module chains after
pooling (Dense, LayerNorm, Normalize, pooling variants) and architectures optimum-intel does not export
here (ModernBERT, Gemma3 bidirectional, Mistral/Llama decoders, T5 encoder + Dense).

Each is built offline and seeded, saved with ``SentenceTransformer.save`` as a complete folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.tiny_models import _template, _train, build_bert

_SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}


def _save_st(hf_dir: Path, out: Path, modules_after: Callable[[int], list[Any]], *, seed: int,
             max_seq_length: int = 64, prompts: dict[str, str] | None = None) -> Path:
    """hf_dir (a transformers folder) + the given modules, saved as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer, models

    transformer = models.Transformer(str(hf_dir), max_seq_length=max_seq_length)
    torch.manual_seed(seed)
    st = SentenceTransformer(modules=[transformer, *modules_after(transformer.get_embedding_dimension())],
                             device="cpu", prompts=prompts or None)
    st.save(str(out))
    shutil.rmtree(hf_dir)
    return out


def _dense(in_dim: int, out_dim: int, activation: Any) -> Any:
    from sentence_transformers import models

    return models.Dense(in_dim, out_dim, activation_function=activation)


def build_bert_dense(out: Path) -> Path:
    """LaBSE/GTR-style: mean pooling -> Dense 32->16 (Tanh) -> Normalize."""
    import torch
    from sentence_transformers import models

    hf = build_bert(out.with_name(out.name + "-hf"), pooling=None)
    return _save_st(hf, out, lambda d: [models.Pooling(d, "mean"), _dense(d, 16, torch.nn.Tanh()),
                                        models.Normalize()], seed=11)


def build_bert_stack(out: Path) -> Path:
    """cls+max+mean pooling concatenated -> Dense 96->24 (GELU) -> LayerNorm -> Dense 24->16 (Identity)."""
    import torch
    from sentence_transformers import models

    hf = build_bert(out.with_name(out.name + "-hf"), pooling=None)
    return _save_st(hf, out, lambda d: [models.Pooling(d, ("cls", "max", "mean")), _dense(3 * d, 24, torch.nn.GELU()),
                                        models.LayerNorm(24), _dense(24, 16, torch.nn.Identity())], seed=12)


def build_bert_weighted(out: Path) -> Path:
    """weightedmean + mean_sqrt_len pooling, no Dense."""
    from sentence_transformers import models

    hf = build_bert(out.with_name(out.name + "-hf"), pooling=None)
    return _save_st(hf, out, lambda d: [models.Pooling(d, ("mean_sqrt_len_tokens", "weightedmean"))], seed=13)


def build_bert_no_prompt(out: Path) -> Path:
    """INSTRUCTOR-style: mean pooling with include_prompt false, e5-style prompts (default query)."""
    from sentence_transformers import models

    hf = build_bert(out.with_name(out.name + "-hf"), pooling=None)
    _save_st(hf, out, lambda d: [models.Pooling(d, "mean", include_prompt=False)], seed=14,
             prompts={"query": "represent the query for retrieval: ", "passage": "passage: "})
    conf = json.loads((out / "config_sentence_transformers.json").read_text())
    conf["default_prompt_name"] = "query"
    (out / "config_sentence_transformers.json").write_text(json.dumps(conf))
    return out


def build_bert_unmappable(out: Path) -> Path:
    """bert-mean whose modules.json adds a module ovembed has no mapping for."""
    build_bert(out, "mean")
    modules = json.loads((out / "modules.json").read_text())
    modules.append({"idx": 2, "name": "2", "path": "2_WordWeights", "type": "sentence_transformers.models.WordWeights"})
    (out / "modules.json").write_text(json.dumps(modules))
    (out / "2_WordWeights").mkdir()
    (out / "2_WordWeights" / "config.json").write_text("{}")
    return out


def _bert_like_tokenizer():  # type: ignore[no-untyped-def]
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = _train("wordpiece", specials)
    _template(tok, "[CLS] $A:0 [SEP]", ["[CLS]", "[SEP]"])
    return tok


def build_modernbert(out: Path) -> Path:
    """gte-modernbert-style: ModernBERT, CLS pooling."""
    import torch
    from sentence_transformers import models
    from transformers import ModernBertConfig, ModernBertModel, PreTrainedTokenizerFast

    tok = _bert_like_tokenizer()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                     sep_token="[SEP]", mask_token="[MASK]", model_max_length=128)
    torch.manual_seed(21)
    config = ModernBertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=3,
                              num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                              local_attention=16, global_attn_every_n_layers=2,
                              pad_token_id=tok.token_to_id("[PAD]"), cls_token_id=tok.token_to_id("[CLS]"),
                              sep_token_id=tok.token_to_id("[SEP]"), bos_token_id=tok.token_to_id("[CLS]"),
                              eos_token_id=tok.token_to_id("[SEP]"))
    hf = out.with_name(out.name + "-hf")
    ModernBertModel(config).save_pretrained(hf)
    hf_tok.save_pretrained(hf)
    return _save_st(hf, out, lambda d: [models.Pooling(d, "cls")], seed=21)


def _bpe_tokenizer(bos: str, eos: str, pad: str, template: str, padding_side: str):  # type: ignore[no-untyped-def]
    from transformers import PreTrainedTokenizerFast

    specials = list(dict.fromkeys([pad, bos, eos, "<unk>"]))
    tok = _train("bpe", specials)
    _template(tok, template, [s for s in (bos, eos) if s in template])
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
                                     unk_token="<unk>", padding_side=padding_side, model_max_length=128)
    return tok, hf_tok


def build_gemma3(out: Path) -> Path:
    """EmbeddingGemma-style: Gemma3 text, bidirectional attention, mean pooling -> Dense 32->64 -> Dense 64->32
    (Identity, no bias) -> Normalize."""
    import torch
    from sentence_transformers import models
    from transformers import Gemma3TextConfig, Gemma3TextModel

    tok, hf_tok = _bpe_tokenizer("<bos>", "<eos>", "<pad>", "<bos> $A:0 <eos>", "right")
    torch.manual_seed(22)
    config = Gemma3TextConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=8, intermediate_size=64,
                              max_position_embeddings=128, sliding_window=16, use_bidirectional_attention=True,
                              pad_token_id=tok.token_to_id("<pad>"), bos_token_id=tok.token_to_id("<bos>"),
                              eos_token_id=tok.token_to_id("<eos>"))
    hf = out.with_name(out.name + "-hf")
    Gemma3TextModel(config).save_pretrained(hf)
    hf_tok.save_pretrained(hf)

    def head(d: int) -> list[Any]:
        return [models.Pooling(d, "mean"),
                models.Dense(d, 64, bias=False, activation_function=torch.nn.Identity()),
                models.Dense(64, d, bias=False, activation_function=torch.nn.Identity()), models.Normalize()]

    return _save_st(hf, out, head, seed=22)


def _decoder(out: Path, kind: str, seed: int) -> Path:
    import torch
    from sentence_transformers import models
    from transformers import LlamaConfig, LlamaModel, MistralConfig, MistralModel

    tok, hf_tok = _bpe_tokenizer("<s>", "</s>", "</s>", "<s> $A:0 </s>", "left")
    torch.manual_seed(seed)
    cls_config, cls_model = (MistralConfig, MistralModel) if kind == "mistral" else (LlamaConfig, LlamaModel)
    config = cls_config(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, head_dim=8, intermediate_size=64, max_position_embeddings=128,
                        pad_token_id=tok.token_to_id("</s>"), bos_token_id=tok.token_to_id("<s>"),
                        eos_token_id=tok.token_to_id("</s>"))
    hf = out.with_name(out.name + "-hf")
    cls_model(config).save_pretrained(hf)
    hf_tok.save_pretrained(hf)
    return _save_st(hf, out, lambda d: [models.Pooling(d, "lasttoken"), models.Normalize()], seed=seed,
                    prompts={"query": "Instruct: find the passage\nQuery: "})


def build_t5(out: Path) -> Path:
    """sentence-t5/GTR-style: T5 encoder, mean pooling -> Dense 32->16 (Identity, no bias) -> Normalize."""
    import torch
    from sentence_transformers import models
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    tok = _train("unigram", specials)
    _template(tok, "$A:0 </s>", ["</s>"])
    hf_tok = T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                             extra_ids=0, model_max_length=128)
    torch.manual_seed(25)
    config = T5Config(vocab_size=tok.get_vocab_size(), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                      feed_forward_proj="relu")
    hf = out.with_name(out.name + "-hf")
    T5EncoderModel(config).save_pretrained(hf)
    hf_tok.save_pretrained(hf)

    def head(d: int) -> list[Any]:
        return [models.Pooling(d, "mean"), models.Dense(d, 16, bias=False, activation_function=torch.nn.Identity()),
                models.Normalize()]

    return _save_st(hf, out, head, seed=25)


FAMILIES: dict[str, Callable[[Path], Path]] = {
    "bert-dense": build_bert_dense,
    "bert-stack": build_bert_stack,
    "bert-weighted": build_bert_weighted,
    "bert-no-prompt": build_bert_no_prompt,
    "bert-unmappable": build_bert_unmappable,
    "modernbert": build_modernbert,
    "gemma3": build_gemma3,
    "mistral": lambda p: _decoder(p, "mistral", 23),
    "llama": lambda p: _decoder(p, "llama", 24),
    "t5": build_t5,
}
