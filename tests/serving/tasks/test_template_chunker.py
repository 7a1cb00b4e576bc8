"""The decoder reranker's server-side template (TemplateChunker) and its in-graph yes/no head, without a real model."""

from __future__ import annotations

import numpy as np
import pytest

from ovembed.errors import InvalidInput
from ovembed.rerank_template import QWEN3_INSTRUCTION, RerankTemplate
from ovembed.serving.tasks.pair_chunker import PairChunker
from ovembed.serving.tasks.template_chunker import TemplateChunker

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
QUERY = "what is the capital of france"


@pytest.fixture(scope="module")
def tokenizer_json() -> str:
    from tests.tiny_models import CORPUS, _train

    template = RerankTemplate()
    extra = ["yes no", template.prefix, template.suffix, QWEN3_INSTRUCTION, "<Instruct>: <Query>: <Document>:"]
    return str(_train("bpe", SPECIALS, [*CORPUS, *extra * 20]).to_str())


def _plain(tokenizer_json: str):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tokenizer_json)


def test_a_pair_that_fits_is_prefix_plus_the_formatted_pair_plus_suffix(tokenizer_json: str) -> None:
    template = RerankTemplate()
    chunker = TemplateChunker(tokenizer_json, max_length=256, template=template)
    tok = _plain(tokenizer_json)
    doc = "paris is the capital"
    middle = f"<Instruct>: {QWEN3_INSTRUCTION}\n<Query>: {QUERY}\n<Document>: {doc}"
    want = [tok.encode(template.prefix, add_special_tokens=False).ids + tok.encode(middle, add_special_tokens=False).ids
            + tok.encode(template.suffix, add_special_tokens=False).ids]
    assert chunker.chunk(QUERY, [doc]).ids == want
    custom = chunker.chunk(QUERY, [doc], instruction="find french text").ids[0]
    assert tok.decode(custom, skip_special_tokens=False).count("find french text") == 1
    assert custom != want[0]


def test_long_documents_keep_prefix_suffix_and_query_in_every_window(tokenizer_json: str) -> None:
    template = RerankTemplate()
    chunker = TemplateChunker(tokenizer_json, max_length=256, template=template)
    doc = " ".join(["paris has many museums bridges and cafes"] * 40)
    chunks = chunker.chunk(QUERY, [doc, "hello world"])
    assert chunks.chunk_counts[0] > 1 and chunks.chunk_counts[1] == 1
    for ids in chunks.ids:
        assert len(ids) <= 256
        assert ids[:len(chunker.prefix_ids)] == chunker.prefix_ids
        assert ids[-len(chunker.suffix_ids):] == chunker.suffix_ids
    tok = _plain(tokenizer_json)
    assert all(f"<Query>: {QUERY}" in tok.decode(ids, skip_special_tokens=False) for ids in chunks.ids)
    truncated = chunker.chunk(QUERY, [doc], truncate=True)
    assert truncated.ids == [chunks.ids[0]]  # one window: the recipe's right truncation
    # the recipe: the formatted pair cut to the room left by prefix and suffix
    middle = tok.encode(template.middle(QUERY, doc), add_special_tokens=False).ids[:chunker.room]
    assert truncated.ids[0] == chunker.prefix_ids + middle + chunker.suffix_ids


def test_an_instruction_that_leaves_no_room_is_a_400(tokenizer_json: str) -> None:
    chunker = TemplateChunker(tokenizer_json, max_length=256, template=RerankTemplate())
    with pytest.raises(InvalidInput) as info:
        chunker.chunk(QUERY, ["paris " * 200], instruction="judge " * 200)
    assert info.value.param == "instruction"


def test_a_cross_encoder_refuses_an_instruction() -> None:
    from tests.tiny_models import bert_pair_tokenizer

    chunker = PairChunker(bert_pair_tokenizer().to_str(), max_length=64)
    with pytest.raises(InvalidInput, match="cross-encoder") as info:
        chunker.chunk("q", ["d"], instruction="x")
    assert info.value.param == "instruction"


def test_the_template_must_end_with_the_document() -> None:
    with pytest.raises(ValueError, match="must end with"):
        RerankTemplate(pair_format="{document} {query} {instruction}")
    assert RerankTemplate.from_record(RerankTemplate().describe()) == RerankTemplate()


@pytest.mark.parametrize("left", [True, False])
def test_yes_no_head_reads_the_last_real_token(left: bool) -> None:
    import openvino as ov
    import openvino.opset13 as ops

    from ovembed.heads.decoder_rerank import YesNoHead, add_yes_no_head, last_real_positions

    rng = np.random.default_rng(0)
    table = rng.standard_normal((20, 6)).astype(np.float32)
    ids_p = ops.parameter([-1, -1], ov.Type.i64, name="input_ids")
    mask_p = ops.parameter([-1, -1], ov.Type.i64, name="attention_mask")
    ids_p.output(0).get_tensor().set_names({"input_ids"})
    mask_p.output(0).get_tensor().set_names({"attention_mask"})
    hidden = ops.gather(ops.constant(table), ids_p, ops.constant(np.int64(0)))
    result = ops.result(hidden)
    result.output(0).get_tensor().set_names({"last_hidden_state"})
    rows = rng.standard_normal((2, 6)).astype(np.float32)
    model = add_yes_no_head(ov.Model([result], [ids_p, mask_p]), YesNoHead(5, 7, rows))
    ids = np.array([[0, 0, 3, 4], [1, 2, 3, 9]], dtype=np.int64)
    mask = np.array([[0, 0, 1, 1], [1, 1, 1, 1]], dtype=np.int64)
    if not left:
        ids, mask = np.array([[3, 4, 0, 0], [1, 2, 3, 9]]), np.array([[1, 1, 0, 0], [1, 1, 1, 1]])
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    out = compiled({"input_ids": ids, "attention_mask": mask})[0]
    last = last_real_positions(mask)
    state = table[ids[np.arange(2), last]]
    want = (state @ rows[0] - state @ rows[1])[:, None]
    assert out.shape == (2, 1)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    assert [o.get_any_name() for o in model.outputs] == ["logits"]


def test_other_rerank_kinds_refuse_an_instruction() -> None:
    from ovembed.serving.api import RerankOptions
    from ovembed.serving.tasks.base import refuse_instruction

    refuse_instruction(RerankOptions(), "a BGE-M3 model")  # none sent: nothing to refuse
    with pytest.raises(InvalidInput, match="this model is a BGE-M3 model") as info:
        refuse_instruction(RerankOptions(instruction="x"), "a BGE-M3 model")
    assert info.value.param == "instruction"
