"""The container contract between the agent and the in-container runner.

The agent bind-mounts ``KERNELS_PACKAGE_DIR`` read-only at
``CONTAINER_KERNELS_DIR`` and a per-kernel host directory (prepared with
``prepare_runner_dir``) at ``CONTAINER_RUNNER_DIR``; the runner listens on
``RUNNER_SOCKET_NAME`` inside it, so the host reaches it at
``<host dir>/runner.sock``.

Stdlib only and Python 3.9-compatible: ``runner.py`` imports it inside
containers, where it is a sibling module under ``CONTAINER_KERNELS_DIR``.
"""
from __future__ import annotations

import asyncio
import json
import os
import struct
from pathlib import Path

KERNELS_PACKAGE_DIR = Path(__file__).resolve().parent
CONTAINER_KERNELS_DIR = "/opt/corral"
CONTAINER_RUNNER_DIR = "/run/corral"
RUNNER_SCRIPT = f"{CONTAINER_KERNELS_DIR}/runner.py"
RUNNER_SOCKET_NAME = "runner.sock"
CONTAINER_RUNNER_SOCKET = f"{CONTAINER_RUNNER_DIR}/{RUNNER_SOCKET_NAME}"
RUNNER_SOCKET_ENV = "CORRAL_RUNNER_SOCKET"  # overrides CONTAINER_RUNNER_SOCKET (tests run the runner on the host)
RUNNER_DIR_MODE = 0o777

# What every kernel finds in its environment.
SESSION_ID_ENV = "CORRAL_SESSION_ID"
SESSION_NAME_ENV = "CORRAL_SESSION_NAME"
KERNEL_ID_ENV = "CORRAL_KERNEL_ID"
CPU_ENV = "CORRAL_CPU"
MEM_ENV = "CORRAL_MEM"
CPU_CORES_ENV = "CORRAL_CPU_CORES"


def interactive_command() -> list[str]:
    return ["python3", RUNNER_SCRIPT]


def batch_command(command: str | list[str]) -> list[str]:
    """A string is run by ``sh -c``; a list is the argv as given."""
    argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
    if not argv:
        raise ValueError("a batch session needs a command")
    return ["python3", RUNNER_SCRIPT, "--batch", "--", *argv]


def prepare_runner_dir(host_dir: Path) -> Path:
    """Creates the per-kernel socket directory; returns the socket's host path.

    The container runs as the image's user (uid 1000 in Corral images, but any
    uid in foreign images), which must be able to create the socket here, so
    the directory is world-writable (0777, set explicitly: umask would mask
    it). Keep its parent private to the agent (0700/0711) so other host users
    cannot reach the socket.
    """
    host_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(host_dir, RUNNER_DIR_MODE)
    return runner_socket_path(host_dir)


def runner_socket_path(host_runner_dir: Path) -> Path:
    """Where the host reaches the runner of the kernel whose runner directory this is."""
    return host_runner_dir / RUNNER_SOCKET_NAME


def bind_mounts(host_runner_dir: Path, kernels_package_dir: Path = KERNELS_PACKAGE_DIR) -> list[str]:
    """Docker ``HostConfig.Binds`` entries for the contract."""
    return [
        f"{kernels_package_dir}:{CONTAINER_KERNELS_DIR}:ro",
        f"{host_runner_dir}:{CONTAINER_RUNNER_DIR}:rw",
    ]



# -- Streams: the "connect" and "pty" ops -------------------------------------------
#
# Both are the first request line on a new runner connection and are answered with
# one JSON line ({"ok": true, ...} or {"ok": false, "error": "..."}). After "connect"
# the connection is a raw byte pipe to 127.0.0.1:PORT inside the container; after
# "pty" it carries frames both ways: a header (type byte, big-endian payload length)
# then the payload.

PTY_FRAME_DATA = 0  # both ways: keystrokes (to the runner) / terminal output (from it)
PTY_FRAME_RESIZE = 1  # to the runner: JSON {"rows": R, "cols": C}
PTY_FRAME_EXIT = 2  # from the runner: JSON {"code": N|null} once the shell ended; then it closes
PTY_FRAME_PING = 3  # either way; answered with a PONG carrying the same payload
PTY_FRAME_PONG = 4
PTY_FRAME_ERROR = 5  # from the runner: JSON {"error": S} on a protocol violation; then it closes
PTY_FRAME_TYPES = frozenset(range(6))
PTY_FRAME_HEADER = struct.Struct(">BI")
PTY_MAX_FRAME_BYTES = 1 << 20  # payload; a larger frame is a protocol violation
PTY_SCROLLBACK_BYTES = 64 << 10  # recent output replayed to a client that attaches
PTY_GRACE_ENV = "CORRAL_PTY_GRACE_S"  # how long a shell outlives its client (for a re-attach)
DEFAULT_PTY_GRACE_S = 60.0
PTY_KILL_AFTER_S = 3.0  # SIGHUP to a shell's process group, then SIGKILL after this long
PTY_TERM = "xterm-256color"


class FrameError(ValueError):
    """A frame header announces an oversized payload (the stream cannot be trusted any more)."""


def encode_frame(frame_type: int, payload: bytes = b"") -> bytes:
    if len(payload) > PTY_MAX_FRAME_BYTES:
        raise FrameError("frame payload of %d bytes is over %d" % (len(payload), PTY_MAX_FRAME_BYTES))
    return PTY_FRAME_HEADER.pack(frame_type, len(payload)) + payload


def encode_data_frames(data: bytes) -> bytes:
    """``data`` as DATA frames, split to fit ``PTY_MAX_FRAME_BYTES``."""
    return b"".join(
        encode_frame(PTY_FRAME_DATA, data[start:start + PTY_MAX_FRAME_BYTES])
        for start in range(0, len(data), PTY_MAX_FRAME_BYTES)
    )


def encode_json_frame(frame_type: int, message: dict) -> bytes:
    return encode_frame(frame_type, json.dumps(message).encode("utf-8"))


def decode_frame_header(header: bytes) -> tuple[int, int]:
    """``(type, payload length)``; raises ``FrameError`` for an oversized payload."""
    frame_type, length = PTY_FRAME_HEADER.unpack(header)
    if length > PTY_MAX_FRAME_BYTES:
        raise FrameError("frame payload of %d bytes is over %d" % (length, PTY_MAX_FRAME_BYTES))
    return frame_type, length


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """The next frame from ``reader``; None at a clean end of stream (between frames).

    Raises ``asyncio.IncompleteReadError`` if the stream ends inside a frame, and
    ``FrameError`` for an oversized one."""
    try:
        header = await reader.readexactly(PTY_FRAME_HEADER.size)
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            return None
        raise
    frame_type, length = decode_frame_header(header)
    payload = await reader.readexactly(length) if length else b""
    return frame_type, payload
