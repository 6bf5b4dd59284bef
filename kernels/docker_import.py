"""Streams a root filesystem tarball into Docker as a new image (``docker import``).

aiodocker's ``images.import_image`` posts to ``/images/load`` (``docker save``
archives), so this uses the engine's ``POST /images/create?fromSrc=-`` through
aiodocker's request helper, with Dockerfile-style ``changes`` applied to the
image config (USER, WORKDIR, ENV, LABEL, CMD).
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import quote, urlencode

import aiodocker

from corral.kernels.errors import ImageBuildError


async def import_rootfs(
    docker: aiodocker.Docker,
    tarball_chunks: AsyncIterator[bytes],
    *,
    changes: list[str],
    message: str = "",
) -> str:
    """Imports the streamed tarball untagged and returns the new image id.

    If ``tarball_chunks`` raises, the upload is aborted before its final chunk
    so the engine discards the partial image, and the error propagates.
    """
    query = urlencode(
        [("fromSrc", "-"), ("message", message), *[("changes", change) for change in changes]],
        quote_via=quote,
    )
    image_id: str | None = None
    async with docker._query(  # noqa: SLF001 - no public aiodocker API for fromSrc imports
        f"images/create?{query}",
        "POST",
        data=tarball_chunks,
        headers={"Content-Type": "application/x-tar"},
        timeout=None,
    ) as response:
        async for raw_line in response.content:
            if not raw_line.strip():
                continue
            event = json.loads(raw_line)
            if event.get("error"):
                raise ImageBuildError(f"docker import failed: {event['error']}")
            status = str(event.get("status", ""))
            if status.startswith("sha256:"):
                image_id = status
    if image_id is None:
        raise ImageBuildError("docker import finished without reporting an image id")
    return image_id


def dockerfile_changes(
    *,
    user: str,
    workdir: str,
    env: dict[str, str],
    labels: dict[str, str],
    cmd: list[str],
) -> list[str]:
    """Dockerfile instructions in the form the import endpoint's ``changes`` takes."""
    changes = [f"USER {user}", f"WORKDIR {workdir}"]
    changes += [f"ENV {key}={json.dumps(value)}" for key, value in env.items()]
    changes += [f"LABEL {json.dumps(key)}={json.dumps(value)}" for key, value in labels.items()]
    changes.append(f"CMD {json.dumps(cmd)}")
    return changes
