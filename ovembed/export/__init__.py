"""Export pipeline: source -> convert (optimum-intel) -> quantize (NNCF) -> tokenizer -> verify.

Needs the ``export`` extra (torch, transformers, optimum-intel, nncf); nothing here is
imported by ``ovembed.serving``.
"""

from __future__ import annotations

import importlib.util

from ovembed.errors import MissingDependency

INSTALL_HINT = (
    "pip install 'ovembed[export]' && pip uninstall -y torchvision "
    "(or run scripts/setup.sh from the ovembed source tree)"
)
_EXPORT_MODULES = ("torch", "transformers", "optimum.intel", "nncf", "openvino_tokenizers")


def require_export_stack() -> None:
    """Raise MissingDependency naming the pip command when the export extra is missing."""
    missing = []
    for name in _EXPORT_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name.split(".")[0].replace("optimum", "optimum-intel"))
    if missing:
        raise MissingDependency(
            f"the export stack is not installed (missing: {', '.join(missing)}). Run: {INSTALL_HINT}"
        )
