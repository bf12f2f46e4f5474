"""The suite passes without the optional extras (matplotlib, hatchling, mpi4py, torch, SciPy,
CuPy): a test that needs one imports it only after `pytest.importorskip`, a `find_spec`
check, or under the `gpu` mark (skipped without a GPU). Checked by reading the test files,
so a bare import is caught here even where every extra is installed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
OPTIONAL = {"matplotlib", "hatchling", "mpi4py", "torch", "scipy", "cupy", "cupyx"}
# gpugrad modules that import CuPy as they load (cuda_comm imports it only when called).
NEEDS_CUPY = {"cupy_backend", "cupy_kernels"}


def _needed(node: ast.AST) -> set[str]:
    """The optional packages an import statement needs."""
    if isinstance(node, ast.Import):
        names = {alias.name.partition(".")[0] for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
        names = {node.module.partition(".")[0]}
        if node.module == "gpugrad.backend" and NEEDS_CUPY & {a.name for a in node.names}:
            names.add("cupy")
        if node.module.rpartition(".")[2] in NEEDS_CUPY:
            names.add("cupy")
    else:
        return set()
    return {"cupy" if n == "cupyx" else n for n in names & (OPTIONAL | {"cupy"})}


def _guards(scope: ast.AST) -> set[str]:
    """Packages a scope (a function or the module) makes sure of before importing them:
    importorskip("x") or find_spec("x") calls, or "cupy" for a test under the gpu mark."""
    guarded = set()
    for node in ast.walk(scope):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in ("importorskip", "find_spec"):
                guarded.add(str(node.args[0].value).partition(".")[0])
    for decorator in getattr(scope, "decorator_list", []):
        if "gpu" in ast.unparse(decorator):
            guarded.add("cupy")
    return guarded


def _unguarded_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    module_guards = _guards(tree)
    scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    inside = {id(node): scope for scope in scopes for node in ast.walk(scope) if node is not scope}
    problems = []
    for node in ast.walk(tree):
        needed = _needed(node)
        if not needed:
            continue
        scope = inside.get(id(node))
        if scope is not None:  # a function's own guards, or the module's (a skipif, say)
            allowed = _guards(scope) | module_guards
        else:  # at import time: only guards in the statements above it count
            above = tree.body[: tree.body.index(node)] if node in tree.body else []
            allowed = set().union(*(_guards(statement) for statement in above))
        missing = needed - allowed
        if missing:
            problems.append(f"{path.name}:{node.lineno} imports {sorted(missing)} unguarded")
    return problems


@pytest.mark.parametrize(
    "path", [*sorted(TESTS.glob("test_*.py")), TESTS / "helpers.py"], ids=lambda p: p.name
)
def test_optional_packages_are_imported_only_behind_a_skip(path):
    assert _unguarded_imports(path) == []


def test_the_check_catches_a_bare_import(tmp_path):
    bare = tmp_path / "test_bare.py"
    bare.write_text(
        "import pytest\n\n\ndef test_a():\n    import matplotlib\n\n\n"
        "def test_b():\n    pytest.importorskip('torch')\n    import torch\n\n\n"
        "def test_c():\n    from gpugrad.backend import cupy_backend\n"
    )
    assert _unguarded_imports(bare) == [
        "test_bare.py:5 imports ['matplotlib'] unguarded",
        "test_bare.py:14 imports ['cupy'] unguarded",
    ]
