"""``corral image build --dockerfile PATH``: a user's Dockerfile, built by the local engine as a Corral image.

The Dockerfile's directory is the build context (sent as a gzipped tarball;
files named in a ``.dockerignore`` there are left out when they match a
pattern exactly or by glob). The build goes through the engine's build API
(no registry: ``FROM corral/python`` uses the local image), with Corral's
labels added (``ai.corral.image=1``, ``ai.corral.recipe=dockerfile:<file>``,
``ai.corral.recipe-digest`` from the Dockerfile's text); the labels of the
image it is built ``FROM`` (``ai.corral.services`` of the python image, for
one) are kept. Then the image is stamped with its Python and framework
versions (``image_probe``) and tagged (default ``corral/<directory>:latest``).
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiodocker

from corral.kernels.build_progress import BuildProgress
from corral.kernels.builder import (
    BuiltImage, _apply_tags, _docker_client, _inspect_or_none, _remove_if_dangling,
)
from corral.kernels.errors import ImageBuildError, InvalidRecipe
from corral.kernels.image_probe import stamp_contents
from corral.kernels.recipe import IMAGE_LABEL, RECIPE_DIGEST_LABEL, RECIPE_LABEL, SERVICES_LABEL

_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)")
_TAG = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")
_CONTEXT_IN_MEMORY = 64 << 20  # a larger context spills to a temporary file


def default_tag(dockerfile: Path) -> str:
    """``corral/<name>:latest``: the directory's name for ``Dockerfile``, else the file's (``gpu.Dockerfile``,
    ``Dockerfile.gpu`` → ``gpu``)."""
    name = dockerfile.name
    if name.lower() == "dockerfile":
        name = dockerfile.resolve().parent.name
    elif name.lower().endswith(".dockerfile"):
        name = name[: -len(".dockerfile")]
    elif name.lower().startswith("dockerfile."):
        name = name[len("dockerfile."):]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "custom"
    return f"corral/{slug}:latest"


def check_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise InvalidRecipe(f"{tag!r} is not a valid image tag (e.g. corral/my-env:1)")
    return tag if ":" in tag.rsplit("/", 1)[-1] else f"{tag}:latest"


def corral_labels(dockerfile: Path, text: str) -> dict[str, str]:
    return {
        IMAGE_LABEL: "1",
        RECIPE_LABEL: f"dockerfile:{dockerfile.name}",
        RECIPE_DIGEST_LABEL: hashlib.sha256(text.encode()).hexdigest()[:16],
    }


async def build_dockerfile(
    dockerfile: str | Path,
    *,
    tag: str | None = None,
    progress: Callable[[BuildProgress], None] | None = None,
    docker: aiodocker.Docker | None = None,
    build_args: dict[str, str] | None = None,
) -> BuiltImage:
    """Builds ``dockerfile`` (context: its directory) and tags it; the engine's cache makes rebuilds quick."""
    path = Path(dockerfile).expanduser()
    if not path.is_file():
        raise InvalidRecipe(f"no Dockerfile at {str(path)!r}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidRecipe(f"{path}: {error}") from error
    target_tag = check_tag(tag) if tag else default_tag(path)
    labels = corral_labels(path, text)
    report = progress or (lambda event: None)
    started = time.monotonic()
    context_dir = path.resolve().parent
    try:
        async with _docker_client(docker) as client:
            existing = await _inspect_or_none(client, target_tag)
            with tempfile.SpooledTemporaryFile(_CONTEXT_IN_MEMORY) as context:
                files = write_context(context_dir, context)
                context.seek(0)
                report(BuildProgress("resolving", f"build context {context_dir} ({files} files)"))
                built_id = await _run_build(
                    client, context, path.resolve().relative_to(context_dir).as_posix(), labels, build_args, report
                )
            try:
                inherited = ((await client.images.inspect(built_id)).get("Config") or {}).get("Labels") or {}
                extra = dict(labels)
                if SERVICES_LABEL not in inherited:
                    extra[SERVICES_LABEL] = ""
                image_id = await stamp_contents(
                    client, built_id, report, extra_labels=extra, message=f"corral: {path.name} contents"
                )
            except BaseException:
                await _remove_if_dangling(client, built_id)
                raise
            report(BuildProgress("tagging", target_tag))
            await _apply_tags(client, image_id, (target_tag,), only_missing=False)
            if existing is not None and existing["Id"] != image_id:
                await _remove_if_dangling(client, existing["Id"])
            inspected = await client.images.inspect(image_id)
    except aiodocker.DockerError as error:
        raise ImageBuildError(f"building {path} failed: {error.message}") from error
    built = BuiltImage(
        tag=target_tag,
        image_id=inspected["Id"],
        recipe=labels[RECIPE_LABEL],
        aliases=(),
        labels=dict((inspected.get("Config") or {}).get("Labels") or {}),
        size_bytes=int(inspected.get("Size") or 0),
        reused=False,
        seconds=time.monotonic() - started,
    )
    report(BuildProgress("done", f"{target_tag} built in {built.seconds:.1f} s"))
    return built


def write_context(directory: Path, fileobj: object) -> int:
    """``directory`` as a gzipped tarball into ``fileobj`` (``.dockerignore`` honoured); the number of files."""
    ignored = _dockerignore(directory)
    count = 0
    with tarfile.open(fileobj=fileobj, mode="w:gz") as archive:  # type: ignore[call-overload]
        for root, dirs, names in os.walk(directory):
            relative_root = Path(root).relative_to(directory)
            dirs[:] = [d for d in sorted(dirs) if not _is_ignored((relative_root / d).as_posix(), ignored)]
            for name in sorted(names):
                relative = (relative_root / name).as_posix()
                if _is_ignored(relative, ignored):
                    continue
                archive.add(os.path.join(root, name), arcname=relative, recursive=False)
                count += 1
    return count


def _dockerignore(directory: Path) -> list[str]:
    try:
        lines = (directory / ".dockerignore").read_text().splitlines()
    except OSError:
        return []
    return [line.strip().strip("/") for line in lines if line.strip() and not line.lstrip().startswith(("#", "!"))]


def _is_ignored(relative: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(relative, pattern) or relative == pattern for pattern in patterns)


async def _run_build(
    client: aiodocker.Docker,
    context: object,
    dockerfile: str,
    labels: dict[str, str],
    build_args: dict[str, str] | None,
    report: Callable[[BuildProgress], None],
) -> str:
    image_id = ""
    step, total = 0, None
    tail: list[str] = []
    stream = client.images.build(
        fileobj=context, encoding="gzip", path_dockerfile=dockerfile, labels=labels, buildargs=build_args,
        rm=True, forcerm=True, stream=True,
    )
    try:
        async for item in stream:
            if item.get("error"):
                details = "\n".join(tail[-20:])
                raise ImageBuildError(f"{item['error'].strip()}\n{details}".strip())
            aux = item.get("aux") or {}
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = str(aux["ID"])
            for line in str(item.get("stream") or "").splitlines():
                line = line.rstrip()
                if not line.strip():
                    continue
                tail = (tail + [line])[-20:]
                if match := _STEP.match(line):
                    step, total = int(match.group(1)), int(match.group(2))
                    report(BuildProgress("installing", match.group(3), step, total, unit="steps"))
                elif not line.startswith(" ---> "):
                    report(BuildProgress("installing", line, step, total, unit="steps"))
                if match := re.match(r"^Successfully built ([0-9a-f]+)", line):
                    image_id = image_id or match.group(1)
    except aiodocker.DockerError as error:
        details = "\n".join(tail[-20:])
        raise ImageBuildError(f"the Docker build failed: {error.message}\n{details}".strip()) from error
    if not image_id:
        raise ImageBuildError("the Docker build ended without an image id:\n" + "\n".join(tail[-20:]))
    return image_id
