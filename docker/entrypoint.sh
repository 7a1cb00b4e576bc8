#!/usr/bin/env bash
# Container entrypoint for the ovembed images.
#
#   no arguments, "" or a flag first -> ovembed serve <container defaults> <your flags>
#   serve [flags]                   -> the same
#   export|compare|benchmark|devices [flags] -> ovembed <command> <flags> (no defaults added)
#   --version                       -> ovembed --version
#   anything else (bash, python...) -> run it as given
#
# Container defaults for `serve` (a server bound to 127.0.0.1 inside a container is unreachable):
#   --config_path /models/config.json   (models mounted read-only at /models)
#   --rest_bind_address 0.0.0.0  --rest_port 8000  --grpc_bind_address 0.0.0.0
#
# Rule: a default is added only when you did not choose that setting yourself, either as a flag
# in any spelling (--rest_port 9000, --rest-port 9000, --rest_port=9000) or as its OVEMBED_*
# environment variable (which a flag would otherwise override). --model_path (single-model mode)
# also drops the --config_path default, since serve takes exactly one of the two. Defaults come
# before your flags, so even a spelling this script does not recognise (an abbreviation) wins:
# argparse keeps the last value.
set -euo pipefail

MODELS_CONFIG="/models/config.json"

# True when the user's flags name one of the given options (as "--opt value" or "--opt=value").
has_flag() {
    local arg opt
    for arg in "${USER_ARGS[@]+"${USER_ARGS[@]}"}"; do
        for opt in "$@"; do
            if [[ "$arg" == "$opt" || "$arg" == "$opt="* ]]; then
                return 0
            fi
        done
    done
    return 1
}

# True when the setting was chosen: a flag (both spellings) or a non-empty OVEMBED_* variable.
chosen() {
    local name="$1" env_var
    env_var="OVEMBED_${name^^}"
    if [[ -n "${!env_var:-}" ]]; then
        return 0
    fi
    has_flag "--${name}" "--${name//_/-}"
}

serve() {
    USER_ARGS=("$@")
    local defaults=()
    if ! chosen config_path && ! chosen model_path; then
        defaults+=(--config_path "$MODELS_CONFIG")
    fi
    if ! chosen rest_bind_address; then
        defaults+=(--rest_bind_address 0.0.0.0)
    fi
    if ! chosen rest_port; then
        defaults+=(--rest_port 8000)
    fi
    if ! chosen grpc_bind_address; then
        defaults+=(--grpc_bind_address 0.0.0.0)
    fi
    exec ovembed serve "${defaults[@]+"${defaults[@]}"}" "$@"
}

if [[ $# -eq 0 ]]; then
    serve
fi

case "$1" in
    --version)
        exec ovembed "$@"
        ;;
    -*)
        serve "$@"
        ;;
    serve | "")
        shift
        serve "$@"
        ;;
    export | compare | benchmark | devices)
        exec ovembed "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
