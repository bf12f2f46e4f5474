"""The machinery of `bench/gpu_check`, one module per part, each readable alone.

`bench/gpu_check` is the command; its docstring says what is measured and which bars apply.
The parts, in the order a run uses them:

- `core`: settings of each mode, the time budget, rows and the report, the run's context;
- `timing`: the clock (CUDA events on a GPU, perf_counter on the CPU);
- `device`: the rows that name the GPU and the software;
- `suite`: section "tests", the test suite in a subprocess;
- `kernels`: section "kernels", every fused kernel against its NumPy twin;
- `bandwidth`: section "bandwidth", activation backward against copy bandwidth and unfused;
- `mlp`: section "mlp", the MLP training step against PyTorch;
- `report`: the table and the JSON file;
- `command`: argument parsing, running the sections, writing after each one.

Every section runs the same code on the CPU (`--smoke`, the cpu backend checked against
itself) as on a GPU, so a Python error in any of it shows up without a GPU
(tests/test_gpu_check.py). CuPy is never imported here (DESIGN.md keeps `import cupy` under
gpugrad/backend/): the cuda backend's `xp` *is* the cupy module, and that is what the timing
code uses. PyTorch is imported only by the MLP section, after the kernel sections, so a problem
loading it cannot cost those.
"""

import sys
from pathlib import Path

# Run from a checkout without installing (as on the lent GPU machine): put the repository
# root on the path before any part imports gpugrad, unless gpugrad is importable already.
ROOT = Path(__file__).resolve().parent.parent.parent
if (ROOT / "gpugrad").is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from .command import main  # noqa: E402  (needs the path set above)

__all__ = ["ROOT", "main"]
