"""The ``pytorch-2.13`` recipe (python image + a pip layer; CPU build on a host without a GPU), for real."""
from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from pathlib import Path

import aiodocker
import pytest

from corral.kernels.builder import BuiltImage, build_image, image_exists
from corral.kernels.variants import detect_accelerator

from .conftest import run_in_image

# A cold build bootstraps the python image too; torch's CPU wheel alone is ~190 MB.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture
async def pytorch_image(docker: aiodocker.Docker) -> BuiltImage:
    return await build_image("pytorch-2.13", docker=docker)  # builds once (and the base if needed), then reuses


async def test_the_variant_tags_and_content_labels(pytorch_image: BuiltImage, docker: aiodocker.Docker) -> None:
    variant = detect_accelerator()
    assert pytorch_image.tag == f"corral/pytorch:2.13-{variant}"
    assert await image_exists("corral/pytorch:2.13", docker=docker)
    labels = (await docker.images.inspect(pytorch_image.tag))["Config"]["Labels"]
    assert labels["ai.corral.variant"] == variant and labels["ai.corral.recipe"] == "pytorch-2.13"
    assert labels["ai.corral.python"].startswith("3.11.")
    assert labels["ai.corral.frameworks"] == ("torch 2.13.0+cpu" if variant == "cpu" else "torch 2.13.0")
    assert labels["ai.corral.services"] == "sshd:tcp:2200"  # from the python base


async def test_torch_runs_as_the_session_user_without_network(
    pytorch_image: BuiltImage, docker: aiodocker.Docker
) -> None:
    code, output = await run_in_image(
        docker, pytorch_image.tag,
        ["python", "-c", "import torch; print(torch.__version__, torch.randn(2,2).sum())"],
    )
    assert code == 0, output
    assert "2.13.0" in output and "tensor(" in output
    assert "Failed to initialize NumPy" not in output


async def test_pip_install_user_works_in_the_session(pytorch_image: BuiltImage, docker: aiodocker.Docker) -> None:
    """``pip install --user`` (here offline, from a wheel mounted in) lands in ~/.local and imports."""
    wheels = Path(tempfile.mkdtemp(prefix="corral-test-wheel-"))
    try:
        wheels.chmod(0o755)
        wheel = wheels / "corral_probe_pkg-1.0-py3-none-any.whl"
        wheel.write_bytes(_tiny_wheel("corral_probe_pkg", "1.0"))
        wheel.chmod(0o644)
        code, output = await run_in_image(
            docker, pytorch_image.tag,
            ["sh", "-c", "pip install --user --no-index --no-deps --disable-pip-version-check /w/" + wheel.name
             + " && python -c 'import corral_probe_pkg as p; print(p.__file__)'"],
            binds=[f"{wheels}:/w:ro"],
        )
    finally:
        shutil.rmtree(wheels, ignore_errors=True)
    assert code == 0, output
    assert "/home/work/.local/lib/python3.11/site-packages/corral_probe_pkg" in output


def _tiny_wheel(name: str, version: str) -> bytes:
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "VALUE = 1\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: corral-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist_info}/RECORD", "".join(f"{path},,\n" for path in [*files, f"{dist_info}/RECORD"]))
    return buffer.getvalue()
