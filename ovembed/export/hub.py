"""Fetch a source model from the Hugging Face Hub with ``huggingface_hub``, only the files export needs.

Everything the ecosystem's variables say is honoured because ``huggingface_hub`` reads them: ``HF_ENDPOINT``,
``HF_TOKEN`` / the token file, ``HF_HOME`` / ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE=1`` (then the cache only).
Downloads land in the Hub cache, never in the model repository, so a failed download leaves nothing there.
Each failure is one :class:`ExportError` line naming the repository and what to do.
"""

from __future__ import annotations

import errno
import fnmatch
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ovembed.errors import ExportError

if TYPE_CHECKING:
    from huggingface_hub import HfApi, ModelInfo

# Small files every export reads: model config, tokenizer, sentence-transformers module configs.
_METADATA = [
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "*.model", "spiece.model", "sentencepiece.bpe.model",
    "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "*_Pooling/*", "*_Dense/*",
    "*_Normalize/*", "README.md",
]
# An OpenVINO IR repository (OpenVINO/* on the Hub): the IR and its tokenizer IRs, used as they are.
_IR = ["openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "openvino_tokenizer.bin",
       "openvino_detokenizer.xml", "openvino_detokenizer.bin"]
_SAFETENSORS = ["*.safetensors", "*.safetensors.index.json"]
_BIN = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]


@dataclass(frozen=True)
class HubSource:
    """A Hub model fetched into the local cache."""

    repo_id: str
    path: Path  # the snapshot folder
    revision: str | None  # as asked (branch, tag or commit), None for the default branch
    commit: str | None  # the commit the snapshot is, when known
    files: tuple[str, ...]  # what was downloaded (or found in the cache)
    is_openvino_ir: bool


def is_openvino_ir_repo(files: Iterable[str]) -> bool:
    names = set(files)
    return "openvino_model.xml" in names and "openvino_model.bin" in names


def allow_patterns(files: Iterable[str]) -> list[str]:
    """The patterns of the files export needs from a repository holding ``files`` (top-level weights only).

    An OpenVINO IR repository gives its IR; otherwise ``*.safetensors`` in preference to ``*.bin``.
    Never ``onnx/``, ``openvino/`` or other frameworks' folders.
    """
    names = list(files)
    top = [n for n in names if "/" not in n]
    if is_openvino_ir_repo(top):
        return [*_METADATA, *_IR]
    if any(fnmatch.fnmatch(n, "*.safetensors") for n in top):
        return [*_METADATA, *_SAFETENSORS]
    return [*_METADATA, *_BIN]


def _progress_off(quiet: bool) -> None:
    from huggingface_hub.utils import disable_progress_bars

    if quiet or not sys.stderr.isatty():
        disable_progress_bars()


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def _translate(exc: BaseException, repo_id: str, revision: str | None, offline: bool) -> ExportError:
    """One clear line for each way a download fails."""
    import httpx
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f" at revision '{revision}'" if revision else ""
    if isinstance(exc, GatedRepoError):
        return ExportError(f"'{repo_id}' on the Hugging Face Hub is gated: accept its terms on the Hub and set "
                           "HF_TOKEN (or pass --hf_token, or run `hf auth login`)")
    if isinstance(exc, RepositoryNotFoundError):
        return ExportError(f"model '{repo_id}' was not found on the Hugging Face Hub (nor as a local folder); if it "
                           "is private, set HF_TOKEN (or pass --hf_token)")
    if isinstance(exc, RevisionNotFoundError):
        return ExportError(f"model '{repo_id}' has no revision '{revision}' (a branch, tag or commit)")
    if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled)) or offline:
        why = "HF_HUB_OFFLINE is set" if offline else f"the Hugging Face Hub ({_endpoint()}) cannot be reached"
        return ExportError(f"model '{repo_id}'{at} is not in the Hugging Face cache ({_cache_dir()}) and {why}: "
                           "connect and retry, or unset HF_HUB_OFFLINE, or pass a local folder")
    if isinstance(exc, (httpx.ConnectError, httpx.TimeoutException)):
        return ExportError(f"cannot reach the Hugging Face Hub to download '{repo_id}' ({exc.__class__.__name__}); "
                           f"check the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use the cache "
                           f"({_cache_dir()})")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return ExportError(f"the Hugging Face Hub answered HTTP {status} for '{repo_id}'{at}")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ExportError(f"disk full while downloading '{repo_id}' into {_cache_dir()}: free space there or "
                           "point HF_HUB_CACHE at a larger disk")
    if isinstance(exc, OSError):
        return ExportError(f"cannot download '{repo_id}' into {_cache_dir()}: {exc.strerror or exc}")
    return ExportError(f"downloading '{repo_id}' failed: {type(exc).__name__}: {exc}")


def _model_info(api: HfApi, repo_id: str, revision: str | None) -> ModelInfo | None:
    """The repository's file list and commit; None when the Hub cannot be reached."""
    import httpx

    try:
        return api.model_info(repo_id, revision=revision)
    except (httpx.ConnectError, httpx.TimeoutException, ConnectionError):
        return None


def fetch(repo_id: str, *, revision: str | None = None, token: str | None = None, quiet: bool = False) -> HubSource:
    """Download (or find in the cache) what export needs of ``repo_id`` and return where it is."""
    import httpx
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    offline = constants.is_offline_mode()
    _progress_off(quiet)
    try:
        info = None if offline else _model_info(HfApi(token=token), repo_id, revision)
        if info is None:  # offline, or the Hub unreachable: the cache only, as huggingface_hub does
            path = Path(snapshot_download(repo_id, revision=revision, token=token, local_files_only=True))
            files = tuple(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
            commit = path.name if len(path.name) == 40 else None
        else:
            names = [s.rfilename for s in info.siblings or []]
            patterns = allow_patterns(names)
            path = Path(snapshot_download(repo_id, revision=info.sha or revision, token=token,
                                          allow_patterns=patterns))
            files = tuple(n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns))
            commit = info.sha
    except HFValidationError:
        raise ExportError(f"source model '{repo_id}' is neither a local folder nor a valid Hugging Face id "
                          "(ORG/NAME)") from None
    except (HfHubHTTPError, httpx.HTTPError, OSError) as exc:
        raise _translate(exc, repo_id, revision, offline) from None
    if not (path / "config.json").is_file():
        raise ExportError(f"'{repo_id}' on the Hugging Face Hub has no config.json: not a transformers model")
    return HubSource(repo_id, path, revision, commit, files, is_openvino_ir_repo(files))
