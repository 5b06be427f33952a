"""Start-up stays light: the CLI's help, the push command's parser and the card module load no ML stack.

Each check runs in a fresh interpreter, since this test process has long imported torch.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "peft", "datasets")

CHECK = """
import sys
{code}
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
assert not heavy, "imported " + ", ".join(heavy)
"""


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-c", CHECK.format(code=code, heavy=HEAVY)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    "code",
    [
        "import hf_transfer",
        "import hf_transfer.cards",
        "import hf_transfer.privacy, hf_transfer.artifacts, hf_transfer.modalities",
        "import hf_transfer.hub.push",
        "from hf_transfer.cli import build_parser; build_parser()",
    ],
)
def test_module_imports_no_ml_stack(code):
    result = _run(code)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("argv", [["--help"], ["push", "--help"], ["train", "--help"]])
def test_cli_help_imports_no_ml_stack(argv):
    code = (
        "from hf_transfer.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert "usage: hf-transfer" in result.stdout


def _imported_modules(path: Path, module: str) -> set[str]:
    """hf_transfer modules that ``path`` imports anywhere (functions included, ``TYPE_CHECKING`` blocks not)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if "TYPE_CHECKING" in ast.unparse(node.test):
                for child in node.orelse:
                    self.visit(child)
            else:
                self.generic_visit(node)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.update(f"{base}.{alias.name}" for alias in node.names)
            found.add(base)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(alias.name for alias in node.names)

    Visitor().visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def test_no_import_circle():
    """No two hf_transfer modules import each other, directly or around a loop, even from inside a function."""
    package = REPO_ROOT / "hf_transfer"
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {name: (_imported_modules(path, name) & set(modules)) - {name} for name, path in modules.items()}

    def reaches(start: str, goal: str) -> list[str] | None:
        stack, seen = [[start]], {start}
        while stack:
            route = stack.pop()
            for nxt in sorted(graph[route[-1]]):
                if nxt == goal:
                    return route + [nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(route + [nxt])
        return None

    circles = [route for name in sorted(graph) if (route := reaches(name, name))]
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)
