"""What an image contains, recorded as labels when it is built, so that listing images stays a label read.

After a build, ``stamp_contents`` runs a short probe in a throwaway
container of the new image (its own user, no network): the ``python3`` on
its ``PATH`` (the venv's first) reports its version and the installed
framework distributions. The container is committed with the labels
``ai.corral.python`` (``"3.11.2"``) and ``ai.corral.frameworks``
(``"torch 2.13.0+cpu"``; comma-separated, ``""`` when none) plus any extra
labels, and with the image's own USER / WORKDIR / ENV PATH / CMD /
ENTRYPOINT, then removed whatever happens. The probe reads package metadata
only (nothing is imported), so it takes about a second whatever is installed.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiodocker

from corral.kernels.build_progress import BuildProgress, ProgressCallback
from corral.kernels.pip_layer import _container, _run_to_completion, layer_changes
from corral.kernels.recipe import FRAMEWORKS_LABEL, PYTHON_LABEL

PROBE_MARKER = "CORRAL-PROBE "
# Distribution name -> the name shown (several distributions may provide one framework).
FRAMEWORK_DISTRIBUTIONS: dict[str, str] = {
    "torch": "torch",
    "tensorflow": "tensorflow",
    "tensorflow-cpu": "tensorflow",
    "jax": "jax",
}
PROBE_SCRIPT = f"""
import json, platform
from importlib import metadata
found = []
for distribution, shown in {sorted(FRAMEWORK_DISTRIBUTIONS.items())!r}:
    try:
        found.append(shown + " " + metadata.version(distribution))
    except metadata.PackageNotFoundError:
        pass
print({PROBE_MARKER!r} + json.dumps({{"python": platform.python_version(), "frameworks": found}}), flush=True)
"""


def parse_probe_output(lines: list[str]) -> dict[str, Any] | None:
    """The probe's answer from the container's output lines (None when it printed none)."""
    for line in reversed(lines):
        if line.startswith(PROBE_MARKER):
            try:
                answer = json.loads(line[len(PROBE_MARKER):])
            except ValueError:
                return None
            return answer if isinstance(answer, dict) else None
    return None


def content_labels(answer: Mapping[str, Any] | None) -> dict[str, str]:
    """The labels for a probe answer; an image without a working ``python3`` gets empty values."""
    if not answer:
        return {PYTHON_LABEL: "", FRAMEWORKS_LABEL: ""}
    frameworks = [str(item) for item in answer.get("frameworks") or [] if str(item).strip()]
    return {PYTHON_LABEL: str(answer.get("python") or ""), FRAMEWORKS_LABEL: ", ".join(dict.fromkeys(frameworks))}


async def stamp_contents(
    client: aiodocker.Docker,
    image_id: str,
    report: ProgressCallback,
    *,
    extra_labels: Mapping[str, str] | None = None,
    message: str = "corral: content labels",
) -> str:
    """Probes ``image_id`` and commits it with the content labels (and ``extra_labels``); the new image's id.

    The new image is untagged; ``image_id`` itself is left alone (it is the new one's parent).
    """
    config = (await client.images.inspect(image_id)).get("Config") or {}
    report(BuildProgress("customizing", "reading the Python and framework versions"))
    command = ["python3", "-c", PROBE_SCRIPT]
    # The command goes in Cmd; Entrypoint is overridden only when the image has one (layer_changes restores it).
    run = {"Entrypoint": command[:1], "Cmd": command[1:]} if config.get("Entrypoint") else {"Cmd": command}
    container_config = {
        "Image": image_id,
        **run,
        "AttachStdin": False,
        "Tty": False,
        "HostConfig": {"NetworkMode": "none"},
    }
    async with _container(client, container_config) as container:
        exit_code, lines = await _run_to_completion(container, lambda line: None, report)
        answer = parse_probe_output(lines) if exit_code == 0 else None
        labels = content_labels(answer)
        if answer is None:
            report(BuildProgress("customizing", f"no python3 answered in the image (exit code {exit_code})"))
        else:
            frameworks = labels[FRAMEWORKS_LABEL] or "no frameworks"
            report(BuildProgress("customizing", f"Python {labels[PYTHON_LABEL]}, {frameworks}"))
        labels.update(extra_labels or {})
        committed = await container.commit(
            changes=layer_changes(config, labels, with_venv=False), message=message, pause=False
        )
    return str(committed["Id"])
