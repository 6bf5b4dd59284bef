#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`.
#  - installs docker.io (Debian) when `dockerd`/`docker` are missing, unless --no-install;
#  - starts dockerd in the background (logs: $CORRAL_DOCKERD_LOG, default
#    /var/log/corral-dockerd.log) when it is not answering, and waits for it
#    ($CORRAL_DOCKERD_WAIT seconds, default 30).
# A dockerd we start is left running: other tools and sessions share it.
# Used by `make docker`, `make test-deps` and the pytest `docker_engine` fixture.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

INSTALL=1
for arg in "$@"; do
    case "$arg" in
        --no-install) INSTALL=0 ;;
        *) die "unknown argument: $arg" ;;
    esac
done
LOG="${CORRAL_DOCKERD_LOG:-/var/log/corral-dockerd.log}"
WAIT="${CORRAL_DOCKERD_WAIT:-30}"

docker_ok() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

if docker_ok; then
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    [ "$INSTALL" = 1 ] || die "Docker engine is not installed (no dockerd/docker binary); run 'make docker'"
    apt_install docker.io
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    is_root || die "dockerd is not running and we are not root; start it (e.g. 'sudo make docker')"
    log "starting dockerd (log: $LOG)"
    mkdir -p "$(dirname "$LOG")"
    # New session, all fds redirected: make/pytest must not wait on it, and a
    # Ctrl-C in the caller must not take it down.
    setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
else
    log "dockerd is running but not answering yet; waiting"
fi

start=$SECONDS
while (( SECONDS - start < WAIT )); do
    if docker_ok; then
        log "docker engine is up ($((SECONDS - start)) s)"
        exit 0
    fi
    sleep 0.5
done
log "docker engine did not answer within ${WAIT} s; last lines of $LOG:"
tail -n 40 "$LOG" >&2 2>/dev/null || true
docker info --format '{{.ServerVersion}}' >&2 || true
exit 1
