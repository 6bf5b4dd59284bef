"""The multi-host rig itself: separate hosts with their own dockerd, a real network between
them, cutting a host off and plugging it back in, and a teardown that leaves nothing behind."""
from __future__ import annotations

import os
import re
import subprocess
import time
from typing import Iterator

import pytest

from tests.fixtures.multihost import MultiHostRig, RigHost, TcpResult, netns_names, rig_leftovers, start_rig

pytestmark = [pytest.mark.slow, pytest.mark.multihost, pytest.mark.docker, pytest.mark.timeout(300)]

PORT = 18080  # the web server in host B (host networking: it binds B's rig address)
CLOSED_PORT = 9  # nothing listens there: a reachable host answers with a RST

# GET / from inside a container; prints the HTTP status.
FETCH = "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=5).status)"


def wait_for_tcp(src: RigHost, ip: str, port: int, timeout: float = 20) -> TcpResult:
    deadline = time.monotonic() + timeout
    while True:
        result = src.tcp_connect(ip, port, timeout=1.0)
        if result.ok or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def root_ns_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def root_ns_routes() -> str:
    return subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True, text=True, check=True).stdout


def lan_prefix(rig: MultiHostRig) -> str:  # "10.231." for a rig on 10.231.0.0/24
    return ".".join(rig.hosts[0].ip.split(".")[:2]) + "."


@pytest.fixture(scope="module")
def rig_image(multihost: MultiHostRig, base_image: str) -> str:
    multihost.load_image(base_image)
    return base_image


@pytest.fixture(scope="module")
def web_b(multihost: MultiHostRig, rig_image: str) -> Iterator[RigHost]:
    """A web server in a container on host B, with host networking: it listens on B's rig address."""
    a, b = multihost.hosts[:2]
    b.docker("run", "-d", "--name", "mh-web", "--network", "host", rig_image,
             "python3", "-m", "http.server", str(PORT), "--bind", b.ip)
    try:
        ready = wait_for_tcp(a, b.ip, PORT)
        assert ready.ok, f"the web server on {b.name} never answered: {ready.error}\n" \
                         f"{b.docker('logs', 'mh-web', check=False).stderr}"
        yield b
    finally:
        b.docker("rm", "-f", "mh-web", check=False)


