"""The public API: what DESIGN.md promises exists, and everything public says what it does."""

import inspect

import pytest

import gpugrad as gg


def public_callables():
    for name in sorted(dir(gg)):
        obj = getattr(gg, name)
        if name.startswith("_") or inspect.ismodule(obj):
            continue
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__.startswith(
            "gpugrad"
        ):
            yield name, obj


def test_every_public_function_and_class_has_a_docstring():
    missing = [name for name, obj in public_callables() if not (obj.__doc__ or "").strip()]
    assert not missing, f"public names without a docstring: {missing}"


def test_every_public_tensor_method_has_a_docstring():
    missing = []
    for name, member in vars(gg.Tensor).items():
        if name.startswith("_"):
            continue
        target = member.fget if isinstance(member, property) else member
        if callable(target) and not (getattr(target, "__doc__", "") or "").strip():
            missing.append(name)
    assert not missing, f"Tensor methods without a docstring: {missing}"


@pytest.mark.parametrize(
    "name",
    [
        "tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty", "arange",
        "linspace", "eye", "rand", "randn", "randint", "zeros_like", "ones_like", "full_like",
        "empty_like", "rand_like", "randn_like", "randint_like", "manual_seed", "device",
        "no_grad", "enable_grad", "grad", "gradcheck", "gradgradcheck", "Tensor",
        "exp", "log", "log1p", "expm1", "sqrt", "abs", "sin", "cos", "tanh", "sigmoid", "relu",
        "clip", "maximum", "minimum", "where", "sum", "mean", "var", "std", "max", "min", "prod",
        "logsumexp", "cumsum", "argmax", "argmin", "matmul", "dot", "outer", "reshape",
        "flatten", "transpose", "permute", "squeeze", "unsqueeze", "broadcast_to", "expand",
        "concat", "stack", "split", "chunk", "pad", "flip", "repeat", "tile", "gather",
        "take_along_axis", "index_select", "one_hot",
    ],
)  # fmt: skip
def test_promised_function_exists(name):
    assert callable(getattr(gg, name))


@pytest.mark.parametrize(
    "name",
    [
        "exp", "log", "log1p", "expm1", "sqrt", "abs", "sin", "cos", "tanh", "sigmoid", "relu",
        "clip", "sum", "mean", "var", "std", "max", "min", "prod", "logsumexp", "cumsum",
        "argmax", "argmin", "reshape", "flatten", "transpose", "permute", "squeeze",
        "unsqueeze", "broadcast_to", "expand", "flip", "repeat", "tile", "split", "chunk",
        "gather", "take_along_axis", "index_select", "add_", "mul_", "zero_", "fill_", "copy_",
        "numpy", "item", "tolist", "to", "cpu", "cuda", "detach", "requires_grad_", "float",
        "double", "half", "astype", "backward", "retain_grad",
    ],
)  # fmt: skip
def test_promised_tensor_method_exists(name):
    assert callable(getattr(gg.Tensor, name))


def test_cuda_namespace():
    assert isinstance(gg.cuda.is_available(), bool)
    assert isinstance(gg.cuda.device_count(), int)
