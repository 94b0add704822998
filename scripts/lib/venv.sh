# Sourced by scripts/*: the pinned Python virtualenvs under .venv/ (the
# emulator, checkov, the Lambda build tools) and the emulator's start and stop.

ensure_venv() {
    ensure_tool_venv "$1" "" scripts/requirements.txt moto_server
}

# A tool in a virtualenv of its own, .venv/<name>/ (.venv/ itself for an empty
# name), from pinned requirements (a path under the root); (re)installed only
# when they change.
# Usage: ensure_tool_venv <root> <name> <requirements> <binary>
ensure_tool_venv() {
    local root="$1" name="$2" requirements="$1/$3" binary="$4"
    local venv="$root/.venv${name:+/$name}"
    local stamp="$venv/.requirements.sha256"
    local want
    want="$(sha256sum "$requirements" | cut -d' ' -f1)"
    if [[ -x "$venv/bin/$binary" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    echo "==> installing $binary into ${venv#"$root"/}/ ($3)" >&2
    command -v python3 >/dev/null || { echo "python3 is required (3.9 or newer)" >&2; return 1; }
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts moto on 127.0.0.1:$1 in the background, logging to $2; sets MOTO_PID.
# It runs in a session of its own (setsid, where present), so a Ctrl-C in the terminal does
# not kill it under the processes still using it; stop_moto ends it.
# Fails if it does not answer within 60 s.
start_moto() {
    local root="$1" port="$2" log="$3"
    local detach=()
    command -v setsid >/dev/null && detach=(setsid)
    "${detach[@]}" "$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    MOTO_PID=$!
    for _ in $(seq 1 600); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$MOTO_PID" 2>/dev/null; then
            echo "moto_server exited; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "moto_server did not answer on 127.0.0.1:$port within 60 s" >&2
    return 1
}

stop_moto() {
    if [[ -n "${MOTO_PID:-}" ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
}
