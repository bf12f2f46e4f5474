"""`gg.cuda` and the CuPy backend's kernels: what can be checked without a GPU here, the rest
(marked `gpu`) wherever one is present."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import nn

FUNCTIONS = (
    "memory_allocated",
    "max_memory_allocated",
    "reset_peak_memory_stats",
    "memory_reserved",
    "empty_cache",
)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_memory_functions_refuse_the_cpu(name):
    with pytest.raises(ValueError, match=f"gg.cuda.{name} takes a CUDA device, got 'cpu'"):
        getattr(gg.cuda, name)("cpu")


@pytest.mark.skipif(gg.cuda.is_available(), reason="checks the message shown without a GPU")
@pytest.mark.parametrize("name", FUNCTIONS)
def test_memory_functions_without_a_gpu_say_so(name):
    with pytest.raises(gg.BackendUnavailableError, match="cuda"):
        getattr(gg.cuda, name)()


def test_cupy_backend_module_imports_where_cupy_is_installed():
    """The CuPy backend's modules import without a GPU (CuPy itself does), so a syntax or
    import error in them shows up in CI, not first on a GPU."""
    pytest.importorskip("cupy")
    from gpugrad.backend import cupy_backend, cupy_kernels

    assert issubclass(cupy_backend.CupyBackend, gg.backend.Backend)
    assert cupy_kernels.THREADS_PER_BLOCK % 32 == 0


def test_device_context_takes_only_cuda_devices():
    with pytest.raises(ValueError, match=r"gg\.cuda\.device takes a CUDA device, got 'cpu'"):
        gg.cuda.device("cpu").__enter__()


@pytest.mark.skipif(gg.cuda.is_available(), reason="checks the message shown without a GPU")
def test_device_context_without_a_gpu_says_so():
    with pytest.raises(gg.BackendUnavailableError):
        gg.cuda.device(0).__enter__()


@pytest.mark.gpu
def test_device_context_makes_the_device_current():
    import cupy

    last = gg.cuda.device_count() - 1
    with gg.cuda.device(last):
        assert cupy.cuda.Device().id == last
        x = gg.ones(3, device=f"cuda:{last}", requires_grad=True)
        (x * x).sum().backward()
        assert x.grad.device == f"cuda:{last}"


def test_a_kernel_that_fails_to_compile_says_how_to_go_on(monkeypatch):
    """On a GPU, NVRTC compiles kernels/*.cu at the first launch; a failure there (a driver or
    NVRTC too old, say) names the file and the way to run without the fused kernels."""
    pytest.importorskip("cupy")
    import contextlib

    from cupy.cuda.compiler import CompileException

    from gpugrad.backend import cupy_kernels

    class FailingModule:
        def __init__(self, code, options):
            self.code = code

        def get_function(self, name):
            raise CompileException("error: identifier undefined", self.code, "k.cu", (), "nvrtc")

    monkeypatch.setattr(cupy_kernels.cupy, "RawModule", FailingModule)
    kernels = object.__new__(cupy_kernels.CupyKernels)  # no GPU here to make one properly
    kernels.index, kernels.device = 0, contextlib.nullcontext()
    kernels._modules, kernels._functions = {}, {}
    with pytest.raises(gg.BackendUnavailableError) as info:
        kernels.function("adam_step_f32")
    message = str(info.value)
    assert "kernels/optim.cu" in message and "identifier undefined" in message
    assert "GPUGRAD_FUSED_KERNELS=0" in message


@pytest.mark.gpu
def test_memory_allocated_follows_arrays():
    gg.cuda.synchronize()
    before = gg.cuda.memory_allocated()
    x = gg.zeros(1 << 20, device="cuda")  # 4 MiB
    assert gg.cuda.memory_allocated() >= before + 4 * (1 << 20)
    assert gg.cuda.max_memory_allocated() >= gg.cuda.memory_allocated()
    assert gg.cuda.memory_reserved() >= gg.cuda.memory_allocated()
    del x
    assert gg.cuda.memory_allocated() <= before + 512
    gg.cuda.reset_peak_memory_stats()
    assert gg.cuda.max_memory_allocated() == gg.cuda.memory_allocated()
    gg.cuda.empty_cache()


@pytest.mark.gpu
def test_cuda_primitives_run_the_fused_kernels():
    backend = gg.backend.get_backend("cuda")
    counts = backend.kernels.launch_counts
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).to("cuda")
    opt = gg.optim.Adam(model.parameters(), lr=1e-3)
    x = gg.randn(4, 8, device="cuda")
    y = gg.tensor(np.array([0, 1, 2, 1]), device="cuda")
    start = dict(counts)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    launched = {k: v - start.get(k, 0) for k, v in counts.items() if v != start.get(k, 0)}
    assert launched == {
        "bias_activation_forward_relu_f32": 1,
        "activation_backward_relu_f32": 1,
        "softmax_cross_entropy_forward_f32": 1,
        "softmax_cross_entropy_backward_f32": 1,
        "adam_step_f32": 1,  # the whole group in one launch
    }


@pytest.mark.gpu
def test_fused_kernels_can_be_switched_off(monkeypatch):
    from gpugrad.backend.cupy_backend import CupyBackend, StockCupyBackend

    dev = gg.device("cuda:0")
    monkeypatch.setenv("GPUGRAD_FUSED_KERNELS", "0")
    monkeypatch.delitem(gg.backend._backends, dev, raising=False)
    backend = gg.backend.get_backend(dev)
    assert type(backend) is StockCupyBackend and not backend.fuses_bias_activation
    x = gg.randn(5, device="cuda", requires_grad=True)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), (x.numpy() > 0).astype(np.float32))
    monkeypatch.delitem(gg.backend._backends, dev)
    monkeypatch.setenv("GPUGRAD_FUSED_KERNELS", "1")
    assert type(gg.backend.get_backend(dev)) is CupyBackend
