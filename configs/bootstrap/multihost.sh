#!/usr/bin/env bash
# A multi-host test rig on one machine: N "hosts", each a Linux network
# namespace with its own dockerd, cabled with veth pairs to one bridge that lives
# in a dedicated "switch" namespace. Traffic between hosts really crosses a
# (virtual) network, and a host can be cut off (its switch port goes down) and
# restored. Nothing is added to the root namespace: no interface, route,
# bridge or iptables rule, and the machine's own dockerd is not touched.
#
# usage: multihost.sh [OPTIONS] up [N]          build the rig with N hosts (default 2, at most 8)
#        multihost.sh [OPTIONS] down            tear everything down (also half-built rigs)
#        multihost.sh [OPTIONS] status          one line per host (exit 0: all up; 1: degraded; 3: no rig)
#        multihost.sh [OPTIONS] cut HOST        pull HOST's cable: its switch port goes down
#        multihost.sh [OPTIONS] restore HOST    plug it back in
#        multihost.sh [OPTIONS] exec HOST CMD...        run CMD in HOST's network namespace
#        multihost.sh [OPTIONS] load-image IMAGE [HOST...]  copy IMAGE from the machine's
#                                               main dockerd into the rig's (all hosts by default)
# HOST: h2, 2, the namespace name (corral-mh-h2) or the host's IP.
#
# options (or environment):
#   --state-dir DIR  (CORRAL_MH_STATE_DIR, default /run/corral-multihost) everything on disk:
#                    per host h<i>/{data,run,docker.sock,dockerd.log,dockerd.pid}. Docker data
#                    roots live here: use a disk-backed directory when /run is a tmpfs.
#   --prefix P       (CORRAL_MH_PREFIX, default corral-mh) namespace names: P-sw, P-h1, ...;
#                    also the dockerd cgroup parents /P-h<i>
#   --net A.B        (CORRAL_MH_NET, default 10.231) the rig LAN is A.B.0.0/24, host i is
#                    A.B.0.(10+i); host i's containers (default bridge) get A.B.(100+i).0/24,
#                    routed between hosts without NAT
#   --wait S         (CORRAL_MH_DOCKERD_WAIT, default 60) seconds to wait for each dockerd
#
# `up` and `status` print, per host, a line of key=value fields on stdout:
#   host=h1 netns=corral-mh-h1 ip=10.231.0.11 docker=unix:///run/corral-multihost/h1/docker.sock link=up dockerd=running
# Exit status: 0 ok, 1 failed, 2 this machine cannot host the rig (not root, no netns, tools
# missing), 3 (status only) no rig, 64 usage error.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

log() { printf '[corral-multihost] %s\n' "$*" >&2; }
fail() { local rc="$1"; shift; log "ERROR: $*"; exit "$rc"; }
die() { fail 1 "$@"; }
usage_error() { log "ERROR: $*"; log "usage: $0 [--state-dir DIR] [--prefix P] [--net A.B] [--wait S] up [N]|down|status|cut HOST|restore HOST|exec HOST CMD...|load-image IMAGE [HOST...]"; exit 64; }

STATE_DIR="${CORRAL_MH_STATE_DIR:-/run/corral-multihost}"
OPT_PREFIX="${CORRAL_MH_PREFIX:-}"
OPT_NET="${CORRAL_MH_NET:-}"
WAIT="${CORRAL_MH_DOCKERD_WAIT:-60}"
MAX_HOSTS=8
MARKER=".corral-multihost"

while [ "$#" -gt 0 ]; do
    case "$1" in
        --state-dir) [ "$#" -ge 2 ] || usage_error "--state-dir needs a value"; STATE_DIR="$2"; shift 2 ;;
        --state-dir=*) STATE_DIR="${1#*=}"; shift ;;
        --prefix) [ "$#" -ge 2 ] || usage_error "--prefix needs a value"; OPT_PREFIX="$2"; shift 2 ;;
        --prefix=*) OPT_PREFIX="${1#*=}"; shift ;;
        --net) [ "$#" -ge 2 ] || usage_error "--net needs a value"; OPT_NET="$2"; shift 2 ;;
        --net=*) OPT_NET="${1#*=}"; shift ;;
        --wait) [ "$#" -ge 2 ] || usage_error "--wait needs a value"; WAIT="$2"; shift 2 ;;
        --wait=*) WAIT="${1#*=}"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
        --) shift; break ;;
        -*) usage_error "unknown option: $1" ;;
        *) break ;;
    esac
