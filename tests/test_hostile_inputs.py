"""Hostile inputs the issue-11 verification found leaking raw Python/NumPy errors: each now
raises a typed error (a GpugradError subclass) whose message names the offending value.

Tables by family (ops, creation, nn, optim and schedulers, data, files, Trainer), plus one
generated table: every exported function given a non-Tensor where it takes a Tensor."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import data, nn, optim
from gpugrad.nn import functional as F
from gpugrad.optim import lr_scheduler
from gpugrad.train import Trainer


def _x():
    return gg.ones((2, 3))


def _sgd():
    return optim.SGD([nn.Parameter(gg.ones(3))], lr=0.1)


def _dataset():
    return data.TensorDataset(gg.ones((10, 2)), gg.arange(10))


OPS = [
    ("argmax of a list", lambda: gg.argmax([1.0, 2.0]), gg.DTypeError, "list"),
    ("any of a list", lambda: gg.any([1.0]), gg.DTypeError, "list"),
    ("cumsum of a list", lambda: gg.cumsum([1.0, 2.0]), gg.DTypeError, "list"),
    ("softmax of a list", lambda: gg.softmax([1.0, 2.0], axis=0), gg.DTypeError, "list"),
    ("softmax axis str", lambda: gg.softmax(_x(), axis="a"), gg.ShapeError, "'a'"),
    ("reshape of a tuple", lambda: gg.reshape((1, 2), (2,)), gg.DTypeError, "tuple"),
    ("add of two numbers", lambda: gg.add(2, 3), gg.DTypeError, "int 2"),
    ("maximum of two floats", lambda: gg.maximum(2.5, 1.0), gg.DTypeError, "float 2.5"),
    ("eq of a list and None", lambda: gg.eq([1.0], None), gg.DTypeError, "NoneType"),
    ("matmul of object and bool", lambda: gg.matmul(object(), True), gg.DTypeError, "object"),
    ("compare shapes", lambda: gg.lt(_x(), gg.ones(4)), gg.ShapeError, r"\(2, 3\)"),
    ("bool times huge int", lambda: gg.tensor([True]) * 10**20, gg.DTypeError, "too large"),
    ("isclose shapes", lambda: gg.isclose(_x(), gg.ones(4)), gg.ShapeError, "isclose"),
    ("stack of ints", lambda: gg.stack([1, 2]), gg.DTypeError, "int 1"),
    ("split size nan", lambda: gg.split(_x(), float("nan")), gg.ArgumentTypeError, "nan"),
    ("split sizes floats", lambda: gg.split(_x(), [1.0, 1.0]), gg.ArgumentTypeError, r"1\.0"),
    ("chunk of a Tensor", lambda: gg.chunk(_x(), gg.tensor(2)), gg.ArgumentTypeError, "Tensor"),
    ("tile reps None", lambda: gg.tile(_x(), None), gg.ArgumentTypeError, "None"),
    ("tile reps negative", lambda: gg.tile(_x(), (2, -1)), gg.ArgumentError, "-1"),
    ("repeat huge", lambda: gg.repeat(_x(), 10**20), gg.ShapeError, "100000000000000000000"),
    ("clip without bounds", lambda: gg.clip(_x(), None, None), gg.ArgumentError, "None"),
    ("item of many", lambda: _x().item(), gg.ShapeError, r"\(2, 3\)"),
    (
        "hook not callable",
        lambda: _x().requires_grad_().register_hook(5),
        gg.ArgumentTypeError,
        "5",
    ),
    ("requires_grad_ str", lambda: _x().requires_grad_("a"), gg.ArgumentTypeError, "'a'"),
    ("pad_width int pair", lambda: gg.pad(_x(), 2.5), gg.ShapeError, r"2\.5"),
    ("F.pad of an int", lambda: F.pad(_x(), -1), gg.ArgumentError, "-1"),
    ("one_hot classes float", lambda: gg.one_hot(gg.tensor([1]), 2.5), gg.ArgumentTypeError, "2.5"),
    ("one_hot of a list", lambda: gg.one_hot([1], 3), gg.DTypeError, "list"),
    ("truth of many", lambda: bool(_x()), gg.ShapeError, "6 elements"),
    ("index with a float tensor", lambda: [1, 2][gg.tensor(1.0)], gg.DTypeError, "float32"),
    ("method dot of a float", lambda: gg.ones(3).dot(2.5), gg.DTypeError, "2.5"),
    ("method bmm of a bool", lambda: gg.ones((1, 2, 2)).bmm(True), gg.DTypeError, "True"),
    ("add_ alpha dict", lambda: _x().add_(_x(), alpha={}), gg.ArgumentTypeError, "{}"),
    (
        "explain depth",
        lambda: gg.explain(_x().requires_grad_() * 2, depth=-1),
        gg.ArgumentError,
        "-1",
    ),
    ("linear of a list", lambda: nn.Linear(3, 2)([1.0, 2.0, 3.0]), gg.DTypeError, "list"),
]

CREATION = [
    ("zeros beyond memory", lambda: gg.zeros(10**30), gg.ArgumentError, "10000000000"),
    ("ones of two huge", lambda: gg.ones(2**40, 2**40), gg.ArgumentError, "1099511627776"),
    ("eye huge", lambda: gg.eye(2**31), gg.ArgumentError, "2147483648"),
    ("arange huge", lambda: gg.arange(0, 10**20), gg.ArgumentError, "100000000000000000000"),
    ("randperm huge", lambda: gg.randperm(10**20), gg.ArgumentError, "100000000000000000000"),
    ("allocation fails", lambda: gg.zeros(2**59, dtype=gg.uint8), gg.OutOfMemoryError, "zeros"),
    ("randn allocation", lambda: gg.randn(2**58), gg.OutOfMemoryError, "randn"),
    ("zeros_like of a list", lambda: gg.zeros_like([1, 2]), gg.ArgumentTypeError, "list"),
    ("randn_like of an int", lambda: gg.randn_like(5), gg.ArgumentTypeError, "int 5"),
    ("randint_like of a float", lambda: gg.randint_like(2.5, 3), gg.ArgumentTypeError, "2.5"),
    ("full_like fill str", lambda: gg.full_like(_x(), "a"), gg.ArgumentTypeError, "'a'"),
    ("full fill None", lambda: gg.full((2,), None), gg.ArgumentTypeError, "None"),
    ("from_numpy of a list", lambda: gg.from_numpy([1, 2]), gg.ArgumentTypeError, "list"),
]

NN = [
    ("add_module non-module", lambda: nn.Module().add_module("a", 5), gg.ArgumentTypeError, "int"),
    (
        "add_module dotted",
        lambda: nn.Module().add_module("a.b", nn.ReLU()),
        gg.ArgumentError,
        "a.b",
    ),
    ("register_parameter int", lambda: nn.Module().register_parameter("w", 5), TypeError, "int"),
    ("train str", lambda: nn.Linear(2, 2).train("a"), gg.ArgumentTypeError, "'a'"),
    ("ParameterList of int", lambda: nn.ParameterList([1]), gg.ArgumentTypeError, "int"),
    ("uniform_ b < a", lambda: nn.init.uniform_(gg.zeros(3), 1.0, 0.0), gg.ArgumentError, "0.0"),
    ("normal_ std < 0", lambda: nn.init.normal_(gg.zeros(3), 0.0, -1.0), gg.ArgumentError, "-1.0"),
    ("Dropout of a tuple", lambda: nn.Dropout(0.5)((1, 2)), gg.DTypeError, "tuple"),
    ("MaxPool2d of a str", lambda: nn.MaxPool2d(2)("abc"), gg.DTypeError, "'abc'"),
    ("LayerNorm of a float", lambda: nn.LayerNorm(2)(2.5), gg.DTypeError, "2.5"),
    ("Flatten of a list", lambda: nn.Flatten()([1.0, 2.0]), gg.DTypeError, "list"),
    (
        "ModuleList called",
        lambda: nn.ModuleList([nn.ReLU()])(_x()),
        gg.ArgumentTypeError,
        "forward",
    ),
    ("ModuleDict of a float", lambda: nn.ModuleDict(2.5), gg.ArgumentTypeError, "float"),
    ("ParameterList of an int", lambda: nn.ParameterList(2), gg.ArgumentTypeError, "int"),
    ("Unflatten of an int", lambda: nn.Unflatten(1, 4), gg.ArgumentError, "4"),
    ("Softmax axis str", lambda: nn.Softmax(axis="a")(_x()), gg.ShapeError, "'a'"),
    (
        "ignore_index float",
        lambda: F.cross_entropy(_x(), gg.tensor([0, 1]), ignore_index=1.5),
        gg.ArgumentTypeError,
        "1.5",
    ),
    (
        "kl_div log_target str",
        lambda: F.kl_div(_x(), _x(), log_target="a"),
        gg.ArgumentTypeError,
        "'a'",
    ),
    ("KLDivLoss log_target int", lambda: nn.KLDivLoss(log_target=1), gg.ArgumentTypeError, "1"),
]

OPTIM = [
    (
        "Adamax betas None",
        lambda: optim.Adamax(_sgd().param_groups[0]["params"], betas=None),
        gg.ArgumentError,
        "None",
    ),
    (
        "NAdam beta str",
        lambda: optim.NAdam(_sgd().param_groups[0]["params"], betas=(0.9, "a")),
        gg.ArgumentTypeError,
        "'a'",
    ),
    (
        "Adamax beta 1",
        lambda: optim.Adamax(_sgd().param_groups[0]["params"], betas=(1.0, 0.9)),
        gg.ArgumentError,
        "1.0",
    ),
    ("step closure str", lambda: _sgd().step("a"), gg.ArgumentTypeError, "'a'"),
    (
        "scheduler step epoch str",
        lambda: lr_scheduler.StepLR(_sgd(), 2).step("a"),
        gg.ArgumentTypeError,
        "'a'",
    ),
    (
        "MultiStepLR milestones str",
        lambda: lr_scheduler.MultiStepLR(_sgd(), "a"),
        gg.ArgumentTypeError,
        "'a'",
    ),
    (
        "MultiStepLR milestone float",
        lambda: lr_scheduler.MultiStepLR(_sgd(), [1.5]),
        gg.ArgumentTypeError,
        "1.5",
    ),
    ("LambdaLR of an int", lambda: lr_scheduler.LambdaLR(_sgd(), 5), gg.ArgumentTypeError, "int"),
    (
        "LambdaLR returns str",
        lambda: lr_scheduler.LambdaLR(_sgd(), lambda t: "a"),
        gg.ArgumentTypeError,
        "'a'",
    ),
    (
        "LambdaLR of a str",
        lambda: lr_scheduler.LambdaLR("abc", lambda t: 1.0),
        gg.ArgumentTypeError,
        "'abc'",
    ),
    ("plateau of an int", lambda: lr_scheduler.ReduceLROnPlateau(-1), gg.ArgumentTypeError, "-1"),
    (
        "plateau patience float",
        lambda: lr_scheduler.ReduceLROnPlateau(_sgd(), patience=1.5),
        gg.ArgumentTypeError,
        "1.5",
    ),
    (
        "LinearLR factor dict",
        lambda: lr_scheduler.LinearLR(_sgd(), start_factor={}),
        gg.ArgumentTypeError,
        "{}",
    ),
    (
        "Cosine eta_min str",
        lambda: lr_scheduler.CosineAnnealingLR(_sgd(), 5, eta_min="min"),
        gg.ArgumentTypeError,
        "'min'",
    ),
    (
        "OneCycle total str",
        lambda: lr_scheduler.OneCycleLR(_sgd(), 0.1, total_steps="a"),
        gg.ArgumentTypeError,
        "'a'",
    ),
    (
        "SequentialLR milestones None",
        lambda: (lambda o: lr_scheduler.SequentialLR(o, [lr_scheduler.StepLR(o, 2)], None))(_sgd()),
        gg.ArgumentTypeError,
        "None",
    ),
    (
        "ChainedScheduler of an optimizer",
        lambda: lr_scheduler.ChainedScheduler(_sgd()),
        gg.ArgumentTypeError,
        "SGD",
    ),
    (
        "last_epoch array",
        lambda: lr_scheduler.StepLR(_sgd(), 2, last_epoch=np.ones(3)),
        gg.ArgumentTypeError,
        "last_epoch",
    ),
    (
        "Adadelta rho None",
        lambda: optim.Adadelta(_sgd().param_groups[0]["params"], rho=None),
        gg.ArgumentTypeError,
        "None",
    ),
    (
        "plateau metric str",
        lambda: lr_scheduler.ReduceLROnPlateau(_sgd()).step("a"),
        gg.ArgumentTypeError,
        "'a'",
    ),
    (
        "plateau metric None",
        lambda: lr_scheduler.ReduceLROnPlateau(_sgd()).step(None),
        gg.ArgumentTypeError,
        "None",
    ),
]

DATA = [
    ("loader of None", lambda: data.DataLoader(None, batch_size=2), gg.ArgumentTypeError, "None"),
    ("loader of an int", lambda: data.DataLoader(5, batch_size=2), gg.ArgumentTypeError, "5"),
    ("shuffle str", lambda: data.DataLoader(_dataset(), shuffle="a"), gg.ArgumentTypeError, "'a'"),
    ("drop_last int", lambda: data.DataLoader(_dataset(), drop_last=1), gg.ArgumentTypeError, "1"),
    (
        "collate_fn int",
        lambda: data.DataLoader(_dataset(), collate_fn=5),
        gg.ArgumentTypeError,
        "5",
    ),
    (
        "sampler out of range",
        lambda: list(data.DataLoader(_dataset(), sampler=[0, 50])),
        gg.errors.IndexOutOfRangeError,
        "50",
    ),
    (
        "subset sampler negative",
        lambda: list(data.DataLoader(_dataset(), sampler=data.SubsetRandomSampler([-100]))),
        gg.errors.IndexOutOfRangeError,
        "-100",
    ),
    ("ConcatDataset of a float", lambda: data.ConcatDataset(2.5), gg.ArgumentTypeError, "2.5"),
    ("random_split of an int", lambda: data.random_split(5, [2, 3]), gg.ArgumentTypeError, "5"),
    ("make_moons huge", lambda: data.make_moons(10**20), gg.ArgumentError, "10000000000"),
    ("TensorDataset empty", lambda: data.TensorDataset(), gg.ArgumentError, "none"),
    ("TensorDataset list", lambda: data.TensorDataset([1, 2]), gg.ArgumentTypeError, "list"),
    (
        "Subset out of range",
        lambda: data.Subset(_dataset(), [0, 20]),
        gg.errors.IndexOutOfRangeError,
        "20",
    ),
    ("Subset float index", lambda: data.Subset(_dataset(), [0.5]), gg.ArgumentTypeError, "0.5"),
    ("Subset None", lambda: data.Subset(_dataset(), None), gg.ArgumentTypeError, "None"),
    ("SequentialSampler int", lambda: data.SequentialSampler(5), gg.ArgumentTypeError, "5"),
    (
        "RandomSampler replacement",
        lambda: data.RandomSampler(_dataset(), replacement="a"),
        gg.ArgumentTypeError,
        "'a'",
    ),
    (
        "SubsetRandomSampler str",
        lambda: data.SubsetRandomSampler("ab"),
        gg.ArgumentTypeError,
        "'ab'",
    ),
    (
        "train_test_split 1.5",
        lambda: data.train_test_split(np.ones((10, 2)), np.arange(10), test_size=1.5),
        gg.ArgumentError,
        "1.5",
    ),
    ("make_moons negative", lambda: data.make_moons(-1), gg.ArgumentError, "-1"),
    ("make_moons noise", lambda: data.make_moons(10, noise=-1.0), gg.ArgumentError, "-1.0"),
    ("make_spirals classes 0", lambda: data.make_spirals(10, 0), gg.ArgumentError, "0"),
    ("load_mnist kind", lambda: data.load_mnist("/tmp", kind="foo"), gg.ArgumentError, "'foo'"),
    (
        "load_mnist missing",
        lambda: data.load_mnist("/nonexistent/gg"),
        gg.MissingFileError,
        "/nonexistent/gg",
    ),
    ("read_idx folder", lambda: data.read_idx("/"), gg.DataFormatError, "folder"),
    ("collate nothing", lambda: data.default_collate([]), gg.ArgumentError, r"\[\]"),
    (
        "collate shapes",
        lambda: data.default_collate([gg.zeros(2), gg.zeros(3)]),
        gg.ShapeError,
        r"\(3,\)",
    ),
    ("collate objects", lambda: data.default_collate([object()]), gg.ArgumentTypeError, "object"),
]

FAMILIES = {"ops": OPS, "creation": CREATION, "nn": NN, "optim": OPTIM, "data": DATA}
CASES = [(family, *case) for family, cases in FAMILIES.items() for case in cases]


@pytest.mark.parametrize(
    "family, name, call, error, named", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES]
)
def test_hostile_input_raises_typed_error(family, name, call, error, named):
    with pytest.raises(error, match=named) as info:
        call()
    assert isinstance(info.value, gg.GpugradError), f"{family}: {name}"


def _tensor_params(fn):
    """The parameters of `fn` annotated as taking a Tensor."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return []
    return [
        (i, name)
        for i, name in enumerate(params)
        if getattr(fn, "__annotations__", {}).get(name) == "Tensor"
    ]


