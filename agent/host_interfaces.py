"""Which of this node's network interfaces carries an address (for GLOO/NCCL_SOCKET_IFNAME).

Asks ``ip -o addr show`` (iproute2); where that is missing, asks the kernel for each interface's
IPv4 address (SIOCGIFADDR over ``socket.if_nameindex()``)."""
from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import socket
import struct

log = logging.getLogger(__name__)

IP_COMMAND = ("ip", "-o", "addr", "show")
IP_TIMEOUT_S = 5.0
SIOCGIFADDR = 0x8915


def _same_address(text: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(text) == ipaddress.ip_address(address)
    except ValueError:
        return False


def interface_in_ip_output(output: str, address: str) -> str | None:
    """The interface that ``ip -o addr show`` lists with ``address``, else None.

    A line reads ``4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\ ...``."""
    for line in output.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] not in ("inet", "inet6"):
            continue
        name = fields[1].split("@", 1)[0]
        if _same_address(fields[3].split("/", 1)[0], address):
            return name
    return None


def _ipv4_of(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None  # no IPv4 address on it
    return socket.inet_ntoa(answer[20:24])


def interface_by_ioctl(address: str) -> str | None:
    """The interface whose IPv4 address is ``address`` (IPv6 addresses are not found this way)."""
    for _, name in socket.if_nameindex():
        found = _ipv4_of(name)
        if found is not None and _same_address(found, address):
            return name
    return None


async def _ip_output() -> str | None:
    try:
        process = await asyncio.create_subprocess_exec(
            *IP_COMMAND, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return None  # no iproute2 on this node
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), IP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        return None
    return stdout.decode(errors="replace") if process.returncode == 0 else None


async def interface_for_address(address: str) -> str | None:
    """The name of the interface carrying ``address`` on this node, else None."""
    output = await _ip_output()
    if output is not None:
        return interface_in_ip_output(output, address)
    return await asyncio.to_thread(interface_by_ioctl, address)
