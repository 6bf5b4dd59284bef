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

show_log() {
    log "last lines of $LOG (errors first):"
    { grep -E 'level=(error|fatal)|failed to start' "$LOG" | tail -n 10
      echo '...'
      tail -n 10 "$LOG"; } >&2 2>/dev/null || true
}

started_here=""
if ! proc_running dockerd; then
    is_root || die "dockerd is not running and we are not root; start it (e.g. 'sudo make docker')"
    # Bare machines without an init system may have no cgroup filesystem mounted.
    if ! grep -qE '^[^ ]+ /sys/fs/cgroup[/ ]' /proc/mounts 2>/dev/null; then
        log "no cgroup filesystem mounted; mounting cgroup2 on /sys/fs/cgroup"
        mount -t cgroup2 none /sys/fs/cgroup || log "could not mount cgroup2 (dockerd may fail)"
    fi
    log "starting dockerd (log: $LOG)"
    mkdir -p "$(dirname "$LOG")"
    # New session, all fds redirected: make/pytest must not wait on it, and a
    # Ctrl-C in the caller must not take it down.
    setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
    started_here=1
else
    log "dockerd is running but not answering yet; waiting"
fi

start=$SECONDS
while (( SECONDS - start < WAIT )); do
    if docker_ok; then
        log "docker engine is up ($((SECONDS - start)) s)"
        exit 0
    fi
    if [ -n "$started_here" ] && ! proc_running dockerd; then
        log "dockerd exited during startup"
        show_log
        exit 1
    fi
    sleep 0.5
done
log "docker engine did not answer within ${WAIT} s"
[ -f "$LOG" ] && show_log
docker version --format '{{.Server.Version}}' >/dev/null || true
exit 1
