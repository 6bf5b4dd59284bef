"""Public-key checks: what users may register, and fingerprints as ssh-keygen prints them."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from corral.common.errors import InvalidRequest
from corral.common.ssh_keys import generate_ed25519, parse_public_key


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="no ssh-keygen")
def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    pair = generate_ed25519("me@box")
    path = tmp_path / "key.pub"
    path.write_text(pair.public_line + "\n")
    printed = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True, check=True)
    assert printed.stdout.split()[1] == parse_public_key(pair.public_line).fingerprint


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("ssh-ed25519", "looks like"),
    ("ssh-ed25519 !!!notbase64", "not an OpenSSH public key"),
    ("-----BEGIN OPENSSH PRIVATE KEY----- abc", "private key"),
    ("ssh-ed25519 AAAA\nssh-ed25519 AAAA", "one line"),
])
def test_bad_keys_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_public_key(text)


def test_comment_is_kept() -> None:
    line = generate_ed25519("alice laptop").public_line
    key = parse_public_key(line)
    assert key.comment == "alice laptop" and key.line == line
