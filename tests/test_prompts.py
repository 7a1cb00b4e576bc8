"""Prompt selection rules (ovembed/prompts.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ovembed.errors import ConfigError, ExportError, InvalidInput
from ovembed.prompts import PromptSet, parse_prompt_flags, prompts_from_record, read_model_prompts

E5 = PromptSet({"query": "query: ", "passage": "passage: "})
NOMIC = PromptSet({"search_query": "search_query: ", "search_document": "search_document: ",
                   "clustering": "clustering: "}, "search_document")


def test_prompt_name_prompt_text_and_default() -> None:
    assert E5.choose() == ""
    assert E5.choose(prompt_name="passage") == "passage: "
    assert E5.choose(prompt="Instruct: x\nQuery: ") == "Instruct: x\nQuery: "
    assert NOMIC.choose() == "search_document: "
    assert NOMIC.choose(prompt="") == ""  # an explicit empty prompt switches the default off


@pytest.mark.parametrize(("prompts", "input_type", "expected"), [
    (E5, "query", "query: "), (E5, "search_query", "query: "),
    (E5, "document", "passage: "), (E5, "search_document", "passage: "),
    (NOMIC, "query", "search_query: "), (NOMIC, "document", "search_document: "),
    (NOMIC, "clustering", "clustering: "),
    (E5, "classification", ""),  # no prompt for it: embedded as is
    (PromptSet(), "search_query", ""),
])
def test_input_type_maps_onto_the_models_prompts(prompts: PromptSet, input_type: str, expected: str) -> None:
    assert prompts.choose(input_type=input_type) == expected


def test_errors_name_the_field() -> None:
    with pytest.raises(InvalidInput, match=r"unknown prompt_name 'q'.*'query', 'passage'") as info:
        E5.choose(prompt_name="q")
    assert info.value.param == "prompt_name"
    with pytest.raises(InvalidInput, match="'input_type' must be one of") as info:
        E5.choose(input_type="image")
    assert info.value.param == "input_type"
    with pytest.raises(InvalidInput, match="at most one of"):
        E5.choose(prompt="x", prompt_name="query")
    with pytest.raises(ConfigError, match="default prompt name 'x'"):
        PromptSet({"a": "b"}, "x")


def test_server_default_applies_only_where_defined() -> None:
    assert E5.with_default("query").choose() == "query: "
    assert E5.with_default("search_query") is E5
    assert NOMIC.with_default(None).default_name == "search_document"


def test_flags_and_files(tmp_path: Path) -> None:
    assert parse_prompt_flags(["q=query: ", "d=", "q=a=b"]) == {"q": "a=b", "d": ""}
    with pytest.raises(ExportError):
        parse_prompt_flags(["nothing"])
    assert read_model_prompts(tmp_path) == ({}, None)
    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": {"query": "query: ", "bad": 3}, "default_prompt_name": "query"}))
    assert read_model_prompts(tmp_path) == ({"query": "query: "}, "query")
    assert prompts_from_record({}) == PromptSet()
    assert prompts_from_record({"prompts": {"a": "b"}, "default_prompt_name": "a"}).choose() == "b"
    with pytest.raises(ConfigError):
        prompts_from_record({"prompts": ["a"]})