done
[ "$#" -ge 1 ] || usage_error "no command given"
CMD="$1"; shift

[[ "$WAIT" =~ ^[0-9]+$ ]] || usage_error "--wait must be a whole number of seconds: $WAIT"
[ -n "$STATE_DIR" ] || usage_error "--state-dir is empty"
case "$STATE_DIR" in /*) ;; *) STATE_DIR="$PWD/$STATE_DIR" ;; esac
STATE_DIR="${STATE_DIR%/}"
[ -n "$STATE_DIR" ] && [ "$STATE_DIR" != "/" ] || usage_error "refusing / as the state dir"

# --- recorded rig settings ---------------------------------------------------------------

PREFIX="" NET="" HOSTS="" NETNS_DIR_CREATED=0
RIG_ENV="$STATE_DIR/rig.env"

read_rig_env() {  # parse rig.env (key=value, no shell evaluation)
    [ -f "$RIG_ENV" ] || return 1
    local key value
    while IFS='=' read -r key value; do
        case "$key" in
            PREFIX) PREFIX="$value" ;;
            NET) NET="$value" ;;
            HOSTS) HOSTS="$value" ;;
            NETNS_DIR_CREATED) NETNS_DIR_CREATED="$value" ;;
        esac
    done <"$RIG_ENV"
    return 0
}

write_rig_env() {
    printf 'PREFIX=%s\nNET=%s\nHOSTS=%s\nNETNS_DIR_CREATED=%s\n' \
        "$PREFIX" "$NET" "$HOSTS" "$NETNS_DIR_CREATED" >"$RIG_ENV.tmp"
    mv "$RIG_ENV.tmp" "$RIG_ENV"
}

HAVE_RIG=0
if read_rig_env; then
    HAVE_RIG=1
    if [ -n "$OPT_PREFIX" ] && [ "$OPT_PREFIX" != "$PREFIX" ]; then
        usage_error "state dir $STATE_DIR holds a rig with prefix '$PREFIX', not '$OPT_PREFIX'"
    fi
    if [ -n "$OPT_NET" ] && [ "$OPT_NET" != "$NET" ]; then
        usage_error "state dir $STATE_DIR holds a rig on $NET.0.0/24, not $OPT_NET.0.0/24"
    fi
else
    PREFIX="${OPT_PREFIX:-corral-mh}"
    NET="${OPT_NET:-10.231}"
fi
[[ "$PREFIX" =~ ^[a-z][a-z0-9-]{0,23}$ ]] || usage_error "bad prefix '$PREFIX' (lowercase letters, digits, '-'; at most 24)"
[[ "$NET" =~ ^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])$ ]] \
    || usage_error "bad --net '$NET' (two octets, e.g. 10.231)"

SW_NS="$PREFIX-sw"
BRIDGE=br0                                   # inside $SW_NS
host_ns() { printf '%s-h%s' "$PREFIX" "$1"; }
host_ip() { printf '%s.0.%s' "$NET" "$((10 + $1))"; }
host_bip() { printf '%s.%s.1/24' "$NET" "$((100 + $1))"; }
host_csub() { printf '%s.%s.0/24' "$NET" "$((100 + $1))"; }
host_dir() { printf '%s/h%s' "$STATE_DIR" "$1"; }
host_sock() { printf '%s/h%s/docker.sock' "$STATE_DIR" "$1"; }
host_port() { printf 'h%s' "$1"; }          # the switch-side end of host i's cable (in $SW_NS)
host_cgroup() { printf '%s-h%s' "$PREFIX" "$1"; }

# --- helpers ---------------------------------------------------------------------------------

require_root_and_tools() {
    is_root || fail 2 "must run as root (network namespaces, dockerd)"
    local t
    for t in ip dockerd docker nsenter unshare setsid; do
        command -v "$t" >/dev/null 2>&1 || fail 2 "'$t' not found (needs iproute2, util-linux, docker.io)"
    done
}

ns_exists() { [ -e "/run/netns/$1" ]; }

# Namespaces on this machine named like this rig's (also those a lost state dir left behind).
prefix_host_indices() {
    ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^$PREFIX-h\([1-9][0-9]*\)\$/\1/p" | sort -n
}

# All host indices to consider: recorded, present as namespaces, present as state dirs.
known_host_indices() {
    {
        if [ -n "$HOSTS" ]; then seq 1 "$HOSTS"; fi
        prefix_host_indices
        local d
        for d in "$STATE_DIR"/h[0-9]*; do
            if [ -d "$d" ]; then printf '%s\n' "${d##*/h}"; fi
        done
    } | { grep -E '^[1-9][0-9]*$' || true; } | sort -nu
}

