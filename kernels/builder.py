"""Local image builder: ``mmdebstrap ... | docker import`` driven by a recipe.

This workplace has no registry, so session images are bootstrapped from the
Debian mirror this machine's apt already uses (see ``apt_sources``) and
streamed straight into the Docker engine; nothing touches the disk twice.

Usage from code (the ``corral image build`` CLI calls this)::

    image = await build_image("python", progress=lambda p: print(p.describe()))

and by hand: ``python -m corral.kernels.builder [RECIPE] [--tag T] [--force]``.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiodocker

from corral.common.errors import CorralError
from corral.kernels.apt_sources import mirror_lines_for_suite
from corral.kernels.build_progress import BuildProgress, MmdebstrapProgressParser, ProgressCallback
from corral.kernels.docker_import import dockerfile_changes, import_rootfs
from corral.kernels.errors import ImageBuildError
from corral.kernels.image_probe import stamp_contents
from corral.kernels.pip_layer import add_pip_layer
from corral.kernels.recipe import RECIPE_DIGEST_LABEL, Recipe, list_recipes, load_recipe
from corral.kernels.variants import requested_variant

__all__ = [
    "BuildProgress", "BuiltImage", "build_image", "image_exists", "list_recipes",
    "SESSION_USER", "SESSION_UID", "SESSION_HOME",
]

SESSION_USER = "work"
SESSION_UID = 1000
SESSION_HOME = "/home/work"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Docs, manuals and translations are dead weight in a session image (copyright files stay).
_DPKG_OPTIONS = (
    "force-unsafe-io",  # no fsync per file: the tree is thrown away if the build fails
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)
# Runs on the host with the new root as $1: creates the session user without
# depending on `passwd` being in the package set.
_CREATE_SESSION_USER_HOOK = f"""set -e
root="$1"
grep -q '^{SESSION_USER}:' "$root/etc/passwd" || echo '{SESSION_USER}:x:{SESSION_UID}:{SESSION_UID}:Corral session user:{SESSION_HOME}:/bin/bash' >> "$root/etc/passwd"
grep -q '^{SESSION_USER}:' "$root/etc/group" || echo '{SESSION_USER}:x:{SESSION_UID}:' >> "$root/etc/group"
if [ -f "$root/etc/shadow" ]; then grep -q '^{SESSION_USER}:' "$root/etc/shadow" || echo '{SESSION_USER}:*:19000:0:99999:7:::' >> "$root/etc/shadow"; fi
if [ -f "$root/etc/gshadow" ]; then grep -q '^{SESSION_USER}:' "$root/etc/gshadow" || echo '{SESSION_USER}:!::' >> "$root/etc/gshadow"; fi
mkdir -p "$root{SESSION_HOME}" "$root/opt/corral" "$root/run/corral"
if [ -d "$root/etc/skel" ]; then cp -a "$root/etc/skel/." "$root{SESSION_HOME}/"; fi
chown -R {SESSION_UID}:{SESSION_UID} "$root{SESSION_HOME}"
chmod 0755 "$root{SESSION_HOME}"
# openssh-server's install made host keys that every session would share: each session gets its own.
rm -f "$root"/etc/ssh/ssh_host_*
"""
_READ_CHUNK = 1 << 20
_TERMINATE_GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    image_id: str
    recipe: str
    aliases: tuple[str, ...]
    labels: dict[str, str]
    size_bytes: int
    reused: bool  # True when the tag already existed and nothing was built
    seconds: float


async def image_exists(tag: str, *, docker: aiodocker.Docker | None = None) -> bool:
    async with _docker_client(docker) as client:
        return await _inspect_or_none(client, tag) is not None


async def build_image(
    recipe_name: str | Path | Recipe,
    *,
    tag: str | None = None,
    progress: Callable[[BuildProgress], None] | None = None,
    docker: aiodocker.Docker | None = None,
    force: bool = False,
    recipes_dir: Path | None = None,
    variant: str | None = None,
) -> BuiltImage:
    """Builds the recipe's image unless its tag exists already, built from this very recipe (same
    digest), and ``force`` is not set.

    ``tag`` overrides the recipe's tag; the recipe's aliases (e.g.
    ``corral/python:latest``) are applied only when it is not overridden.
    Concurrent builds of one tag, in any process on this machine, wait for
    each other instead of building twice. A recipe with a ``base`` builds (or
    reuses) the base's image first, then adds its pip layer (``pip_layer``);
    ``force`` rebuilds that layer only, not the base.

    ``recipe_name`` is a recipe name (looked up in ``recipes_dir``, or by
    default in ``recipe.recipe_dirs()``: ``$CORRAL_RECIPES_DIR``,
    ``~/.config/corral/recipes``, the shipped ones), a path to a recipe file,
    or a loaded ``Recipe``. ``variant`` (else ``$CORRAL_IMAGE_VARIANT``) picks
    a variant of a recipe that has ``[variants]``; by default the builder
    picks ``cuda`` on a host with an NVIDIA GPU, else ``cpu``. Every built
    image is stamped with its Python and framework versions (``image_probe``).
    """
    if isinstance(recipe_name, Recipe):
        recipe = recipe_name
    else:
        recipe = load_recipe(recipe_name, recipes_dir, variant=requested_variant(variant))
    target_tag = tag or recipe.tag
    aliases = recipe.aliases if tag is None else ()
    report = progress or (lambda event: None)
    started = time.monotonic()
    try:
        async with _docker_client(docker) as client, _build_lock(target_tag, report):
            existing = await _inspect_or_none(client, target_tag)
            if existing is not None and not force and _digest_of(existing) == recipe.digest:
                await _apply_tags(client, existing["Id"], aliases, only_missing=True)
                report(BuildProgress("reused", f"{target_tag} exists ({existing['Id'][:19]})"))
                return _built_image(existing, target_tag, recipe, aliases, started, reused=True)
            owner = f"{SESSION_UID}:{SESSION_UID}"
            base_recipe = recipe.resolved_base()
            if base_recipe is not None:  # layered: the base is built (or reused) first, by this same path
                base = await build_image(base_recipe, progress=_base_progress(base_recipe.name, report), docker=client)
                image_id = await add_pip_layer(client, base.image_id, recipe, report, owner=owner)
            else:
                image_id = await _bootstrap_and_import(client, recipe, report)
                if recipe.pip:
                    rootfs_id = image_id
                    try:
                        image_id = await add_pip_layer(client, rootfs_id, recipe, report, owner=owner)
                    except BaseException:
                        await _remove_if_dangling(client, rootfs_id)  # no untagged half-build left behind
                        raise
            unstamped_id = image_id
            try:
                image_id = await stamp_contents(
                    client, unstamped_id, report, message=f"corral recipe {recipe.name} ({recipe.digest}): contents"
                )
            except BaseException:
                await _remove_if_dangling(client, unstamped_id)
                raise
            report(BuildProgress("tagging", ", ".join((target_tag, *aliases))))
            await _apply_tags(client, image_id, (target_tag, *aliases), only_missing=False)
            if existing is not None and existing["Id"] != image_id:
                await _remove_if_dangling(client, existing["Id"])
            built = _built_image(await client.images.inspect(image_id), target_tag, recipe, aliases, started, reused=False)
            report(BuildProgress("done", f"{target_tag} built in {built.seconds:.1f} s"))
            return built
    except aiodocker.DockerError as error:
        raise ImageBuildError(f"Docker engine error while building {target_tag}: {error.message}") from error


def _base_progress(base: str, report: ProgressCallback) -> ProgressCallback:
    """The base build's events, marked as such; its end is not this build's end."""

    def forward(event: BuildProgress) -> None:
        stage = "resolving" if event.stage in ("reused", "done", "tagging") else event.stage
        report(BuildProgress(stage, f"base {base}: {event.message}", event.current, event.total, event.unit))

    return forward


async def _bootstrap_and_import(client: aiodocker.Docker, recipe: Recipe, report: ProgressCallback) -> str:
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise ImageBuildError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    command = _mmdebstrap_command(mmdebstrap, recipe, mirror_lines_for_suite(recipe.suite))
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_mmdebstrap_environment(),
        start_new_session=True,  # a Ctrl-C of the caller must not bypass mmdebstrap's own cleanup
    )
    parser = MmdebstrapProgressParser()
    stderr_task = asyncio.create_task(_follow_stderr(process, parser, report))
    try:
        image_id = await import_rootfs(
            client,
            _tarball_chunks(process, parser, stderr_task, report),
            changes=dockerfile_changes(
                user=f"{SESSION_UID}:{SESSION_UID}",
                workdir=SESSION_HOME,
                env={"LANG": "C.UTF-8", "HOME": SESSION_HOME, "PATH": DEFAULT_PATH},
                labels=recipe.image_labels(),
                cmd=["/bin/bash"],
            ),
            message=f"corral recipe {recipe.name} ({recipe.digest})",
        )
    except Exception as error:
        await _stop_process(process)
        if process.returncode not in (None, 0):
            details = "\n".join(parser.tail[-12:])
            raise ImageBuildError(f"mmdebstrap exited with code {process.returncode}:\n{details}") from error
        if isinstance(error, ImageBuildError):
            raise
        raise ImageBuildError(f"importing into Docker failed: {error}") from error
    finally:
        await _stop_process(process)
        stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stderr_task
    return image_id


def _mmdebstrap_command(executable: str, recipe: Recipe, mirrors: list[str]) -> list[str]:
    return [
        executable,
        "--verbose",
        "--variant=apt",
        "--format=tar",
        f"--include={','.join(recipe.packages)}",
        *[f"--dpkgopt={option}" for option in _DPKG_OPTIONS],
        f"--customize-hook={_CREATE_SESSION_USER_HOOK}",
        recipe.suite,
        "-",  # the tarball goes to stdout, straight into the import
        *mirrors,
    ]


def _mmdebstrap_environment() -> dict[str, str]:
    """The caller's environment (so http(s)_proxy reach apt) with messages in English."""
    environment = dict(os.environ)
    environment["LC_ALL"] = "C.UTF-8"
    environment.pop("LANGUAGE", None)
    return environment


