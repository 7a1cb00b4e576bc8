#!/usr/bin/env bash
# Regenerate the graph.pbtxt message modules committed in ovembed/graphs/proto/ from the vendored .proto files:
#   mediapipe/framework/*.proto                       MediaPipe's CalculatorGraphConfig and what it imports
#   embeddings/embeddings_calculator_ov.proto         OVMS EmbeddingsCalculatorOVOptions (current)
#   rerank/rerank_calculator_ov.proto                 OVMS RerankCalculatorOVOptions
#   sparse/sparse_embeddings_calculator_ov.proto      ovembed SparseEmbeddingsCalculatorOVOptions (no OVMS counterpart)
#   token/token_embeddings_calculator_ov.proto        ovembed TokenEmbeddingsCalculatorOVOptions (no OVMS counterpart)
#   classify/classification_calculator_ov.proto       ovembed ClassificationCalculatorOVOptions (no OVMS counterpart)
#   legacy/embeddings_calculator_ov_2025_2.proto      OVMS 2025.2 EmbeddingsCalculatorOVOptions (mean_pooling)
#
# Same toolchain and pins as scripts/gen_grpc.sh (grpcio-tools in a throwaway virtual environment; 1.72.2 bundles
# protoc 30.0, whose code needs protobuf >= 6.30.0 at runtime). Edits to the generated code, each checked:
# 1. protoc writes absolute imports (`from mediapipe.framework import calculator_pb2`); the modules live flat in
#    one package, so they become relative.
# 2. The messages go into a private descriptor pool (ovembed/graphs/proto/_pool.py) instead of protobuf's
#    process-wide default one, as for the gRPC stubs: the `mediapipe.*` names must not clash with a real
#    mediapipe installation in the same process. The 2025.2 options message has the same full name as the
#    current one, so it lives in a second pool of its own.
#
# Usage: scripts/gen_graph_protos.sh            (PYTHON=python3.11 GRPC_TOOLS_VERSION=x.y.z to override)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/ovembed/graphs/proto"
TOOLS_VERSION="${GRPC_TOOLS_VERSION:-1.72.2}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
FRAMEWORK=(mediapipe_options calculator_options packet_factory packet_generator status_handler stream_handler calculator)
OPTIONS=(embeddings/embeddings_calculator_ov rerank/rerank_calculator_ov sparse/sparse_embeddings_calculator_ov token/token_embeddings_calculator_ov classify/classification_calculator_ov legacy/embeddings_calculator_ov_2025_2)

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check "grpcio-tools==$TOOLS_VERSION"

protos=()
for name in "${FRAMEWORK[@]}"; do protos+=("$OUT/mediapipe/framework/$name.proto"); done
for name in "${OPTIONS[@]}"; do protos+=("$OUT/$name.proto"); done
wkt="$("$tmp/venv/bin/python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
mkdir -p "$tmp/gen"
# One protoc run per options file: the current and the 2025.2 options define the same message name.
for proto in "${protos[@]}"; do
    "$tmp/venv/bin/python" -m grpc_tools.protoc -I "$OUT" -I "$wkt" \
        --python_out="$tmp/gen" --pyi_out="$tmp/gen" "$proto"
done

edit() {  # edit <file> <sed expression> <line that must exist afterwards>
    sed -i "$2" "$1"
    if ! grep -qF "$3" "$1"; then
        echo "gen_graph_protos.sh: could not apply '$2' to $1" >&2
        exit 1
    fi
}
rm -f "$OUT"/*_pb2.py "$OUT"/*_pb2.pyi
for generated in "$tmp"/gen/*/*_pb2.py* "$tmp"/gen/*/*/*_pb2.py*; do
    [[ -e "$generated" ]] || continue
    target="$OUT/$(basename "$generated")"
    mv "$generated" "$target"
    sed -i -E 's/^from mediapipe\.framework import ([a-z_]+_pb2)/from . import \1/; s/^from mediapipe\.framework\.([a-z_]+_pb2) import /from .\1 import /' "$target"
done
for module in "$OUT"/*_pb2.py; do
    pool="_pool.POOL"
    [[ "$(basename "$module")" == "embeddings_calculator_ov_2025_2_pb2.py" ]] && pool="_pool.legacy_pool()"
    edit "$module" \
        "s/^DESCRIPTOR = _descriptor_pool\.Default()\.AddSerializedFile(/from . import _pool\nDESCRIPTOR = $pool.AddSerializedFile(/" \
        "DESCRIPTOR = $pool.AddSerializedFile("
done
if grep -n "^from mediapipe\|^import mediapipe" "$OUT"/*_pb2.py*; then
    echo "gen_graph_protos.sh: absolute mediapipe imports left" >&2
    exit 1
fi
echo "generated with grpcio-tools $TOOLS_VERSION ($("$tmp/venv/bin/python" -m grpc_tools.protoc --version)):"
ls -1 "$OUT"/*_pb2.py*