docker_ok() { timeout 15 docker -H "unix://$(host_sock "$1")" info >/dev/null 2>&1; }

# The pid of host i's dockerd (from its pidfile, checked against /proc), or nothing.
dockerd_pid() {
    local pidfile pid
    pidfile="$(host_dir "$1")/dockerd.pid"
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--data-root $(host_dir "$1")/data"; then
        printf '%s' "$pid"
    fi
}

# Pids of host i's docker daemons (dockerd, its containerd, shims, proxies): the processes of
# those names whose command line names host i's state dir, wherever their namespace.
state_dir_pids() {
    local hdir f pid comm
    hdir="$(host_dir "$1")"
    grep -laF -- "$hdir/" /proc/[0-9]*/cmdline 2>/dev/null | while read -r f; do
        pid="${f#/proc/}"; pid="${pid%/cmdline}"
        { read -r comm <"/proc/$pid/comm"; } 2>/dev/null || continue
        case "$comm" in dockerd|containerd|containerd-shim*|docker-proxy|runc) printf '%s\n' "$pid" ;; esac
    done
    return 0
}

# cgroup directories of host i (one per mounted hierarchy), deepest first.
cgroup_dirs() {
    local mnt name
    name="$(host_cgroup "$1")"
    awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts | sort -u | while read -r mnt; do
        if [ -d "$mnt/$name" ]; then find "$mnt/$name" -depth -type d 2>/dev/null || true; fi
    done
    return 0
}

cgroup_pids() {
    local d
    cgroup_dirs "$1" | while read -r d; do
        cat "$d/cgroup.procs" 2>/dev/null || true
    done | sort -nu
}

log_tail() {  # errors first, then the last lines
    local logf="$1"
    [ -f "$logf" ] || { echo "  (no log at $logf)"; return 0; }
    echo "  --- $logf: errors ---"
    grep -E 'level=(error|fatal)|failed to start|Error starting|unable to' "$logf" | tail -n 8 | sed 's/^/  /' || true
    echo "  --- $logf: last lines ---"
    tail -n 15 "$logf" | sed 's/^/  /'
}

resolve_host() {  # HOST argument -> index
    local arg="$1" i
    [ "$HAVE_RIG" = 1 ] || fail 1 "no rig in $STATE_DIR (run '$0 up' first)"
    for i in $(seq 1 "$HOSTS"); do
        if [ "$arg" = "h$i" ] || [ "$arg" = "$i" ] || [ "$arg" = "$(host_ns "$i")" ] || [ "$arg" = "$(host_ip "$i")" ]; then
            printf '%s' "$i"; return 0
        fi
    done
    usage_error "no host '$arg' in this rig (hosts: $(seq -s ' ' -f 'h%g' 1 "$HOSTS"))"
}

link_state() {  # up | cut | missing
    local flags
    flags="$(ip -n "$SW_NS" -o link show "$(host_port "$1")" 2>/dev/null | sed -n 's/^[0-9]*: [^<]*<\([^>]*\)>.*/\1/p')" || true
    if [ -z "$flags" ]; then echo missing
    elif [[ ",$flags," == *",UP,"* ]]; then echo up
    else echo cut
    fi
}

dockerd_state() {  # running | starting | stopped
    if docker_ok "$1"; then echo running
    elif [ -n "$(dockerd_pid "$1")" ]; then echo starting
    else echo stopped
    fi
}

print_hosts() {  # status lines; returns 1 when anything is not as `up` leaves it
    local i ns link dstate bad=0
    log "rig: state dir $STATE_DIR, prefix $PREFIX, LAN $NET.0.0/24 (switch namespace $SW_NS), $HOSTS host(s)"
    for i in $(seq 1 "$HOSTS"); do
        ns="$(host_ns "$i")"
        if ns_exists "$ns"; then link="$(link_state "$i")"; else link=missing; bad=1; fi
        dstate="$(dockerd_state "$i")"
        [ "$dstate" = running ] || bad=1
        [ "$link" != missing ] || bad=1
        printf 'host=h%s netns=%s ip=%s docker=unix://%s link=%s dockerd=%s\n' \
            "$i" "$ns" "$(host_ip "$i")" "$(host_sock "$i")" "$link" "$dstate"
    done
    ns_exists "$SW_NS" || { log "switch namespace $SW_NS is missing"; bad=1; }
    return "$bad"
}