async def _follow_stderr(
    process: asyncio.subprocess.Process, parser: MmdebstrapProgressParser, report: ProgressCallback
) -> None:
    assert process.stderr is not None
    async for raw_line in process.stderr:
        event = parser.feed(raw_line.decode("utf-8", "replace"))
        if event is not None:
            report(event)


async def _tarball_chunks(
    process: asyncio.subprocess.Process,
    parser: MmdebstrapProgressParser,
    stderr_task: asyncio.Task[None],
    report: ProgressCallback,
) -> AsyncIterator[bytes]:
    """mmdebstrap's stdout; raises (so the import aborts) if mmdebstrap fails."""
    assert process.stdout is not None
    sent = 0
    last_report = 0.0
    while chunk := await process.stdout.read(_READ_CHUNK):
        now = time.monotonic()
        if sent == 0:
            report(BuildProgress("importing", "streaming the root filesystem into Docker", 0, unit="bytes"))
            last_report = now
        sent += len(chunk)
        if now - last_report > 0.5:
            report(BuildProgress("importing", "streaming the root filesystem into Docker", sent, unit="bytes"))
            last_report = now
        yield chunk
    exit_code = await process.wait()
    with contextlib.suppress(asyncio.CancelledError):
        await stderr_task
    if exit_code != 0:
        details = "\n".join(parser.tail[-12:])
        raise ImageBuildError(f"mmdebstrap exited with code {exit_code}:\n{details}")
    report(BuildProgress("importing", "root filesystem streamed", sent, unit="bytes"))


