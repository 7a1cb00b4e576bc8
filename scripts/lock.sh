#!/usr/bin/env bash
# Refresh requirements.lock from pyproject.toml (the serving, export, test, corpus, ray and otel extras).
# Run it deliberately when a dependency should move; commit the lock with the change that needs it.
#   scripts/lock.sh                 -> re-resolve every pin
#   scripts/lock.sh -P openai       -> move one package only (pip-compile's --upgrade-package)
# torchvision/torchaudio/triton are left out: optimum-intel declares torchvision, whose PyPI build
# needs CUDA and breaks `import transformers` beside CPU torch; setup.sh installs the lock --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${TOOLS:-${TMPDIR:-/tmp}/ovembed-pip-tools}"
if [ ! -x "$TOOLS/bin/pip-compile" ]; then
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet "pip-tools>=7.4"
fi
upgrade=()
if [ "${1:-}" = "-P" ]; then upgrade=(--upgrade-package "$2"); fi
"$TOOLS/bin/pip-compile" --quiet --extra export --extra test --extra corpus --extra ray --extra otel --strip-extras \
    --no-emit-index-url --no-emit-find-links \
    --unsafe-package torchvision --unsafe-package torchaudio --unsafe-package triton \
    "${upgrade[@]}" --output-file requirements.lock pyproject.toml
echo "lock: requirements.lock has $(grep -c '^[A-Za-z]' requirements.lock) pins"
