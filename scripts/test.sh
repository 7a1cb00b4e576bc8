#!/usr/bin/env bash
# Set up what the tests need (scripts/setup.sh) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check ovembed tests benchmarks
exec .venv/bin/python -m pytest "$@"
