"""Image pull progress from recorded Docker Engine pull streams (no registry needed)."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiodocker.exceptions import DockerError

from corral.agent.backend.docker_backend import DockerBackend, ImageNotFound
from corral.agent.backend.pull_progress import PullFailed, PullProgress, is_missing_image_error
from corral.agent.config import load_agent_config
from corral.common.errors import BackendError

IMAGE = "registry.example/team/cuda:12"
MB = 1_000_000


def _dl(layer: str, current: int, total: int) -> dict[str, Any]:
    return {"status": "Downloading", "progressDetail": {"current": current, "total": total},
            "progress": "[=>   ]", "id": layer}


def _ex(layer: str, current: int, total: int) -> dict[str, Any]:
    return {"status": "Extracting", "progressDetail": {"current": current, "total": total}, "id": layer}


# A pull as the engine streams it: two layers cached, three fetched, interleaved.
RECORDED_PULL: list[dict[str, Any]] = [
    {"status": "Pulling from team/cuda", "id": "12"},
    {"status": "Already exists", "progressDetail": {}, "id": "aaa111"},
    {"status": "Already exists", "progressDetail": {}, "id": "bbb222"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "ccc333"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "ddd444"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "eee555"},
    {"status": "Waiting", "progressDetail": {}, "id": "eee555"},
    _dl("ccc333", 1 * MB, 30 * MB),
    _dl("ddd444", 2 * MB, 400 * MB),
    _dl("ccc333", 30 * MB, 30 * MB),
    {"status": "Verifying Checksum", "progressDetail": {}, "id": "ccc333"},
    {"status": "Download complete", "progressDetail": {}, "id": "ccc333"},
    _dl("eee555", 5 * MB, 1_400 * MB),
    _dl("ddd444", 400 * MB, 400 * MB),
    {"status": "Download complete", "progressDetail": {}, "id": "ddd444"},
    _ex("ccc333", 15 * MB, 30 * MB),
    _ex("ccc333", 30 * MB, 30 * MB),
    {"status": "Pull complete", "progressDetail": {}, "id": "ccc333"},
    _dl("eee555", 1_400 * MB, 1_400 * MB),
    {"status": "Download complete", "progressDetail": {}, "id": "eee555"},
    _ex("ddd444", 400 * MB, 400 * MB),
    {"status": "Pull complete", "progressDetail": {}, "id": "ddd444"},
    _ex("eee555", 700 * MB, 1_400 * MB),
    {"status": "Pull complete", "progressDetail": {}, "id": "eee555"},
    {"status": "Digest: sha256:" + "ab" * 32},
    {"status": f"Status: Downloaded newer image for {IMAGE}"},
]


def _feed(lines: list[dict[str, Any]], tracker: PullProgress | None = None) -> PullProgress:
    tracker = tracker or PullProgress(IMAGE)
    for line in lines:
        tracker.feed(line)
    return tracker


def test_multi_layer_pull_counts_layers_and_bytes_as_it_goes() -> None:
    tracker = _feed(RECORDED_PULL[:1])
    assert tracker.summary() == f"pulling {IMAGE} — resolving"  # the tag line is not a layer
    tracker = _feed(RECORDED_PULL[:9])
    assert len(tracker.layers) == 5 and tracker.layers_done == 2  # the cached two count as done
    assert tracker.summary() == f"pulling {IMAGE} — 2/5 layers, 3/430 MB"
    tracker = _feed(RECORDED_PULL[:15])
    assert (tracker.bytes_downloaded, tracker.bytes_total) == (435 * MB, 1_830 * MB)
    assert tracker.summary() == f"pulling {IMAGE} — 2/5 layers, 435/1,830 MB"
    tracker = _feed(RECORDED_PULL[:20])
    assert tracker.summary() == f"pulling {IMAGE} — 3/5 layers, 1,830/1,830 MB, extracting"
    tracker = _feed(RECORDED_PULL[:-2])
    assert tracker.layers_done == 5 and not tracker.finished
    tracker = _feed(RECORDED_PULL)
    assert tracker.finished and tracker.digest == "sha256:" + "ab" * 32
    assert tracker.final_status == f"Downloaded newer image for {IMAGE}"
    assert tracker.summary() == f"pulled {IMAGE} — 5 layers, 1,830 MB"


def test_all_layers_already_there() -> None:
    tracker = _feed([
        {"status": "Pulling from team/cuda", "id": "12"},
        {"status": "Already exists", "progressDetail": {}, "id": "aaa111"},
        {"status": "Already exists", "progressDetail": {}, "id": "bbb222"},
        {"status": "Digest: sha256:" + "cd" * 32},
    ])
    assert tracker.summary() == f"pulling {IMAGE} — 2/2 layers"  # nothing to download: no byte counts
    _feed([{"status": f"Status: Image is up to date for {IMAGE}"}], tracker)
    assert tracker.summary() == f"pulled {IMAGE} — 2 layers, 0.0 MB"


def test_small_sizes_keep_a_decimal_and_extraction_in_seconds_is_ignored() -> None:
    tracker = _feed([
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "f1"},
        _dl("f1", 1_500_000, 3_250_000),
        # containerd image store: extraction progress in seconds, not bytes
        {"status": "Extracting", "progressDetail": {"current": 2, "units": "s"}, "id": "f1"},
    ])
    assert tracker.layers["f1"].extracted == 0
    assert tracker.summary() == f"pulling {IMAGE} — 0/1 layers, 3.2/3.2 MB, extracting"


def test_an_error_line_raises_with_its_message() -> None:
    tracker = _feed(RECORDED_PULL[:9])
    with pytest.raises(PullFailed) as caught:
        tracker.feed({
            "errorDetail": {"message": "read tcp 10.0.0.2:443: connection reset by peer"},
            "error": "read tcp 10.0.0.2:443: connection reset by peer",
        })
    assert caught.value.message == "read tcp 10.0.0.2:443: connection reset by peer"
    assert not caught.value.missing
    with pytest.raises(PullFailed) as caught:
        tracker.feed({"error": "manifest for registry.example/team/cuda:13 not found: manifest unknown"})
    assert caught.value.missing


def test_missing_image_messages() -> None:
    assert is_missing_image_error(
        "pull access denied for nosuch, repository does not exist or may require 'docker login'"
    )
    assert not is_missing_image_error("Get https://registry.example/v2/: net/http: TLS handshake timeout")


# The backend's pull path, with the engine's stream replaced by recorded lines ------------
def _backend(tmp_path: Path, lines: list[dict[str, Any]], error: Exception | None = None) -> DockerBackend:
    config = load_agent_config(None, id="t-pull", data_dir=str(tmp_path), docker={"image_pull": "missing"})
    backend = DockerBackend(config, "t-pull", tmp_path)

    class Images:
        looked = 0

        async def inspect(self, image: str) -> dict[str, Any]:
            self.looked += 1
            if self.looked == 1:  # missing until pulled
                raise DockerError(404, f"No such image: {image}")
            return {"Id": "sha256:pulled", "Config": {"Labels": {}}}

    class Docker:
        images = Images()

    backend._docker = Docker()  # type: ignore[assignment]

    async def replay(image: str) -> AsyncIterator[dict[str, Any]]:
        for line in lines:
            await asyncio.sleep(0)
            yield line
        if error is not None:
            raise error

    backend._pull_stream = replay  # type: ignore[method-assign]
    return backend


async def test_backend_pull_reports_progress_lines(tmp_path: Path) -> None:
    seen: list[str] = []
    await _backend(tmp_path, RECORDED_PULL)._ensure_image(IMAGE, seen.append)
    assert len(seen) == len(RECORDED_PULL)
    assert seen[0] == f"pulling {IMAGE} — resolving"
    assert f"pulling {IMAGE} — 2/5 layers, 435/1,830 MB" in seen
    assert seen[-1] == f"pulled {IMAGE} — 5 layers, 1,830 MB"


async def test_backend_pull_errors_become_corral_errors(tmp_path: Path) -> None:
    missing = [{"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"}]
    with pytest.raises(ImageNotFound, match="could not be pulled: manifest unknown"):
        await _backend(tmp_path, RECORDED_PULL[:5] + missing)._ensure_image(IMAGE, None)
    broken = [{"errorDetail": {"message": "unexpected EOF"}, "error": "unexpected EOF"}]
    with pytest.raises(BackendError, match="failed: unexpected EOF"):
        await _backend(tmp_path, broken)._ensure_image(IMAGE, None)
    # aiodocker itself raises for an error line; same outcome
    from aiodocker.exceptions import DockerStreamError

    with pytest.raises(ImageNotFound, match="pull access denied"):
        await _backend(
            tmp_path, RECORDED_PULL[:3], DockerStreamError("pull access denied for x", error_detail={})
        )._ensure_image(IMAGE, None)


def test_missing_corral_images_come_with_a_build_hint() -> None:
    from corral.agent.backend.docker_backend import _build_hint

    assert "corral image build python" in _build_hint("corral/python:latest")
    assert _build_hint("corral/unknown:1") == ""
    assert _build_hint("registry.example/team/img:1") == ""