# --- up ----------------------------------------------------------------------------------------

setup_switch() {
    if ns_exists "$SW_NS"; then
        log "switch namespace $SW_NS: already there"
    else
        ip netns add "$SW_NS" || fail 2 "cannot create network namespace $SW_NS"
        log "switch namespace $SW_NS: created"
    fi
    ip -n "$SW_NS" link set lo up
    if ! ip -n "$SW_NS" link show "$BRIDGE" >/dev/null 2>&1; then
        ip -n "$SW_NS" link add "$BRIDGE" type bridge stp_state 0 forward_delay 0
    fi
    ip -n "$SW_NS" link set "$BRIDGE" up
}

setup_host() {
    local i="$1" ns ip port
    ns="$(host_ns "$i")"; ip="$(host_ip "$i")"; port="$(host_port "$i")"
    if ns_exists "$ns"; then
        log "h$i: namespace $ns already there"
    else
        ip netns add "$ns" || fail 2 "cannot create network namespace $ns"
        log "h$i: namespace $ns created"
    fi
    ip -n "$ns" link set lo up
    if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
        # A switch port without its host end is a leftover: replace it.
        ip -n "$SW_NS" link del "$port" >/dev/null 2>&1 || true
        # Both ends are created straight in their namespaces: nothing appears in the root namespace.
        ip link add name eth0 netns "$ns" type veth peer name "$port" netns "$SW_NS"
        ip -n "$SW_NS" link set "$port" master "$BRIDGE" up
        log "h$i: cabled to the switch (eth0 <-> $SW_NS/$port)"
    elif ! ip -n "$SW_NS" link show "$port" >/dev/null 2>&1; then
        die "h$i: $ns has an eth0 but the switch has no port $port (half-built rig: run '$0 down' first)"
    fi
    if ! ip -n "$ns" -4 -o addr show dev eth0 | grep -qF " $ip/24 "; then
        ip -n "$ns" addr add "$ip/24" dev eth0
    fi
    ip -n "$ns" link set eth0 up
}

setup_routes() {  # host i reaches host j's container subnet through host j
    local i j
    for i in $(seq 1 "$HOSTS"); do
        for j in $(seq 1 "$HOSTS"); do
            [ "$i" = "$j" ] && continue
            ip -n "$(host_ns "$i")" route replace "$(host_csub "$j")" via "$(host_ip "$j")" dev eth0
        done
    done
}

# The daemon config file (its own, so that /etc/docker/daemon.json is never read). Docker < 23
# derives the daemon ID from a trust key, /etc/docker/key.json by default, which would give
# every host the machine's own daemon ID: each host gets its own key (23+ keeps the ID in the
# data root and has no such setting).
write_daemon_json() {
    local hdir="$1" major
    major="$(dockerd --version 2>/dev/null | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')"
    if [ -n "$major" ] && (( major < 23 )); then
        printf '{"deprecated-key-path": "%s/key.json"}\n' "$hdir" >"$hdir/daemon.json"
    else
        printf '{}\n' >"$hdir/daemon.json"
    fi
}

write_launcher() {  # the script that runs inside the host's namespaces and becomes dockerd
    local i="$1" hdir
    hdir="$(host_dir "$i")"
    mkdir -p "$hdir/data" "$hdir/run" "$hdir/cgroup-mnt"
    [ -f "$hdir/daemon.json" ] || write_daemon_json "$hdir"
    cat >"$hdir/launch-dockerd.sh" <<EOF
#!/usr/bin/env bash
# Started by multihost.sh as: nsenter --net=/run/netns/$(host_ns "$i") unshare --mount --propagation slave bash THIS
# Private mount namespace (dockerd's overlay/netns mounts never reach the root one; they
# vanish with its last process). /sys is remounted so that it describes this network
# namespace, with the machine's cgroup hierarchies bound back in (ip netns exec drops them).
set -euo pipefail
if awk '\$2 == "/sys/fs/cgroup" {found=1} END {exit !found}' /proc/self/mounts; then
    mount --rbind /sys/fs/cgroup "$hdir/cgroup-mnt"
    umount -l /sys
    mount -t sysfs sysfs /sys
    mount --rbind "$hdir/cgroup-mnt" /sys/fs/cgroup
    umount -l "$hdir/cgroup-mnt"
else
    umount -l /sys
    mount -t sysfs sysfs /sys
fi
exec dockerd \\
    --config-file "$hdir/daemon.json" \\
    --data-root "$hdir/data" \\
    --exec-root "$hdir/run" \\
    --pidfile "$hdir/dockerd.pid" \\
    --host "unix://$hdir/docker.sock" \\
    --iptables=false --ip-masq=false \\
    --bip "$(host_bip "$i")" \\
    --cgroup-parent "/$(host_cgroup "$i")"
EOF
}

