"""Static layering checks over the gpugrad source tree, done with ``ast`` (not text search).

Rules (see DESIGN.md):

* CuPy (``cupy``, ``cupyx``) is imported only by modules under ``gpugrad/backend/``.
* Modules under ``gpugrad/ops/`` import neither NumPy nor CuPy; ops use the backend's array
  namespace (``backend.xp``) and backend primitives.
* Every public module (no path component starting with a single underscore; ``__init__.py`` and
  ``__main__.py`` count as public) has a module docstring.

The checker is a plain function over (source text, repo-relative path), so it is tested on synthetic
sources too: a rule that can never fire would pass silently.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "gpugrad"

CUPY_ROOTS = frozenset({"cupy", "cupyx"})
ARRAY_LIB_ROOTS = CUPY_ROOTS | {"numpy"}
_DYNAMIC_IMPORTERS = frozenset({"import_module", "__import__"})


def _imported_roots(tree: ast.AST) -> list[tuple[int, str]]:
    """Return (line, top-level module name) for every absolute import in ``tree``.

    Covers ``import x.y``, ``from x.y import z`` and literal dynamic imports
    (``importlib.import_module("x")``, ``__import__("x")``), wherever they appear (module level,
    inside functions, under ``if TYPE_CHECKING``). Relative imports are ignored.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else None
            )
            first = node.args[0]
            if (
                name in _DYNAMIC_IMPORTERS
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                found.append((node.lineno, first.value.split(".")[0]))
    return found


def _is_public(parts: tuple[str, ...]) -> bool:
    """A module is public unless a path component starts with a single underscore."""
    for part in parts:
        stem = part.removesuffix(".py")
        if stem.startswith("_") and not (stem.startswith("__") and stem.endswith("__")):
            return False
    return True


def check_source(source: str, relpath: str) -> list[str]:
    """Return the layering violations in one module.

    ``relpath`` is the module's path relative to the repo root, with ``/`` separators
    (e.g. ``"gpugrad/ops/linalg.py"``); it decides which rules apply. Each violation is a
    message ``"<relpath>:<line>: <what is wrong>"``.
    """
    parts = tuple(relpath.split("/"))
    try:
        tree = ast.parse(source, filename=relpath)
    except SyntaxError as exc:
        return [f"{relpath}:{exc.lineno}: cannot be parsed: {exc.msg}"]

    in_backend = parts[:2] == (PACKAGE, "backend")
    in_ops = parts[:2] == (PACKAGE, "ops")
    problems: list[str] = []
    for line, root in _imported_roots(tree):
        if root in CUPY_ROOTS and not in_backend:
            problems.append(
                f"{relpath}:{line}: imports {root}; only modules under {PACKAGE}/backend/ may "
                "import CuPy"
            )
        elif root in ARRAY_LIB_ROOTS and in_ops:
            problems.append(
                f"{relpath}:{line}: imports {root}; ops must use the backend's array namespace "
                "(backend.xp) and backend primitives"
            )
    if _is_public(parts) and ast.get_docstring(tree, clean=False) is None:
        problems.append(f"{relpath}:1: public module has no module docstring")
    return problems


def check_tree(repo: Path = REPO) -> list[str]:
    """Run :func:`check_source` over every ``.py`` file in the package; return all violations."""
    problems: list[str] = []
    for path in sorted((repo / PACKAGE).rglob("*.py")):
        relpath = path.relative_to(repo).as_posix()
        problems.extend(check_source(path.read_text(encoding="utf-8"), relpath))
    return problems


# --- the real tree -------------------------------------------------------------------------------


def test_package_tree_is_scanned() -> None:
    files = list((REPO / PACKAGE).rglob("*.py"))
    assert (REPO / PACKAGE / "__init__.py") in files, f"no {PACKAGE}/__init__.py under {REPO}"


def test_source_tree_respects_layering() -> None:
    problems = check_tree()
    assert not problems, "layering violations:\n" + "\n".join(problems)


# --- the checker itself --------------------------------------------------------------------------

DOC = '"""Docstring."""\n'


@pytest.mark.parametrize(
    ("relpath", "source", "expected"),
    [
        ("gpugrad/tensor.py", DOC + "import cupy\n", "only modules under gpugrad/backend/"),
        ("gpugrad/nn/linear.py", DOC + "import cupy as cp\n", "imports cupy"),
        ("gpugrad/autograd.py", DOC + "from cupy.cuda import Device\n", "imports cupy"),
        ("gpugrad/train.py", DOC + "import cupyx.scipy\n", "imports cupyx"),
        (
            "gpugrad/tensor.py",
            DOC + "def f():\n    import importlib\n    return importlib.import_module('cupy')\n",
            "imports cupy",
        ),
        ("gpugrad/ops/linalg.py", DOC + "import numpy as np\n", "ops must use the backend"),
        ("gpugrad/ops/reduce.py", DOC + "from numpy.typing import ArrayLike\n", "imports numpy"),
        (
            "gpugrad/ops/losses.py",
            DOC + "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import numpy\n",
            "imports numpy",
        ),
        ("gpugrad/ops/conv.py", DOC + "import cupy\n", "only modules under gpugrad/backend/"),
        ("gpugrad/tensor.py", "import math\n", "no module docstring"),
        ("gpugrad/ops/__init__.py", "# comment only\n", "no module docstring"),
        ("gpugrad/ops/broken.py", "def (:\n", "cannot be parsed"),
    ],
)
def test_checker_flags_violations(relpath: str, source: str, expected: str) -> None:
    problems = check_source(source, relpath)
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(f"{relpath}:") for p in problems), problems


@pytest.mark.parametrize(
    ("relpath", "source"),
    [
        ("gpugrad/backend/cupy_backend.py", DOC + "import cupy\nimport cupyx\n"),
        (
            "gpugrad/backend/cupy_backend.py",
            DOC + "import importlib\ncp = importlib.import_module('cupy')\n",
        ),
        ("gpugrad/backend/numpy_backend.py", DOC + "import numpy as np\n"),
        ("gpugrad/tensor.py", DOC + "import numpy as np\n"),
        ("gpugrad/ops/linalg.py", DOC + "from ..backend import get_backend\nimport math\n"),
        ("gpugrad/ops/linalg.py", DOC + "from . import numpy\n"),  # relative: not the library
        ("gpugrad/_version.py", '__version__ = "0.1.0"\n'),  # private: no docstring needed
        ("gpugrad/backend/_cache.py", "x = 1\n"),
    ],
)
def test_checker_accepts_allowed_code(relpath: str, source: str) -> None:
    assert check_source(source, relpath) == []


def test_check_tree_finds_violations_on_disk(tmp_path: Path) -> None:
    ops = tmp_path / PACKAGE / "ops"
    ops.mkdir(parents=True)
    (tmp_path / PACKAGE / "__init__.py").write_text(DOC, encoding="utf-8")
    (ops / "__init__.py").write_text(DOC, encoding="utf-8")
    (ops / "bad.py").write_text(DOC + "\nimport numpy as np\n", encoding="utf-8")
    assert check_tree(tmp_path) == [
        "gpugrad/ops/bad.py:3: imports numpy; ops must use the backend's array namespace "
        "(backend.xp) and backend primitives"
    ]
