"""Which `ovembed export` options `ovembed serve --source_model` (pull mode) takes: the one declared list.

:class:`~ovembed.config.ServeConfig` gets one field per :data:`PULL_FIELDS` entry (type, default, env variable
and checks are :class:`~ovembed.config.ExportConfig`'s; the help is serve's), :mod:`ovembed.serving.models.pull`
builds the pull's ``ExportConfig`` and ``ovembed export`` command line from them, and ``ovembed serve``
refuses every other export option with :func:`refusal`'s message. Serve's own ``source_model``,
``model_name``, ``target_device`` and ``default_prompt_name`` mean the same in both commands: the first
three are passed on, the last is applied when serving. A leaf module: it imports nothing of ovembed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PullField:
    help: str  # `ovembed serve --help`
    tasks: tuple[str, ...] = ()  # the tasks it is passed on for (empty: all)

    def applies(self, task: str) -> bool:
        return not self.tasks or task in self.tasks


_WITH = "With --source_model"
# In `ovembed serve --help` order.
PULL_FIELDS: dict[str, PullField] = {
    "model_repository_path": PullField(f"{_WITH}: the repository to export into"),
    "weight_format": PullField(f"{_WITH}: weight compression of the export"),
    "pooling": PullField(f"{_WITH}: pooling (default: from the model's 1_Pooling)", tasks=("embeddings",)),
    "revision": PullField(f"{_WITH}: Hub branch, tag or commit"),
    "task": PullField(f"{_WITH}: embeddings, rerank (OVMS's rerank_ov works too), sparse, token_embed or classify"),
    "hf_token": PullField(f"{_WITH}: Hub token (default: HF_TOKEN or the token file)"),
    "extra_quantization_params": PullField(
        f"{_WITH}: optimum-cli style weight-compression options, as ovembed export takes them"),
    "skip_normalize": PullField(f"{_WITH}: do not L2-normalise the embeddings"),
    "truncate": PullField(f"{_WITH}: truncate long inputs instead of rejecting them"),
    "num_streams": PullField(f"{_WITH}: NUM_STREAMS written into the graph's plugin_config"),
    "max_doc_length": PullField(f"{_WITH} --task rerank: documents are cut to this many tokens", tasks=("rerank",)),
    "max_allowed_chunks": PullField(f"{_WITH} --task rerank: most (query, chunk) pairs per request",
                                    tasks=("rerank",)),
    "overwrite_models": PullField(f"{_WITH}: export again even if the model is in the repository"),
    "trust_remote_code": PullField(f"{_WITH}: allow code shipped with the model"),
    "reference_model": PullField(f"{_WITH} of OpenVINO IR: PyTorch model to verify it against (see ovembed export)"),
}

_HINTS = {
    "quiet": " (the pull's export is always quiet)",
    "config_file_path": " (serve's --config_path is the config.json it exports into)",
    "ov_cache_dir": " (serve's --cache_dir is the compilation cache when serving)",
}


def refusal(name: str) -> str:
    """Why ``ovembed serve`` refuses the export option ``--name``."""
    return (f"--{name} is an `ovembed export` option that `ovembed serve --source_model` does not take"
            f"{_HINTS.get(name, '')}: run `ovembed export --source_model ... --{name} ...` first, then serve "
            "the repository")