async def _stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)  # mmdebstrap cleans its temporary root on TERM
    try:
        await asyncio.wait_for(process.wait(), _TERMINATE_GRACE_SECONDS)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _digest_of(image: dict) -> str:
    """The recipe digest an image was built from ('' for one built before digests, or by hand)."""
    labels = (image.get("Config") or {}).get("Labels") or {}
    return labels.get(RECIPE_DIGEST_LABEL, "")


async def _apply_tags(client: aiodocker.Docker, image_id: str, tags: tuple[str, ...], *, only_missing: bool) -> None:
    for full_tag in tags:
        if only_missing and await _inspect_or_none(client, full_tag) is not None:
            continue
        repository, _, version = full_tag.rpartition(":")
        if not repository or "/" in version:
            repository, version = full_tag, "latest"
        await client.images.tag(image_id, repository, tag=version)


async def _remove_if_dangling(client: aiodocker.Docker, image_id: str) -> None:
    """Drops the image a forced rebuild replaced, unless still tagged or used."""
    previous = await _inspect_or_none(client, image_id)
    if previous is None or previous.get("RepoTags"):
        return
    with contextlib.suppress(aiodocker.DockerError):  # 409: a container still uses it
        await client.images.delete(image_id)


async def _inspect_or_none(client: aiodocker.Docker, reference: str) -> dict | None:
    try:
        return await client.images.inspect(reference)
    except aiodocker.DockerError as error:
        if error.status == 404:
            return None
        raise


