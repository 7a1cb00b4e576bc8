#!/usr/bin/env bash
# Check an exported model against its PyTorch reference on your own texts: `ovembed compare`
# embeds each text with the OpenVINO model and with the original (sentence-transformers or
# transformers, using the source recorded at export), prints the cosine similarity of each pair
# and PASS/FAIL against the threshold for the model's weight format (fp32 0.9999, fp16 0.999,
# int8 0.995, int4 0.98). Needs the export extra (pip install 'ovembed[export]'); runs offline
# when the reference is a local folder or already in the Hugging Face cache.
#
#   demos/compare.sh                       # models/minilm
#   demos/compare.sh models/minilm --source_model sentence-transformers/all-MiniLM-L6-v2
#
# Exit code: 0 on PASS, 1 on FAIL (usable in CI after an export).
set -euo pipefail

MODEL_DIR="${1:-models/minilm}"
shift || true

if command -v ovembed >/dev/null 2>&1; then
    OVEMBED=(ovembed)
else
    OVEMBED=(python3 -m ovembed)
fi

# The last input is longer than MiniLM's 256 tokens: both sides truncate it the same way.
exec "${OVEMBED[@]}" compare --model_path "$MODEL_DIR" \
    --input "OpenVINO runs embedding models fast on CPUs." \
    --input "Sourdough bread rises thanks to wild yeast in the starter." \
    --input "¿Dónde está la estación de tren más cercana?" \
    --input "$(printf 'word %.0s' {1..300})" \
    "$@"
