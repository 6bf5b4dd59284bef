"""Maps each top-level folder onto a subpackage of the `corral` namespace."""
from pathlib import Path

from setuptools import setup

COMPONENTS = {
    "common": "corral.common",
    "manager": "corral.manager",
    "agent": "corral.agent",
    "kernels": "corral.kernels",
    "storage_proxy": "corral.storage_proxy",
    "client_sdk": "corral.client",
}

ROOT = Path(__file__).parent


def _packages() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for folder, name in COMPONENTS.items():
        package_dir[name] = folder
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder)
            packages.append(".".join([name, *rel.parts]) if rel.parts else name)
    return packages, package_dir


packages, package_dir = _packages()
setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        **{name: ["**/*.sh", "**/*.toml", "**/*.ini", "**/*.mako", "**/*.html", "**/*.js", "**/*.css", "**/*.json", "**/*.txt"] for name in COMPONENTS.values()},
        # The built web UI (`make webui` before building a wheel), served by the manager at /.
        "corral.manager": ["**/*.sh", "**/*.toml", "**/*.ini", "**/*.mako", "**/*.txt", "webui/dist/**/*"],
    },
    # The UI's sources and npm packages stay out of the wheel; only its build goes in.
    exclude_package_data={"corral.manager": ["webui/node_modules/*", "webui/src/*", "webui/*.json", "webui/*.ts", "webui/index.html",
                                             "webui/dist/.corral-built"]},
)