start_dockerd() {
    local i="$1" hdir
    hdir="$(host_dir "$i")"
    if docker_ok "$i"; then
        log "h$i: dockerd already running"
        return 0
    fi
    if [ -n "$(dockerd_pid "$i")" ]; then
        log "h$i: dockerd already started (pid $(dockerd_pid "$i")), waiting for it"
        return 0
    fi
    rm -f "$hdir/docker.sock" "$hdir/dockerd.pid"
    write_launcher "$i"
    printf '\n=== %s: dockerd starting (multihost.sh up) ===\n' "$(date -u +%FT%TZ)" >>"$hdir/dockerd.log"
    # New session, fds redirected: the caller (a shell, pytest) must not wait on it.
    setsid nsenter --net="/run/netns/$(host_ns "$i")" unshare --mount --propagation slave \
        bash "$hdir/launch-dockerd.sh" >>"$hdir/dockerd.log" 2>&1 </dev/null &
    printf '%s\n' "$!" >"$hdir/launcher.pid"
    log "h$i: dockerd starting (log: $hdir/dockerd.log)"
}

wait_dockerd() {
    local i="$1" hdir start lpid
    hdir="$(host_dir "$i")"
    lpid="$(cat "$hdir/launcher.pid" 2>/dev/null || true)"
    start=$SECONDS
    while (( SECONDS - start < WAIT )); do
        if docker_ok "$i"; then
            log "h$i: dockerd answers on unix://$(host_sock "$i") ($((SECONDS - start)) s)"
            return 0
        fi
        # The launcher execs into dockerd, so its pid is dockerd's; gone means it died.
        if [ -z "$(dockerd_pid "$i")" ] && { [ -z "$lpid" ] || ! kill -0 "$lpid" 2>/dev/null; }; then
            log "h$i: dockerd exited during startup"
            log_tail "$hdir/dockerd.log" >&2
            return 1
        fi
        sleep 0.3
    done
    log "h$i: dockerd did not answer 'docker info' within $WAIT s"
    log_tail "$hdir/dockerd.log" >&2
    return 1
}

