"""The manager's modules import each other without cycles (the wiring is built in one place,
``server.py``, instead of services reaching into each other), and no server imports another."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"manager": "corral.manager", "agent": "corral.agent", "storage_proxy": "corral.storage_proxy",
            "common": "corral.common", "kernels": "corral.kernels", "client_sdk": "corral.client"}


def _module_name(path: Path) -> str:
    folder = path.relative_to(ROOT).parts[0]
    parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGES[folder], *parts])


def _runtime_imports(path: Path, module: str) -> set[str]:
    """Modules imported at import time (not under ``if TYPE_CHECKING:``), absolute."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
            if isinstance(node, ast.Try):
                for handler in node.handlers:
                    visit(handler.body)

    visit(tree.body)
    return found


def _graph(folder: str) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in (ROOT / folder).rglob("*.py") if "migrations" not in p.parts}
    return {name: _runtime_imports(path, name) & set(modules) - {name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := dfs(node)):
            return found
    return None


def test_manager_modules_have_no_import_cycle() -> None:
    cycle = _cycle(_graph("manager"))
    assert cycle is None, " → ".join(cycle or [])


def test_servers_do_not_import_each_other() -> None:
    servers = {"manager": "corral.manager", "agent": "corral.agent", "storage_proxy": "corral.storage_proxy"}
    for folder, own in servers.items():
        for path in (ROOT / folder).rglob("*.py"):
            imported = _runtime_imports(path, _module_name(path))
            foreign = {m for m in imported for other in servers.values() if other != own and m.startswith(other)}
            assert not foreign, f"{path.relative_to(ROOT)} imports {sorted(foreign)}"