def _exported():
    """(label, function, index of its first Tensor parameter) for gg's and F's functions."""
    out = []
    for label, module in (("gg", gg.ops), ("F", F)):
        for name in module.__all__:
            fn = getattr(module, name)
            params = _tensor_params(inspect.unwrap(fn)) if inspect.isfunction(fn) else []
            if params and params[0][0] == 0:
                out.append((f"{label}.{name}", fn))
    return out


EXPORTED = _exported()
NOT_TENSORS = [[1.0, 2.0], "abc", None, {"a": 1}, 2.5]


@pytest.mark.parametrize("label, fn", EXPORTED, ids=[e[0] for e in EXPORTED])
@pytest.mark.parametrize("value", NOT_TENSORS, ids=lambda v: type(v).__name__)
def test_exported_function_refuses_non_tensor(label, fn, value):
    """Generated: each exported function whose first argument is a Tensor refuses a list,
    a str, None, a dict or a float there with a typed error (the DTypeError naming the type
    it got, unless another argument's own check speaks first)."""
    n_required = sum(
        p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD
        for p in inspect.signature(inspect.unwrap(fn)).parameters.values()
    )
    args = [value] + [_x()] * (n_required - 1)
    with pytest.raises(gg.GpugradError) as info:
        fn(*args)
    if isinstance(info.value, gg.DTypeError):
        assert type(value).__name__ in str(info.value)


