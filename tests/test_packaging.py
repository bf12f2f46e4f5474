"""Packaging checks: the wheel ships the package and the CUDA C sources, and both are found.

The wheel is built offline with ``pip wheel --no-build-isolation``, so hatchling must be installed
(it is part of the ``dev`` extra). A hatchling wheel build takes a second or two.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
KERNELS = REPO / "kernels"
_LOADED = itertools.count()


def _kernel_files() -> list[str]:
    """Return every file under <repo>/kernels as a POSIX path relative to that folder."""
    return sorted(
        p.relative_to(KERNELS).as_posix()
        for p in KERNELS.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel once for this module and return its path."""
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip(
            "hatchling is not installed, so the wheel cannot be built offline "
            '(install the dev extra: pip install -e ".[dev]")'
        )
    out = tmp_path_factory.mktemp("wheel")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--disable-pip-version-check",
        "-q",
        "-w",
        str(out),
        str(REPO),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"wheel build failed:\n{proc.stdout}\n{proc.stderr}"
    wheels = list(out.glob("gpugrad-*.whl"))
    assert len(wheels) == 1, f"expected one gpugrad wheel in {out}, found {wheels}"
    return wheels[0]


def test_kernels_folder_is_not_empty() -> None:
    assert (KERNELS / "README.md").is_file(), f"{KERNELS / 'README.md'} is missing"


def test_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    expected = {
        "gpugrad/__init__.py",
        "gpugrad/py.typed",
        "gpugrad/backend/kernel_source.py",
        "gpugrad/data/digits.npz",
        "gpugrad/data/DIGITS-LICENSE.txt",
    }
    expected |= {f"gpugrad/kernels/{name}" for name in _kernel_files()}
    missing = sorted(expected - names)
    assert not missing, f"{wheel.name} lacks {missing}"
    stray = sorted(n for n in names if n.startswith(("tests/", "bench/", "kernels/")))
    assert not stray, f"{wheel.name} has files outside the package: {stray}"
    with zipfile.ZipFile(wheel) as zf:
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "gpugrad = gpugrad.cli:main" in zf.read(entry_points).decode()


def test_installed_wheel_finds_its_kernels(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = textwrap.dedent(
        """
        import json
        import gpugrad
        from gpugrad.backend.kernel_source import kernels_dir, read_kernel

        from gpugrad.backend import native
        from gpugrad.data import load_digits

        print(json.dumps({
            "package": gpugrad.__file__,
            "kernels": str(kernels_dir()),
            "readme": read_kernel("README.md"),
            "digits": list(load_digits()[0].shape),
            "native": native.library() is not None,
            "compiler": native._compiler() is not None,
            "why": native.reason_unavailable(),
        }))
        """
    )
    # A cache of its own: the compiled CPU kernels are built from the wheel's sources.
    env = {**os.environ, "PYTHONPATH": str(site), "GPUGRAD_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("GPUGRAD_NATIVE_KERNELS", None)
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"probe failed:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    site = site.resolve()
    assert Path(result["package"]).resolve().is_relative_to(site), result["package"]
    assert Path(result["kernels"]).resolve() == site / "gpugrad" / "kernels"
    assert result["readme"] == (KERNELS / "README.md").read_text(encoding="utf-8")
    assert result["digits"] == [1797, 64]  # the bundled dataset ships inside the wheel
    # The C++ sources of the CPU kernels ship too, and build wherever a compiler is found.
    assert result["native"] == result["compiler"], result["why"]


def _load_kernel_source(path: Path) -> ModuleType:
    """Import kernel_source.py from ``path`` by file location (independent of how gpugrad is
    installed, and of the rest of the package)."""
    spec = importlib.util.spec_from_file_location(f"_kernel_source_{next(_LOADED)}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_source_checkout_finds_repo_kernels() -> None:
    ks = _load_kernel_source(REPO / "gpugrad" / "backend" / "kernel_source.py")
    assert ks.kernels_dir().resolve() == KERNELS.resolve()
    readme = (KERNELS / "README.md").read_text(encoding="utf-8")
    assert ks.read_kernel("README.md") == readme


def test_read_kernel_errors() -> None:
    ks = _load_kernel_source(REPO / "gpugrad" / "backend" / "kernel_source.py")
    with pytest.raises(FileNotFoundError, match=r"no_such_kernel\.cu"):
        ks.read_kernel("no_such_kernel.cu")
    with pytest.raises(ValueError, match="outside"):
        ks.read_kernel("../pyproject.toml")


def _fake_layout(root: Path, *, in_package: bool, in_checkout: bool) -> ModuleType:
    """Lay out <root>/gpugrad/backend/kernel_source.py with the requested kernels folders."""
    backend = root / "gpugrad" / "backend"
    backend.mkdir(parents=True)
    source = REPO / "gpugrad" / "backend" / "kernel_source.py"
    (backend / "kernel_source.py").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    if in_package:
        (root / "gpugrad" / "kernels").mkdir()
        (root / "gpugrad" / "kernels" / "a.cu").write_text("// in package\n", encoding="utf-8")
    if in_checkout:
        (root / "kernels").mkdir()
        (root / "kernels" / "a.cu").write_text("// in checkout\n", encoding="utf-8")
    return _load_kernel_source(backend / "kernel_source.py")


def test_in_package_kernels_are_preferred(tmp_path: Path) -> None:
    ks = _fake_layout(tmp_path, in_package=True, in_checkout=True)
    assert ks.kernels_dir() == (tmp_path / "gpugrad" / "kernels").resolve()
    assert ks.read_kernel("a.cu") == "// in package\n"


def test_checkout_kernels_are_the_fallback(tmp_path: Path) -> None:
    ks = _fake_layout(tmp_path, in_package=False, in_checkout=True)
    assert ks.kernels_dir() == (tmp_path / "kernels").resolve()
    assert ks.read_kernel("a.cu") == "// in checkout\n"


def test_missing_kernels_folder_names_both_places(tmp_path: Path) -> None:
    ks = _fake_layout(tmp_path, in_package=False, in_checkout=False)
    with pytest.raises(FileNotFoundError) as info:
        ks.kernels_dir()
    message = str(info.value)
    assert str((tmp_path / "gpugrad" / "kernels").resolve()) in message
    assert str((tmp_path / "kernels").resolve()) in message
