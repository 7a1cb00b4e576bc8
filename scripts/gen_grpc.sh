#!/usr/bin/env bash
# Regenerate the KServe v2 gRPC stubs committed in ovembed/serving/grpc/ from grpc_predict_v2.proto.
#
# grpcio-tools is a generation-time tool, never a runtime dependency: it is installed into a
# throwaway virtual environment. Its version is pinned because it decides the minimum runtime
# versions the stubs accept: grpcio-tools 1.72.2 bundles protoc 30.0, whose Python code needs
# protobuf >= 6.30.0 at runtime, and its *_pb2_grpc.py needs grpcio >= 1.72.2 (pyproject's
# lower bounds). Raising GRPC_TOOLS_VERSION means raising those bounds too.
#
# Usage: scripts/gen_grpc.sh            (PYTHON=python3.11 GRPC_TOOLS_VERSION=x.y.z to override)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/ovembed/serving/grpc"
PROTO="grpc_predict_v2.proto"
TOOLS_VERSION="${GRPC_TOOLS_VERSION:-1.72.2}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check "grpcio-tools==$TOOLS_VERSION"

# -I the stubs' own folder: the generated names are grpc_predict_v2_pb2{,_grpc}.py{,i}.
"$tmp/venv/bin/python" -m grpc_tools.protoc -I "$OUT" \
    --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" "$OUT/$PROTO"

# Two edits to the generated code, each checked:
# 1. protoc writes an absolute import of the message module; inside a package it must be relative.
# 2. The messages go into a private descriptor pool instead of protobuf's process-wide default
#    one. tritonclient (grpc_service.proto) and KServe's own stubs also define `inference.*`
#    messages there, and the default pool refuses a second definition ("duplicate symbol
#    'inference.ServerLiveRequest'"), so without this a process could not import both. Message
#    names never reach the wire (the service path /inference.GRPCInferenceService/... does, and
#    is unchanged), so this changes nothing for clients.
edit() {  # edit <file> <sed expression> <line that must exist afterwards>
    sed -i "$2" "$1"
    if ! grep -qF "$3" "$1"; then
        echo "gen_grpc.sh: could not apply '$2' to $1" >&2
        exit 1
    fi
}
edit "$OUT/grpc_predict_v2_pb2_grpc.py" \
    's/^import grpc_predict_v2_pb2 as /from . import grpc_predict_v2_pb2 as /' \
    'from . import grpc_predict_v2_pb2 as grpc__predict__v2__pb2'
edit "$OUT/grpc_predict_v2_pb2.py" \
    's/^DESCRIPTOR = _descriptor_pool\.Default()\.AddSerializedFile(/DESCRIPTOR = _descriptor_pool.DescriptorPool().AddSerializedFile(/' \
    'DESCRIPTOR = _descriptor_pool.DescriptorPool().AddSerializedFile('
echo "generated with grpcio-tools $TOOLS_VERSION ($("$tmp/venv/bin/python" -m grpc_tools.protoc --version)):"
ls -1 "$OUT"/grpc_predict_v2_pb2*