cmd_up() {
    local n="${1:-2}" i failed=0
    [[ "$n" =~ ^[1-9][0-9]*$ ]] && (( n <= MAX_HOSTS )) || usage_error "up: N must be 1..$MAX_HOSTS, not '$n'"
    require_root_and_tools
    if [ "$HAVE_RIG" = 1 ] && [ "$HOSTS" != "$n" ]; then
        die "a rig with $HOSTS host(s) is already in $STATE_DIR; run '$0 --state-dir $STATE_DIR down' first"
    fi
    if [ "$HAVE_RIG" = 0 ]; then
        if ns_exists "$SW_NS" || [ -n "$(prefix_host_indices)" ]; then
            die "namespaces named $PREFIX-* exist but $STATE_DIR records no rig (another state dir?);" \
                "pick another --prefix or clean up with '$0 --prefix $PREFIX --state-dir DIR down'"
        fi
        if [ -d "$STATE_DIR" ] && [ -n "$(ls -A "$STATE_DIR")" ] && [ ! -e "$STATE_DIR/$MARKER" ]; then
            die "$STATE_DIR is not empty and not a multihost state dir; pick another --state-dir"
        fi
        if (( ${#STATE_DIR} > 60 )); then
            die "state dir path too long for dockerd's unix sockets (${#STATE_DIR} > 60 chars): $STATE_DIR"
        fi
        mkdir -p "$STATE_DIR"
        : >"$STATE_DIR/$MARKER"
        HOSTS="$n"
        if [ -d /run/netns ]; then NETNS_DIR_CREATED=0; else NETNS_DIR_CREATED=1; fi
        write_rig_env
        HAVE_RIG=1
        log "building a $n-host rig in $STATE_DIR (prefix $PREFIX, LAN $NET.0.0/24)"
    else
        log "rig already recorded in $STATE_DIR; checking every piece"
    fi
    setup_switch
    for i in $(seq 1 "$n"); do setup_host "$i"; done
    setup_routes
    for i in $(seq 1 "$n"); do start_dockerd "$i"; done
    for i in $(seq 1 "$n"); do wait_dockerd "$i" || failed=1; done
    if [ "$failed" = 1 ]; then
        log "rig is half up; '$0 --state-dir $STATE_DIR down' removes it"
        print_hosts || true
        exit 1
    fi
    print_hosts
}

# --- down --------------------------------------------------------------------------------------

kill_pids() {  # kill_pids SIGNAL PID...
    local sig="$1" pid; shift
    for pid in "$@"; do
        [ "$pid" = "$$" ] && continue
        kill "-$sig" "$pid" 2>/dev/null || true
    done
}

host_pids() {  # every process belonging to host i
    local i="$1" ns
    ns="$(host_ns "$i")"
    {
        if ns_exists "$ns"; then ip netns pids "$ns" 2>/dev/null || true; fi
        cgroup_pids "$i"
        state_dir_pids "$i"
    } | { grep -E '^[0-9]+$' || true; } | { grep -vxF "$$" || true; } | sort -nu
    return 0
}

stop_dockerd() {  # remove host i's containers and ask its dockerd to exit (does not wait)
    local i="$1" ids pid
    if docker_ok "$i"; then
        ids="$(timeout 20 docker -H "unix://$(host_sock "$i")" ps -aq 2>/dev/null || true)"
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086
            timeout 60 docker -H "unix://$(host_sock "$i")" rm -f $ids >/dev/null 2>&1 || true
        fi
    fi
    pid="$(dockerd_pid "$i")"
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
}

teardown_host() {  # after stop_dockerd: wait, kill what is left, remove the namespace and cgroups
    local i="$1" ns pid left t d
    ns="$(host_ns "$i")"
    pid="$(dockerd_pid "$i")"
    if [ -n "$pid" ]; then
        for t in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "h$i: dockerd (pid $pid) ignored SIGTERM for 15 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    # Whatever is left (containerd, shims, containers, processes run with `exec`).
    for t in $(seq 1 20); do
        left="$(host_pids "$i" | tr '\n' ' ')"
        [ -z "${left// /}" ] && break
        # shellcheck disable=SC2086
        kill_pids KILL $left
        sleep 0.25
    done
    left="$(host_pids "$i" | tr '\n' ' ')"
    [ -z "${left// /}" ] || log "h$i: processes still alive: $left"
    if ns_exists "$ns"; then
        ip netns del "$ns" && log "h$i: namespace $ns removed"
    fi
    cgroup_dirs "$i" | while read -r d; do rmdir "$d" 2>/dev/null || log "h$i: cannot remove cgroup $d"; done
}

cmd_down() {
    is_root || fail 2 "must run as root"
    local indices i leftover=0
    indices="$(known_host_indices | tr '\n' ' ')"
    if [ "$HAVE_RIG" = 0 ] && [ -z "${indices// /}" ] && ! ns_exists "$SW_NS" && [ ! -d "$STATE_DIR" ]; then
        log "no rig (state dir $STATE_DIR, prefix $PREFIX): nothing to do"
        return 0
    fi
    if [ -d "$STATE_DIR" ] && [ -n "$(ls -A "$STATE_DIR")" ] && [ ! -e "$STATE_DIR/$MARKER" ]; then
        die "$STATE_DIR is not a multihost state dir (no $MARKER); not touching it"
    fi
    log "tearing down the rig (state dir $STATE_DIR, prefix $PREFIX)"
    for i in $indices; do stop_dockerd "$i"; done   # all at once: shutdowns overlap
    for i in $indices; do teardown_host "$i"; done
    if ns_exists "$SW_NS"; then
        ip netns del "$SW_NS" && log "switch namespace $SW_NS removed"
    fi
    # ip netns creates /run/netns (a bind mount onto itself) on first use: undo that if it was
    # us and no namespace is left in it.
    if [ "$NETNS_DIR_CREATED" = 1 ] && [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
        if awk '$2 == "/run/netns" {found=1} END {exit !found}' /proc/self/mounts; then
            umount /run/netns 2>/dev/null || umount -l /run/netns 2>/dev/null || true
        fi
        rmdir /run/netns 2>/dev/null || true
    fi
    # Nothing may stay mounted under the state dir before it is removed.
    local m
    awk -v d="$STATE_DIR/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    if [ -d "$STATE_DIR" ]; then
        rm -rf --one-file-system "$STATE_DIR" || log "could not remove all of $STATE_DIR"
    fi
    # Verify.
    for i in $indices; do
        if ns_exists "$(host_ns "$i")" || [ -n "$(host_pids "$i")" ] || [ -n "$(cgroup_dirs "$i")" ]; then
            log "h$i: not fully removed"
            leftover=1
        fi
    done
    ns_exists "$SW_NS" && { log "switch namespace $SW_NS still there"; leftover=1; }
    [ -e "$STATE_DIR" ] && { log "$STATE_DIR still there"; leftover=1; }
    [ "$leftover" = 0 ] || die "teardown incomplete (see above)"
    log "rig removed"
}

# --- the rest ----------------------------------------------------------------------------------

cmd_status() {
    if [ "$HAVE_RIG" = 0 ]; then
        log "no rig in $STATE_DIR"
        if ns_exists "$SW_NS" || [ -n "$(prefix_host_indices)" ]; then
            log "but namespaces named $PREFIX-* exist: $(ip netns list | awk '{print $1}' | grep -E "^$PREFIX-" | tr '\n' ' ')"
        fi
        exit 3
    fi
    print_hosts || exit 1
}

cmd_cut() {
    [ "$#" = 1 ] || usage_error "cut: exactly one HOST"
    is_root || fail 2 "must run as root"
    local i; i="$(resolve_host "$1")"
    case "$(link_state "$i")" in
        missing) die "h$i: switch port $(host_port "$i") is missing (rig broken; see '$0 status')" ;;
        cut) log "h$i: already cut off" ;;
        up) ip -n "$SW_NS" link set "$(host_port "$i")" down; log "h$i ($(host_ip "$i")): cut off" ;;
    esac
}

cmd_restore() {
    [ "$#" = 1 ] || usage_error "restore: exactly one HOST"
    is_root || fail 2 "must run as root"
    local i; i="$(resolve_host "$1")"
    case "$(link_state "$i")" in
        missing) die "h$i: switch port $(host_port "$i") is missing (rig broken; see '$0 status')" ;;
        up) log "h$i: already connected" ;;
        cut) ip -n "$SW_NS" link set "$(host_port "$i")" up; log "h$i ($(host_ip "$i")): connected again" ;;
    esac
}

