#!/usr/bin/env bash
# ovembed over plain HTTP with curl: health, models, embeddings (float, base64, float16),
# tokenize, and the same model through the KServe v2 and Ollama routes.
#
#   ovembed serve --config_path models/config.json        # in another terminal
#   demos/curl.sh
#   OVEMBED_URL=http://127.0.0.1:9000 OVEMBED_MODEL=bge API_KEY=secret demos/curl.sh
#
# Each section prints "### <request>" and then the response body as the server sent it.
set -euo pipefail

URL="${OVEMBED_URL:-http://127.0.0.1:8000}"
MODEL="${OVEMBED_MODEL:-minilm}"
auth=()
if [[ -n "${API_KEY:-}" ]]; then
    auth=(-H "Authorization: Bearer ${API_KEY}")
fi

# call METHOD PATH [JSON BODY]: print a heading, then the body (or the status when there is none).
call() {
    local method="$1" path="$2" body="${3:-}" out
    local args=(-sS --fail-with-body "${auth[@]+"${auth[@]}"}" -X "$method" -w '\n%{http_code}')
    if [[ -n "$body" ]]; then
        args+=(-H "Content-Type: application/json" -d "$body")
    fi
    echo "### ${method} ${path}${body:+ ${body}}"
    if ! out="$(curl "${args[@]}" "${URL}${path}")"; then
        echo "request failed: ${method} ${URL}${path} -> HTTP ${out##*$'\n'}: ${out%$'\n'*}" >&2
        exit 1
    fi
    if [[ -n "${out%$'\n'*}" ]]; then
        echo "${out%$'\n'*}"
    else
        echo "HTTP ${out##*$'\n'}"
    fi
}

# Health (KServe v2; open without an API key): live = the process answers, ready = every model loaded.
call GET /v2/health/live
call GET /v2/health/ready
call GET "/v2/models/${MODEL}/ready"

# Models: OpenAI list, KServe metadata (input tensor name, output shape [-1, dim]).
call GET /v3/models
call GET "/v2/models/${MODEL}"

# Embeddings: one text or a list; L2-normalised float vectors.
call POST /v3/embeddings "{\"model\": \"${MODEL}\", \"input\": [\"The cat sat on the mat.\", \"A kitten is resting on a rug.\"]}"

# base64: little-endian float32 bytes (what the OpenAI SDK asks for by default: 4x smaller on the wire).
b64_body="{\"model\": \"${MODEL}\", \"input\": \"hello world\", \"encoding_format\": \"base64\"}"
call POST /v3/embeddings "$b64_body"
echo "### base64 decoded: the first 4 float32 values"
curl -sS --fail-with-body "${auth[@]+"${auth[@]}"}" "${URL}/v3/embeddings" -H "Content-Type: application/json" \
    -d "$b64_body" | sed -n 's/.*"embedding":"\([^"]*\)".*/\1/p' | base64 -d | od -A n -t f4 -N 16

# vLLM's embed_dtype: base64 of float16 values (half the bytes), in the byte order asked for.
# ('dimensions' cuts vectors only for models trained for it, Matryoshka; MiniLM is not: a 400.)
call POST /v3/embeddings "{\"model\": \"${MODEL}\", \"input\": \"hello world\", \"embed_dtype\": \"float16\", \"encoding_format\": \"base64\", \"endianness\": \"little\"}"

# Token ids in, embeddings out (ids from /v3/tokenize, i.e. the model's own vocabulary).
call POST /v3/tokenize "{\"model\": \"${MODEL}\", \"text\": \"hello world\"}"
call POST /v3/embeddings "{\"model\": \"${MODEL}\", \"input\": [7592, 2088]}"

# The same model through KServe v2 REST (BYTES in, FP32 [N, dim] out) and the Ollama API.
call POST "/v2/models/${MODEL}/infer" \
    '{"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "data": ["hello world"]}]}'
call POST /api/embed "{\"model\": \"${MODEL}\", \"input\": \"hello world\"}"
