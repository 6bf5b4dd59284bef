# Shared shell helpers for the bootstrap scripts. Source it; do not run it.
# shellcheck shell=bash

log() { printf '[corral-bootstrap] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# Run a command as root: directly when we are root, through passwordless sudo otherwise.
as_root() {
    if is_root; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "need root (or passwordless sudo) to run: $*"
    fi
}

# proc_running NAME — is a process with this exact command name running?
# (/proc scan: pgrep's procps is not on every minimal machine.)
proc_running() {
    local f c
    for f in /proc/[0-9]*/comm; do
        read -r c <"$f" 2>/dev/null || continue
        [ "$c" = "$1" ] && return 0
    done
    return 1
}

# Highest-versioned Debian PostgreSQL bin dir holding initdb (empty if none);
# falls back to an initdb on PATH.
pg_bin_dir() {
    local d best=""
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && best="$d"
    done
    if [ -z "$best" ] && command -v initdb >/dev/null 2>&1; then
        best="$(dirname "$(command -v initdb)")"
    fi
    printf '%s' "$best"
}

# apt_install PKG... — install Debian packages non-interactively, in one go.
# Runs `apt-get update` first (only called when something is actually missing).
# Package maintainer scripts are kept from starting services (postgresql,
# etcd, docker) through a temporary policy-rc.d: the test fixtures start their
# own private instances and we start dockerd ourselves.
apt_install() {
    [ "$#" -gt 0 ] || return 0
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: $*"
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        created=1
    fi
    local rc=0
    log "apt-get update (installing: $*)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 update || rc=$?
    if [ "$rc" = 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 \
            install -y --no-install-recommends "$@" || rc=$?
    fi
    if [ "$created" = 1 ]; then as_root rm -f "$policy"; fi
    [ "$rc" = 0 ] || die "apt-get failed (rc=$rc) installing: $*"
}