def test_the_generated_table_covers_the_common_ops():
    labels = {label for label, _ in EXPORTED}
    assert {"gg.reshape", "gg.softmax", "gg.sum", "gg.argmax", "F.conv2d", "F.layer_norm"} <= labels


def test_save_refuses_what_load_would_refuse(tmp_path):
    path = tmp_path / "c.npz"
    for bad, named in [
        (np.array([1j]), "complex"),
        (np.array(["a"]), "<U1"),
        ({(1, 2): 1}, "(1, 2)"),
    ]:
        with pytest.raises(gg.ArgumentTypeError, match=named):
            gg.save({"a": bad} if not isinstance(bad, dict) else bad, path)
    assert not path.exists()
    with pytest.raises(gg.ArgumentTypeError, match="NoneType"):
        gg.save({"a": 1}, None)


def test_load_of_a_missing_file_or_a_folder(tmp_path):
    missing = tmp_path / "missing.npz"
    with pytest.raises(gg.MissingFileError, match=r"missing\.npz") as info:
        gg.load(missing)
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(gg.CheckpointError, match="folder"):
        gg.load(tmp_path)


def test_trainer_refuses_a_non_optimizer_and_non_plain_metadata():
    model = nn.Linear(2, 2)
    with pytest.raises(gg.ArgumentError, match="int"):
        Trainer(model, F.cross_entropy, 5, log=None)
    with pytest.raises(gg.ArgumentError, match="object"):
        Trainer(model, F.cross_entropy, _sgd(), metadata={"a": object()}, log=None)
    with pytest.raises(gg.ArgumentError, match="NoneType"):
        Trainer(model, F.cross_entropy, _sgd(), log=None).evaluate(None)
