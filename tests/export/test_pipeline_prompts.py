"""Export records prompts (config_sentence_transformers.json + --prompt) and verifies each one
against sentence-transformers' encode(prompt_name=...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ovembed.config import ExportConfig, Pooling, WeightFormat
from ovembed.errors import ExportError
from ovembed.export.pipeline import export_model
from ovembed.export.verify import PROMPT_SENTENCES, SENTENCES, compare, ir_embeddings, reference_embeddings
from ovembed.repository import read_record
from tests.tiny_models import PROMPTS

pytestmark = pytest.mark.filterwarnings("ignore")


def _export(source: Path, repo: Path, **kw: object):  # type: ignore[no-untyped-def]
    cfg = ExportConfig(source_model=str(source), model_name="m", model_repository_path=repo,
                       weight_format=WeightFormat.FP32, **kw)
    return export_model(cfg)


def test_model_prompts_are_recorded_and_verified(tiny_source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = _export(tiny_source("bert-prompts"), tmp_path, prompt=["classify=Classify: "])
    record = read_record(result.model_dir)
    assert record["prompts"] == {**PROMPTS, "classify": "Classify: "}
    assert record["default_prompt_name"] == "query"
    # every prompt was verified on PROMPT_SENTENCES sentences, beside the plain ones
    assert record["verification"]["texts"] == len(SENTENCES) + 3 * PROMPT_SENTENCES
    assert record["verification"]["min_cosine"] >= 0.9999


def test_prompt_flag_overrides_and_default_flag(tiny_source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = _export(tiny_source("bert-prompts"), tmp_path, prompt=["query=search: "],
                     default_prompt_name="passage")
    record = read_record(result.model_dir)
    assert record["prompts"] == {"query": "search: ", "passage": "passage: "}
    assert record["default_prompt_name"] == "passage"


def test_models_without_prompts_record_none(tiny_source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    record = read_record(_export(tiny_source("bert-mean"), tmp_path).model_dir)
    assert record["prompts"] == {} and record["default_prompt_name"] is None


@pytest.mark.parametrize(("kw", "message"), [
    ({"prompt": ["no-equals-sign"]}, "--prompt must look like name=text"),
    ({"prompt": ["=text"]}, "--prompt must look like name=text"),
    ({"default_prompt_name": "nope"}, "--default_prompt_name 'nope' is not one of the prompts"),
])
def test_bad_prompt_flags_fail_before_any_work(tiny_source, tmp_path: Path, kw: dict[str, object],  # type: ignore[no-untyped-def]
                                               message: str) -> None:
    with pytest.raises(ExportError, match=message):
        _export(tiny_source("bert-prompts"), tmp_path, **kw)
    assert not (tmp_path / "m").exists()


def test_reference_uses_sentence_transformers_prompt_name(tiny_source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The model's own prompts are checked through encode(prompt_name=...): a recorded text that
    differs from the model's configuration fails verification."""
    source = tiny_source("bert-prompts")
    model_dir = _export(tiny_source("bert-prompts"), tmp_path).model_dir
    texts = list(SENTENCES[:PROMPT_SENTENCES])
    ref = reference_embeddings(source, texts, pooling=Pooling.MEAN, max_length=64, trust_remote_code=False,
                               use_sentence_transformers=True, prompt_name="query")
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(source), device="cpu")
    np.testing.assert_allclose(ref, st.encode(texts, prompt_name="query"), rtol=1e-5, atol=1e-6)
    ir = ir_embeddings(model_dir, ["query: " + t for t in texts], pooling=Pooling.MEAN, max_length=64,
                       trust_remote_code=False)
    cos = np.sum(ref * ir, 1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(ir, axis=1)
    assert cos.min() > 0.9999

    wrong = compare(model_dir, source, texts, pooling=Pooling.MEAN, max_length=64, threshold=0.9999,
                    trust_remote_code=False, use_sentence_transformers=True,
                    prompts={"query": "a different instruction: "}, own_prompts=["query"])
    assert not wrong.passed
    assert wrong.cosines[:len(texts)].min() > 0.9999  # the plain sentences still agree