def _built_image(
    inspected: dict, tag: str, recipe: Recipe, aliases: tuple[str, ...], started: float, *, reused: bool
) -> BuiltImage:
    return BuiltImage(
        tag=tag,
        image_id=inspected["Id"],
        recipe=recipe.name,
        aliases=aliases,
        labels=dict((inspected.get("Config") or {}).get("Labels") or {}),
        size_bytes=int(inspected.get("Size") or 0),
        reused=reused,
        seconds=time.monotonic() - started,
    )


@contextlib.asynccontextmanager
async def _docker_client(docker: aiodocker.Docker | None) -> AsyncIterator[aiodocker.Docker]:
    if docker is not None:
        yield docker
        return
    client = aiodocker.Docker()
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def _build_lock(tag: str, report: ProgressCallback) -> AsyncIterator[None]:
    """A per-tag file lock so two processes never bootstrap the same image at once."""
    name = hashlib.sha256(tag.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"corral-image-build-{name}.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        waiting_reported = False
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting_reported:
                    report(BuildProgress("resolving", f"waiting for another build of {tag}"))
                    waiting_reported = True
                await asyncio.sleep(0.25)
        yield
    finally:
        os.close(descriptor)  # releases the lock


# --------------------------------------------------------------------------
# python -m corral.kernels.builder
# --------------------------------------------------------------------------


def _print_progress(event: BuildProgress) -> None:
    print(event.describe(), file=sys.stderr, flush=True)


async def _main_async(arguments: argparse.Namespace) -> int:
    if arguments.list:
        for recipe in list_recipes(None):
            print(f"{recipe.name}\t{recipe.tag}\t{recipe.description}")
        return 0
    image = await build_image(
        arguments.recipe, tag=arguments.tag, force=arguments.force, progress=_print_progress, variant=arguments.variant
    )
    state = "reused" if image.reused else f"built in {image.seconds:.1f} s"
    print(f"{image.tag} {image.image_id} ({image.size_bytes / 1e6:.0f} MB, {state})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m corral.kernels.builder", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", default="python", help="recipe name or file (default: python)")
    parser.add_argument("--tag", help="tag to build instead of the recipe's own")
    parser.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    parser.add_argument("--variant", help="variant of a recipe with [variants] (default: cuda on GPU hosts, else cpu)")
    parser.add_argument("--list", action="store_true", help="list recipes and exit")
    arguments = parser.parse_args(argv)
    try:
        return asyncio.run(_main_async(arguments))
    except CorralError as error:  # unknown/invalid recipe, failed build, Docker down
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
