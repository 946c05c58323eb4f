"""The library never leans on the CLI (issue 24): no module under src/swinir outside ``swinir/cli/`` imports
``swinir.cli``, read from the source (ast), so an import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import swinir

PACKAGE = Path(swinir.__file__).parent
# `python -m swinir` is the command line's own entry point
ENTRY_POINTS = {"__main__.py"}


def _module_name(path: Path, root: Path) -> str:
    parts = ["swinir", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``, relative ones resolved, plus import_module("...")."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            found += [(node.lineno, a.value) for a in node.args[:1] if isinstance(a, ast.Constant)]
    return found


def _cli_imports(root: Path) -> list[str]:
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] == "cli" or rel.as_posix() in ENTRY_POINTS:
            continue
        for line, module in _imported(path, root):
            if module == "swinir.cli" or module.startswith("swinir.cli."):
                offenders.append(f"{rel}:{line} imports {module}")
    return offenders


def test_no_library_module_imports_the_cli() -> None:
    assert _cli_imports(PACKAGE) == []


def test_the_check_sees_every_spelling_of_an_import(tmp_path: Path) -> None:
    """The walker itself: each spelling below must be caught (else the test above proves nothing)."""
    lib = tmp_path / "serve"
    lib.mkdir()
    spellings = [
        "from swinir.cli.restore import restore_file",
        "import swinir.cli.restore",
        "from swinir import cli",
        "from ..cli import restore",
        "def f():\n    from swinir.cli import main",
        "import importlib\nimportlib.import_module('swinir.cli.restore')",
    ]
    for i, code in enumerate(spellings):
        (lib / f"m{i}.py").write_text(code + "\n")
    (lib / "fine.py").write_text("from swinir.pipeline import restore_file\nfrom . import jobs\n")
    found = _cli_imports(tmp_path)
    assert sorted({line.split(":")[0] for line in found}) == [f"serve/m{i}.py" for i in range(len(spellings))]
