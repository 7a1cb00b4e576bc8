#!/usr/bin/env bash
# Set up a virtual environment with ovembed, its export stack and test tools, from the lock.
#   scripts/setup.sh            -> .venv with ovembed[export,test,corpus,ray,otel] at the versions in requirements.lock
#   VENV=/path scripts/setup.sh -> another location
# The lock (refreshed only by scripts/lock.sh) pins every package, so a fresh machine gets the set
# the tests passed with. It is installed --no-deps: optimum-intel declares torchvision, whose PyPI
# build is CUDA-only and breaks `import transformers` beside CPU torch 2.13.0; the lock leaves it
# out, and the script fails if any torchvision or nvidia/CUDA package is present.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet "packaging>=23"
"$PY" scripts/check_lock.py
"$PY" -m pip install --quiet --no-deps -r requirements.lock
"$PY" -m pip install --quiet --no-deps -e .
"$PY" -m pip uninstall --yes --quiet torchvision torchaudio 2>/dev/null || true
leftover="$("$PY" -m pip list --format=freeze | grep -i -E '^((torchvision|torchaudio|triton)==|nvidia-|cuda-)' || true)"
if [ -n "$leftover" ]; then
    echo "setup: unwanted GPU packages were installed:" >&2
    echo "$leftover" >&2
    exit 1
fi
"$PY" -c "import torch, transformers, openvino; print('setup: torch', torch.__version__, '| transformers', transformers.__version__, '| openvino', openvino.__version__)"
