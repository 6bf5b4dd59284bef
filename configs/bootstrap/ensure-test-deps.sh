#!/usr/bin/env bash
# Install what the test suite needs when it is missing — Docker engine,
# PostgreSQL server binaries, etcd, mmdebstrap — in one apt transaction, then make sure
# the Docker engine is running. PostgreSQL and etcd services are NOT started:
# the pytest fixtures start private throwaway instances on random ports.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

missing=()
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    missing+=(docker.io)
fi
if [ -z "$(pg_bin_dir)" ]; then
    missing+=(postgresql)
fi
if [ ! -x /usr/bin/etcd ] && ! command -v etcd >/dev/null 2>&1; then
    missing+=(etcd-server)
fi
# The base session image is built locally from Debian packages.
if ! command -v mmdebstrap >/dev/null 2>&1; then
    missing+=(mmdebstrap)
fi
# `corral ssh` and the storage benchmark use the real OpenSSH client.
if ! command -v ssh >/dev/null 2>&1; then
    missing+=(openssh-client)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
else
    log "docker, postgresql and etcd binaries already installed"
fi

[ -n "$(pg_bin_dir)" ] || die "PostgreSQL binaries still missing after install"
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || die "etcd still missing after install"
log "postgresql: $(pg_bin_dir); etcd: $(command -v etcd || echo /usr/bin/etcd)"

exec bash "$HERE/ensure-docker.sh"
