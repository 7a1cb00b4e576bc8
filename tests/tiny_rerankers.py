"""Tiny random decoder rerankers (Qwen3-Reranker style) built offline: a causal LM whose tokenizer
has "yes" and "no" as single tokens, the chat specials of the template, and left padding.

Also the reference recipe of Qwen3-Reranker's model card (transformers, left padding, the last
position's logits of "no" and "yes" -> log_softmax -> exp of "yes"), written here independently of
ovembed so tests compare the server with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.tiny_models import CORPUS, _train

# Qwen3-Reranker's model card, verbatim.
PREFIX = ("<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
          "Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n")
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
MAX_LENGTH = 256


def _tokenizer(with_yes_no: bool):  # type: ignore[no-untyped-def]
    from transformers import PreTrainedTokenizerFast

    # The template's texts (the prefix says "yes" and "no") make short tokenizations of it; without them the
    # vocabulary has no "yes" or "no" token.
    extra = ["yes no yes no", PREFIX, SUFFIX, DEFAULT_INSTRUCTION, "<Instruct>: <Query>: <Document>:"] \
        if with_yes_no else []
    tok = _train("bpe", SPECIALS, [*CORPUS, *extra * 20])
    if with_yes_no:
        assert tok.token_to_id("yes") is not None and tok.token_to_id("no") is not None
    else:
        assert tok.token_to_id("yes") is None or tok.token_to_id("no") is None
    return tok, PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        padding_side="left", model_max_length=MAX_LENGTH)


def build_qwen3_reranker(out: Path, *, with_yes_no: bool = True, seed: int = 31, kind: str = "qwen3") -> Path:
    """A Qwen3ForCausalLM (or ``kind`` llama / gemma, with the same template) saved with its tokenizer; the
    "yes" row of lm_head is moved so the scores of corpus pairs spread over (0, 1)."""
    import torch
    from transformers import (
        GemmaConfig,
        GemmaForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen3Config,
        Qwen3ForCausalLM,
    )

    tok, hf_tok = _tokenizer(with_yes_no)
    torch.manual_seed(seed)
    pad = tok.token_to_id("<|endoftext|>")
    classes = {"qwen3": (Qwen3Config, Qwen3ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM),
               "gemma": (GemmaConfig, GemmaForCausalLM)}
    config_cls, model_cls = classes[kind]
    config = config_cls(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, head_dim=8, intermediate_size=64,
                        max_position_embeddings=MAX_LENGTH, tie_word_embeddings=kind == "gemma", bos_token_id=None,
                        eos_token_id=tok.token_to_id("<|im_end|>"), pad_token_id=pad)
    model = model_cls(config).eval()
    if with_yes_no:  # yes - no over corpus pairs: mean 0, standard deviation 2
        yes, no = tok.token_to_id("yes"), tok.token_to_id("no")
        pairs = [(a, b) for a in CORPUS[:6] for b in CORPUS[:10]]
        with torch.no_grad():
            states = model.model(**recipe_inputs(hf_tok, pairs)).last_hidden_state[:, -1, :]
            weight = model.get_output_embeddings().weight
            delta = weight[yes] - weight[no]
            mean_state = states.mean(0)
            delta = delta - mean_state * (float((states @ delta).mean()) / float(mean_state @ mean_state))
            delta = delta * (2.0 / float((states @ delta).std()))
            weight[yes] = weight[no] + delta
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


def _format(instruction: str | None, query: str, doc: str) -> str:
    return f"<Instruct>: {instruction or DEFAULT_INSTRUCTION}\n<Query>: {query}\n<Document>: {doc}"


def recipe_inputs(hf_tok: Any, pairs: Sequence[tuple[str, str]], instruction: str | None = None,
                  max_length: int = MAX_LENGTH) -> Any:
    """The model card's ``process_inputs``: prefix + the formatted pair (truncated) + suffix, left padded."""
    prefix = hf_tok.encode(PREFIX, add_special_tokens=False)
    suffix = hf_tok.encode(SUFFIX, add_special_tokens=False)
    texts = [_format(instruction, q, d) for q, d in pairs]
    inputs = hf_tok(texts, padding=False, truncation="longest_first", return_attention_mask=False,
                    max_length=max_length - len(prefix) - len(suffix))
    inputs["input_ids"] = [prefix + ids + suffix for ids in inputs["input_ids"]]
    return hf_tok.pad(inputs, padding=True, return_tensors="pt", max_length=max_length)


def recipe_scores(source: Path, pairs: Sequence[tuple[str, str]], instruction: str | None = None) -> list[float]:
    """Qwen3-Reranker's documented scores: softmax over [no, yes] at the last position, P(yes)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(str(source), padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(str(source)).eval()
    yes, no = hf_tok.convert_tokens_to_ids("yes"), hf_tok.convert_tokens_to_ids("no")
    with torch.no_grad():
        logits = model(**recipe_inputs(hf_tok, pairs, instruction)).logits[:, -1, :]
    scores = torch.nn.functional.log_softmax(torch.stack([logits[:, no], logits[:, yes]], dim=1), dim=1)
    return [float(s) for s in scores[:, 1].exp()]


def build_seq_cls_copy(causal: Path, out: Path) -> Path:
    """The ``*-seq-cls`` conversion OVMS serves: Qwen3ForSequenceClassification, one label, its score row
    ``lm_head[yes] - lm_head[no]`` (so its sigmoid is the recipe's P(yes) on the same inputs)."""
    import torch
    from transformers import AutoTokenizer, Qwen3ForCausalLM, Qwen3ForSequenceClassification

    lm = Qwen3ForCausalLM.from_pretrained(str(causal))
    hf_tok = AutoTokenizer.from_pretrained(str(causal))
    config = lm.config
    config.num_labels = 1
    config.architectures = ["Qwen3ForSequenceClassification"]
    model = Qwen3ForSequenceClassification(config)
    model.model.load_state_dict(lm.model.state_dict())
    yes, no = hf_tok.convert_tokens_to_ids("yes"), hf_tok.convert_tokens_to_ids("no")
    with torch.no_grad():
        model.score.weight.copy_((lm.lm_head.weight[yes] - lm.lm_head.weight[no])[None])
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out
