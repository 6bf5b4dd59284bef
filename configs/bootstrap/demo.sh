#!/usr/bin/env bash
# The main job on the embedded default: build the base image if absent, start
# `corral up` in the background if it is not already answering, then run
# Python code in a new session and print its output. A second run reuses all.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

CORRAL="$ROOT/.venv/bin/corral"
DATA_DIR="${CORRAL_DEMO_DIR:-$ROOT/.corral}"
PORT="${CORRAL_DEMO_PORT:-8080}"
export CORRAL_ENDPOINT="http://127.0.0.1:$PORT"
mkdir -p "$DATA_DIR"

bash "$HERE/ensure-mmdebstrap.sh"
"$CORRAL" image build python

if "$CORRAL" health >/dev/null 2>&1; then
    log "corral is already up at $CORRAL_ENDPOINT"
else
    log "starting corral up (data in $DATA_DIR, log in $DATA_DIR/up.log)"
    nohup "$CORRAL" up --data-dir "$DATA_DIR" --port "$PORT" >"$DATA_DIR/up.log" 2>&1 &
    echo $! >"$DATA_DIR/up.pid"
    for _ in $(seq 1 120); do
        if grep -q "corral: ready at" "$DATA_DIR/up.log" 2>/dev/null; then
            break
        fi
        if ! kill -0 "$(cat "$DATA_DIR/up.pid")" 2>/dev/null; then
            tail -n 30 "$DATA_DIR/up.log" >&2
            die "corral up exited; see $DATA_DIR/up.log"
        fi
        sleep 0.5
    done
    grep -q "corral: ready at" "$DATA_DIR/up.log" || die "corral up did not come up in 60 s; see $DATA_DIR/up.log"
fi

log "running Python in a new session:"
"$CORRAL" run --cpu 1 --mem 512m - <<'PYTHON'
import os, platform, sys
print(f"Hello from session {os.environ['CORRAL_SESSION_NAME']} on {platform.node()}")
print(f"Python {sys.version.split()[0]}, {os.environ['CORRAL_CPU']} CPU, {int(os.environ['CORRAL_MEM']) >> 20} MiB")
print("sum of squares below 10**6:", sum(i * i for i in range(10**6)))
PYTHON
web_ui_line=$(grep -o "web UI: .*" "$DATA_DIR/up.log" | tail -n 1 || true)
[ -n "$web_ui_line" ] && log "$web_ui_line"
log "done. The stack keeps running: corral session ls, corral run CODE; stop it with: kill \$(cat $DATA_DIR/up.pid)"
