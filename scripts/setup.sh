#!/usr/bin/env bash
# Set up a virtual environment with ovembed, its export stack and test tools.
#   scripts/setup.sh            -> .venv with ovembed[export,test]
#   VENV=/path scripts/setup.sh -> another location
# torch is pinned to 2.13.0 (a CPU wheel on this machine kind). optimum-intel declares
# torchvision, whose PyPI build is CUDA-only and breaks `import transformers` with CPU torch;
# nothing in ovembed needs it, so it is removed once the resolver is done, and the script
# fails if any torchvision or nvidia/CUDA package is left.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet -e ".[export,test]"
"$PY" -m pip uninstall --yes --quiet torchvision torchaudio 2>/dev/null || true
leftover="$("$PY" -m pip list --format=freeze | grep -i -E '^((torchvision|torchaudio|triton)==|nvidia-|cuda-)' || true)"
if [ -n "$leftover" ]; then
    echo "setup: unwanted GPU packages were installed:" >&2
    echo "$leftover" >&2
    exit 1
fi
"$PY" -c "import torch, transformers, openvino; print('setup: torch', torch.__version__, '| transformers', transformers.__version__, '| openvino', openvino.__version__)"