cmd_exec() {
    [ "$#" -ge 2 ] || usage_error "exec: HOST CMD..."
    local i; i="$(resolve_host "$1")"; shift
    [ "${1:-}" = "--" ] && shift
    exec ip netns exec "$(host_ns "$i")" "$@"
}

cmd_load_image() {
    [ "$#" -ge 1 ] || usage_error "load-image: IMAGE [HOST...]"
    local image="$1" i targets=() want have; shift
    if [ "$#" = 0 ]; then
        [ "$HAVE_RIG" = 1 ] || fail 1 "no rig in $STATE_DIR"
        mapfile -t targets < <(seq 1 "$HOSTS")
    else
        for i in "$@"; do targets+=("$(resolve_host "$i")"); done
    fi
    want="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null)" \
        || die "image $image is not in the machine's main dockerd"
    for i in "${targets[@]}"; do
        have="$(docker -H "unix://$(host_sock "$i")" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
        if [ "$have" = "$want" ]; then
            log "h$i: $image already there"
            continue
        fi
        docker save "$image" | docker -H "unix://$(host_sock "$i")" load >/dev/null \
            || die "h$i: loading $image failed"
        log "h$i: $image loaded"
    done
}

case "$CMD" in
    up) [ "$#" -le 1 ] || usage_error "up: at most one argument (N)"; cmd_up "$@" ;;
    down) [ "$#" = 0 ] || usage_error "down takes no arguments"; cmd_down ;;
    status) [ "$#" = 0 ] || usage_error "status takes no arguments"; cmd_status ;;
    cut) cmd_cut "$@" ;;
    restore) cmd_restore "$@" ;;
    exec) cmd_exec "$@" ;;
    load-image) cmd_load_image "$@" ;;
    *) usage_error "unknown command: $CMD" ;;
esac