def test_each_host_has_its_own_daemon_and_address(multihost: MultiHostRig) -> None:
    infos = [h.docker("info", "--format", "{{.ID}} {{.DockerRootDir}}").stdout.split() for h in multihost]
    main_root = subprocess.run(["docker", "info", "--format", "{{.DockerRootDir}}"], capture_output=True,
                               text=True, check=True).stdout.strip()
    assert len({daemon_id for daemon_id, _ in infos}) == len(multihost)
    status = multihost.status()
    for host, (_, root) in zip(multihost, infos):
        assert root.startswith(f"{multihost.state_dir}/{host.name}/"), root
        assert root != main_root
        addrs = host.run("ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
        assert f" {host.ip}/24 " in addrs
        assert (status[host.name]["link"], status[host.name]["dockerd"]) == ("up", "running")
    # Nothing of the rig is routed in the root namespace: the LAN exists only between the hosts.
    assert lan_prefix(multihost) not in root_ns_routes()


def test_containers_on_two_hosts_talk_across_the_rig(multihost: MultiHostRig, rig_image: str,
                                                     web_b: RigHost) -> None:
    a = multihost.hosts[0]
    url = f"http://{web_b.ip}:{PORT}/"
    # From a host-networked container on A (as multi-node NCCL/gloo jobs would run) ...
    assert a.docker("run", "--rm", "--network", "host", rig_image, "python3", "-c", FETCH, url).stdout.strip() == "200"
    # ... and from one on A's default bridge: routed to B without NAT.
    assert a.docker("run", "--rm", rig_image, "python3", "-c", FETCH, url).stdout.strip() == "200"
    # B saw both coming from A: A's own address and one in A's container subnet.
    a_subnet = a.docker("network", "inspect", "bridge", "--format",
                        "{{(index .IPAM.Config 0).Subnet}}").stdout.strip()
    clients = re.findall(r"^(\d+\.\d+\.\d+\.\d+) - - .*\"GET / ", web_b.docker("logs", "mh-web").stderr, re.M)
    assert a.ip in clients
    assert any(c.startswith(a_subnet.rsplit(".", 1)[0] + ".") for c in clients), (a_subnet, clients)
    # The machine's own dockerd knows nothing of the rig's containers.
    main_ps = subprocess.run(["docker", "ps", "-a", "--filter", "name=^mh-web$", "-q"], capture_output=True,
                             text=True, check=True).stdout
    assert main_ps.strip() == ""


def test_cut_and_restore(multihost: MultiHostRig, rig_image: str, web_b: RigHost) -> None:
    a, b = multihost.hosts[0], web_b
    assert a.tcp_connect(b.ip, PORT).ok
    # Reachable the other way too: A's closed port answers B with a RST at once.
    refused = b.tcp_connect(a.ip, CLOSED_PORT, timeout=1.0)
    assert not refused.ok and "ConnectionRefused" in refused.error
    try:
        b.cut()
        b.cut()  # idempotent
        assert b.link == "cut"
        assert multihost.status()[a.name]["link"] == "up"
        t0 = time.monotonic()
        lost = a.tcp_connect(b.ip, PORT, timeout=1.0)
        assert not lost.ok, "B is cut off, yet A reached its web server"
        assert lost.elapsed < 1.5 and time.monotonic() - t0 < 5, lost
        back = b.tcp_connect(a.ip, CLOSED_PORT, timeout=1.0)
        assert not back.ok and "ConnectionRefused" not in back.error, back  # no RST: no way out of B
    finally:
        b.restore()
    b.restore()  # idempotent
    assert b.link == "up"
    again = wait_for_tcp(a, b.ip, PORT, timeout=15)
    assert again.ok, again
    url = f"http://{b.ip}:{PORT}/"
    assert a.docker("run", "--rm", "--network", "host", rig_image, "python3", "-c", FETCH, url).stdout.strip() == "200"


def test_a_rig_of_its_own_leaves_nothing_behind(multihost: MultiHostRig) -> None:
    links_before = root_ns_links()
    with start_rig(3) as rig:
        prefix, state_dir = rig.prefix, rig.state_dir
        assert prefix != multihost.prefix
        h1, h3 = rig["h1"], rig[3]
        # Something in every place a leak could hide: a container (shim, cgroup, its own netns
        # and veth on h3's docker0) and a bare process in h1's namespace.
        tiny = h3.import_tiny_image()
        h3.docker("run", "-d", tiny, "/bin/sleep", "300")
        sleeper = h1.popen("sleep", "300")
        refused = h1.tcp_connect(h3.ip, CLOSED_PORT, timeout=1.0)
        assert "ConnectionRefused" in refused.error, refused
        assert {f"{prefix}-sw", f"{prefix}-h1", f"{prefix}-h2", f"{prefix}-h3"} <= set(netns_names())
    # start_rig raised if its own check (rig_leftovers) found anything; check again, explicitly.
    assert sleeper.poll() is not None
    assert rig_leftovers(prefix, state_dir) == []
    assert not [n for n in netns_names() if n.startswith(prefix + "-")]
    assert not os.path.exists(state_dir)
    daemons = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert str(state_dir) not in daemons
    # Nothing of ours ever showed up in the root namespace (veth ends, bridge, routes).
    ours = {n for n in root_ns_links() - links_before if n in ("br0", "eth0") or re.fullmatch(r"h\d+", n)}
    assert not ours
    assert lan_prefix(multihost) not in root_ns_routes()
    # The session's rig is untouched.
    assert all(s["dockerd"] == "running" for s in multihost.status().values())
