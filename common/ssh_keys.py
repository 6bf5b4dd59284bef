"""OpenSSH keys: Ed25519 pairs, public-key parsing and fingerprints (used by the CLI, agent and manager)."""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from corral.common.errors import InvalidRequest

MAX_PUBLIC_KEY_CHARS = 16 * 1024  # an RSA-16384 key is well under this


@dataclass(frozen=True)
class KeyPair:
    private_openssh: bytes  # "-----BEGIN OPENSSH PRIVATE KEY-----..." (unencrypted)
    public_line: str  # "ssh-ed25519 AAAA... comment"


@dataclass(frozen=True)
class PublicKey:
    kind: str  # "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", ...
    blob: str  # base64 of the key, as in the line
    comment: str

    @property
    def line(self) -> str:
        return f"{self.kind} {self.blob}" + (f" {self.comment}" if self.comment else "")

    @property
    def fingerprint(self) -> str:
        """As ``ssh-keygen -l`` prints it: ``SHA256:`` and unpadded base64."""
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def generate_ed25519(comment: str) -> KeyPair:
    from cryptography.hazmat.primitives import serialization  # imported on use: slow, and rarely needed
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return KeyPair(private, f"{public.decode()} {comment}".strip())


def parse_public_key(text: str) -> PublicKey:
    """One OpenSSH public key line (``TYPE BASE64 [COMMENT]``); InvalidRequest saying what is wrong."""
    line = text.strip()
    if not line:
        raise InvalidRequest("the public key is empty")
    if len(line) > MAX_PUBLIC_KEY_CHARS or "\n" in line or "\r" in line:
        raise InvalidRequest("a public key is one line of at most 16 KiB (the contents of a .pub file)")
    if "PRIVATE KEY" in line:
        raise InvalidRequest("that is a private key: register the public one (the .pub file)")
    parts = line.split(None, 2)
    if len(parts) < 2:
        raise InvalidRequest("a public key looks like 'ssh-ed25519 AAAA... comment'")
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_ssh_public_key(f"{parts[0]} {parts[1]}".encode())
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"not an OpenSSH public key: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - cryptography raises UnsupportedAlgorithm for unknown types
        raise InvalidRequest(f"unsupported public key type {parts[0]!r}: {exc}") from None
    return PublicKey(parts[0], parts[1], parts[2].strip() if len(parts) > 2 else "")


def public_line_of(private_openssh: bytes, comment: str) -> str:
    """The public key line of an unencrypted OpenSSH private key (a stored `KeyPair.private_openssh`)."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(private_openssh, password=None)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{public.decode()} {comment}".strip()
