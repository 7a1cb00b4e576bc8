"""Prompts (instructions) a model wants in front of its inputs: e5's ``query: ``, bge's
``Represent this sentence for searching relevant passages: ``, nomic's ``search_query: ``.

The exporter reads ``prompts`` and ``default_prompt_name`` from the model's
``config_sentence_transformers.json``, adds ``--prompt name=text`` and records the result in
ovembed_model.json; the server picks one per request (:meth:`PromptSet.choose`). Standard
library only: shared by export and serving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovembed.errors import ConfigError, ExportError, InvalidInput
from ovembed.hf_files import read_json_object

ST_CONFIG_FILENAME = "config_sentence_transformers.json"

# Cohere / vLLM ``input_type`` values and the prompt names they map onto, in order of preference.
INPUT_TYPES: dict[str, tuple[str, ...]] = {
    "query": ("query", "search_query"),
    "search_query": ("search_query", "query"),
    "document": ("document", "passage", "search_document", "corpus", "doc"),
    "search_document": ("search_document", "document", "passage", "corpus", "doc"),
    "passage": ("passage", "document", "search_document", "corpus", "doc"),
    "classification": ("classification",),
    "clustering": ("clustering",),
}


@dataclass(frozen=True)
class PromptSet:
    """A model's named prompts and the name used when a request names none."""

    prompts: Mapping[str, str] = field(default_factory=dict)
    default_name: str | None = None

    def __post_init__(self) -> None:
        if self.default_name is not None and self.default_name not in self.prompts:
            raise ConfigError(f"default prompt name {self.default_name!r} is not one of the model's "
                              f"prompts ({self.describe_names()})")

    def describe_names(self) -> str:
        return ", ".join(f"'{n}'" for n in self.prompts) or "none"

    def with_default(self, name: str | None) -> PromptSet:
        """This set with the server's ``--default_prompt_name``, when the model has that prompt."""
        if name is None or name not in self.prompts:
            return self
        return PromptSet(self.prompts, name)

    def for_input_type(self, input_type: str) -> str | None:
        """The prompt name an ``input_type`` maps onto, or None when the model has none for it
        (the input is then embedded as it is). Unknown input types are a 400."""
        candidates = INPUT_TYPES.get(input_type)
        if candidates is None:
            allowed = ", ".join(f"'{t}'" for t in INPUT_TYPES)
            raise InvalidInput(f"'input_type' must be one of {allowed}, got {input_type!r}",
                               param="input_type")
        return next((name for name in candidates if name in self.prompts), None)

    def choose(self, *, prompt: str | None = None, prompt_name: str | None = None,
               input_type: str | None = None) -> str:
        """The text to put in front of every input of a request ('' for none).

        At most one of ``prompt`` (literal text), ``prompt_name`` and ``input_type`` may be
        given; with none, the default prompt (if any) applies.
        """
        given = [k for k, v in (("prompt", prompt), ("prompt_name", prompt_name),
                                ("input_type", input_type)) if v is not None]
        if len(given) > 1:
            raise InvalidInput(f"give at most one of 'prompt', 'prompt_name' and 'input_type', got "
                               f"{' and '.join(repr(g) for g in given)}", param=given[1])
        if prompt is not None:
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.prompts:
                raise InvalidInput(f"unknown prompt_name {prompt_name!r}: this model's prompts are "
                                   f"{self.describe_names()}", param="prompt_name")
            return self.prompts[prompt_name]
        if input_type is not None:
            name = self.for_input_type(input_type)
            return self.prompts[name] if name is not None else ""
        return self.prompts[self.default_name] if self.default_name is not None else ""


def parse_prompt_flags(values: list[str]) -> dict[str, str]:
    """``--prompt name=text`` values as a dict (later ones win). The text may be empty."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ExportError(f"--prompt must look like name=text, got {value!r}")
        out[name] = text
    return out


def read_model_prompts(folder: Path) -> tuple[dict[str, str], str | None]:
    """``prompts`` and ``default_prompt_name`` from config_sentence_transformers.json."""
    conf = read_json_object(Path(folder) / ST_CONFIG_FILENAME)
    raw = conf.get("prompts")
    prompts = {str(k): v for k, v in raw.items() if isinstance(v, str)} if isinstance(raw, dict) else {}
    default = conf.get("default_prompt_name")
    return prompts, default if isinstance(default, str) and default in prompts else None


def prompts_from_record(record: Mapping[str, Any]) -> PromptSet:
    """The prompts ovembed_model.json records (an empty set for older or foreign folders)."""
    raw = record.get("prompts")
    if raw is None:
        return PromptSet()
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ConfigError("ovembed_model.json: 'prompts' must map names to strings")
    default = record.get("default_prompt_name")
    if default is not None and not isinstance(default, str):
        raise ConfigError("ovembed_model.json: 'default_prompt_name' must be a string")
    return PromptSet(dict(raw), default)
