"""Every name a PyTorch program reaches for (issue 10, items 1-6) exists where a program ported
by renaming `torch` to `gg` looks for it. Their values and gradients are tested op by op."""

from __future__ import annotations

import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
import gpugrad.optim as optim

FUNCTIONS = [
    "tril",
    "triu",
    "masked_fill",
    "masked_fill_",
    "einsum",
    "bmm",
    "topk",
    "sort",
    "argsort",
    "amax",
    "amin",
    "erf",
    "erfc",
    "log2",
    "log10",
    "square",
    "rsqrt",
    "reciprocal",
    "floor",
    "ceil",
    "round",
    "trunc",
    "cumprod",
    "roll",
    "diag",
    "diagonal",
    "trace",
    "allclose",
    "isclose",
    "scatter",
    "scatter_add",
    "index_add",
    "histogram",
    "Generator",
    "manual_seed",
    "rand",
    "randn",
    "randint",
    "randperm",
    "multinomial",
    "bernoulli",
    "normal",
    "inference_mode",
]
METHODS = [
    "tril",
    "triu",
    "masked_fill",
    "masked_fill_",
    "bmm",
    "topk",
    "sort",
    "argsort",
    "amax",
    "amin",
    "erf",
    "erfc",
    "log2",
    "log10",
    "square",
    "rsqrt",
    "reciprocal",
    "floor",
    "ceil",
    "round",
    "trunc",
    "cumprod",
    "roll",
    "diag",
    "diagonal",
    "trace",
    "norm",
    "allclose",
    "isclose",
    "scatter",
    "scatter_add",
    "index_add",
    "contiguous",
    "view_as",
    "reshape_as",
    "expand_as",
    "type_as",
    "new_zeros",
    "new_ones",
    "new_full",
    "new_tensor",
    "t",
    "mT",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "numel",
    "dim",
    "size",
    "nelement",
    "histogram",
]
DTYPES = ["float", "double", "half", "int", "long", "bool"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_exists(name):
    assert callable(getattr(gg, name))


@pytest.mark.parametrize("name", METHODS)
def test_tensor_method_exists(name):
    assert hasattr(gg.Tensor, name)


@pytest.mark.parametrize("name", DTYPES)
def test_dtype_alias_exists(name):
    assert gg.ones(1, dtype=getattr(gg, name)).dtype == getattr(gg, name)


@pytest.mark.parametrize(
    ("owner", "names"),
    [
        (gg.linalg, ["vector_norm"]),
        (
            F,
            [
                "scaled_dot_product_attention",
                "normalize",
                "pad",
                "one_hot",
                "cosine_similarity",
                "dropout",
            ],
        ),
        (nn, ["MultiheadAttention", "ModuleDict", "ParameterList", "ParameterDict", "Unflatten"]),
        (optim, ["Adadelta", "Adamax", "NAdam"]),
        (
            optim.lr_scheduler,
            ["LambdaLR", "MultiplicativeLR", "ReduceLROnPlateau", "ChainedScheduler", "StepLR"],
        ),
        (gg.data, ["random_split", "ConcatDataset", "DataLoader"]),
        (gg.utils.data, ["random_split", "ConcatDataset", "DataLoader", "Dataset"]),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_module_names_exist(owner, names):
    missing = [n for n in names if not hasattr(owner, n)]
    assert not missing, f"{owner.__name__} lacks {missing}"


def test_generator_methods_and_generator_keywords():
    g = gg.Generator("cpu")
    for method in ("manual_seed", "seed", "get_state", "set_state"):
        assert callable(getattr(g, method))
    g.manual_seed(0)
    gg.rand(2, generator=g), gg.randn(2, generator=g), gg.randint(3, (2,), generator=g)
    gg.randperm(4, generator=g), gg.bernoulli(gg.full((3,), 0.5), generator=g)
    gg.multinomial(gg.ones(3), 2, generator=g), gg.normal(0.0, 1.0, (2,), generator=g)
    F.dropout(gg.ones(4), 0.5, training=True, generator=g)
    gg.data.random_split(list(range(4)), [2, 2], generator=g)
    gg.data.DataLoader(list(range(4)), batch_size=2, shuffle=True, generator=g)


# The PyTorch-named shape methods are compositions of gradchecked ops; check them as called.
SHAPE_METHODS = {
    "view_as": lambda x: x.view_as(gg.ones((3, 2))),
    "reshape_as": lambda x: x.reshape_as(gg.ones((6,))),
    "expand_as": lambda x: x[:1].expand_as(gg.ones((4, 2, 3))),
    "t": lambda x: x.t(),
    "mT": lambda x: x.reshape(1, 2, 3).mT,
    "type_as": lambda x: x.type_as(gg.ones(1, dtype=gg.float64)),
    "contiguous": lambda x: x.t().contiguous(),
}


@pytest.mark.parametrize("name", list(SHAPE_METHODS))
def test_shape_methods_are_differentiable(name, device, rng):
    x = gg.as_tensor(rng.standard_normal((2, 3)), device=device, requires_grad=True)
    assert gg.gradcheck(SHAPE_METHODS[name], (x,))
    assert gg.gradgradcheck(SHAPE_METHODS[name], (x,))
