"""Finding the interface that carries a kernel's cluster address (for GLOO/NCCL_SOCKET_IFNAME)."""
from __future__ import annotations

import socket

import pytest

from corral.agent import host_interfaces
from corral.agent.host_interfaces import interface_by_ioctl, interface_for_address, interface_in_ip_output

IP_OUTPUT = """\
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever
2: ens5    inet 10.0.0.2/24 brd 10.0.0.255 scope global dynamic ens5\\       valid_lft 3000sec preferred_lft 3000sec
2: ens5    inet6 fd00::2/64 scope global \\       valid_lft forever preferred_lft forever
3: bond0.7@bond0    inet 10.7.0.2/16 brd 10.7.255.255 scope global bond0.7\\       valid_lft forever preferred_lft forever
5: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0\\       valid_lft forever preferred_lft forever
"""


def test_the_interface_listed_with_the_address_is_found() -> None:
    assert interface_in_ip_output(IP_OUTPUT, "10.0.0.2") == "ens5"
    assert interface_in_ip_output(IP_OUTPUT, "10.7.0.2") == "bond0.7"  # "@parent" is not part of the name
    assert interface_in_ip_output(IP_OUTPUT, "fd00:0::2") == "ens5"  # IPv6, however it is written


def test_an_address_on_no_interface_finds_none() -> None:
    assert interface_in_ip_output(IP_OUTPUT, "10.0.0.20") is None  # not a prefix match
    assert interface_in_ip_output(IP_OUTPUT, "not-an-address") is None
    assert interface_in_ip_output("", "10.0.0.2") is None


async def test_without_iproute2_the_kernel_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_interfaces, "IP_COMMAND", ("/nonexistent/ip", "-o", "addr", "show"))
    assert await interface_for_address("127.0.0.1") == interface_by_ioctl("127.0.0.1")


def test_the_loopback_is_found_by_ioctl() -> None:
    loopback = next((name for _, name in socket.if_nameindex() if name == "lo"), None)
    if loopback is None:
        pytest.skip("no interface named lo here")
    assert interface_by_ioctl("127.0.0.1") == "lo"
    assert interface_by_ioctl("203.0.113.77") is None  # TEST-NET-3: on no interface
