"""ModuleDict, ParameterList, ParameterDict and Unflatten: the dict/list API, registration
(parameters(), state_dict() keys as PyTorch names them, to()), loading PyTorch state dicts,
and error tables."""

from __future__ import annotations

import numpy as np
import pytest

import gpugrad as gg
from gpugrad import nn, optim
from gpugrad.errors import ArgumentError, IndexOutOfRangeError, ShapeError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.heads = nn.ModuleDict({"a": nn.Linear(3, 2), "b": nn.Linear(3, 4, bias=False)})
        self.scales = nn.ParameterList([gg.ones(2), nn.Parameter(gg.zeros(3))])
        self.extra = nn.ParameterDict({"w": gg.ones(2, 2), "v": gg.zeros(1)})

    def forward(self, x):
        return self.heads["a"](x) * self.scales[0] + self.extra["w"].sum()


def test_module_dict_api():
    a, b, c = nn.Linear(1, 1), nn.ReLU(), nn.Tanh()
    d = nn.ModuleDict([("a", a), ("b", b)])
    assert len(d) == 2 and "a" in d and "z" not in d
    assert list(d) == ["a", "b"] == d.keys()
    assert d.values() == [a, b] and d.items() == [("a", a), ("b", b)]
    assert d["a"] is a
    d["c"] = c
    d.update({"a": nn.Identity()})  # replacing keeps the key's place
    assert d.keys() == ["a", "b", "c"] and isinstance(d["a"], nn.Identity)
    d.update([("d", nn.Sigmoid())])
    d.update(nn.ModuleDict({"e": nn.ReLU()}))
    del d["e"]
    assert d.pop("b") is b and d.keys() == ["a", "c", "d"]
    del d["a"]
    assert d.keys() == ["c", "d"] and not hasattr(d, "a")
    with pytest.raises(KeyError, match="zz"):
        d["zz"]
    d.clear()
    assert len(d) == 0 and list(d.parameters()) == []


def test_parameter_list_api():
    p = nn.Parameter(gg.ones(2))
    plist = nn.ParameterList([p, gg.zeros(3)])
    assert len(plist) == 2 and plist[0] is p and plist[-1].shape == (3,)
    assert isinstance(plist[1], nn.Parameter) and plist[1].requires_grad
    plist.append(gg.ones(4)).extend([gg.ones(5)])
    assert [q.shape for q in plist] == [(2,), (3,), (4,), (5,)]
    plist[1] = gg.full((3,), 7.0)
    assert plist[1].numpy().tolist() == [7.0, 7.0, 7.0]
    assert "(3): Parameter of shape (5,)" in repr(plist)
    tail = plist[2:]
    assert isinstance(tail, nn.ParameterList) and len(tail) == 2 and tail[0] is plist[2]


def test_parameter_dict_api():
    w = gg.ones(2)
    d = nn.ParameterDict({"w": w})
    assert isinstance(d["w"], nn.Parameter) and d["w"].data is w.data  # shares the data
    d["b"] = nn.Parameter(gg.zeros(1))
    d.update([("c", gg.ones(3))])
    assert d.keys() == ["w", "b", "c"] and list(d) == ["w", "b", "c"] and "b" in d
    d.update(nn.ParameterDict([("z", gg.ones(1)), ("y", gg.ones(1))]))
    assert d.keys() == ["w", "b", "c", "z", "y"]
    d.update({"t": gg.ones(1), "s": gg.ones(1)})
    assert d.keys()[-2:] == ["s", "t"]
    del d["z"], d["y"], d["s"], d["t"]
    assert [v.shape for v in d.values()] == [(2,), (1,), (3,)]
    assert d.pop("b").shape == (1,) and len(d) == 2
    del d["w"]
    assert d.items()[0][0] == "c"
    d.clear()
    assert len(d) == 0


def test_registration_state_dict_keys_and_optimizer():
    net = Net()
    names = [name for name, _ in net.named_parameters()]
    assert names == [
        "heads.a.weight",
        "heads.a.bias",
        "heads.b.weight",
        "scales.0",
        "scales.1",
        "extra.v",
        "extra.w",
    ]  # fmt: skip  (a plain dict's keys sorted, as PyTorch)
    assert list(net.state_dict()) == names
    opt = optim.SGD(net.parameters(), lr=0.1)
    net(gg.ones(4, 3)).sum().backward()
    before = net.extra["w"].numpy().copy()
    opt.step()
    assert not np.array_equal(before, net.extra["w"].numpy())
    net.double()
    assert net.scales[1].dtype == gg.float64 and net.extra["v"].dtype == gg.float64


def test_pytorch_state_dict_loads():
    torch = pytest.importorskip("torch")

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = torch.nn.ModuleDict(
                {"a": torch.nn.Linear(3, 2), "b": torch.nn.Linear(3, 4, bias=False)}
            )
            self.scales = torch.nn.ParameterList([torch.ones(2), torch.zeros(3)])
            self.extra = torch.nn.ParameterDict({"w": torch.ones(2, 2), "v": torch.zeros(1)})

    theirs = TorchNet()
    state = {k: v.detach().numpy() + 0.5 for k, v in theirs.state_dict().items()}
    net = Net()
    assert list(state) == list(net.state_dict())
    net.load_state_dict(state)
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[key])


@pytest.mark.parametrize(
    ("shape", "axis", "sizes", "expected"),
    [
        ((2, 12), 1, (3, 4), (2, 3, 4)),
        ((2, 12, 5), -2, (2, -1, 3), (2, 2, 2, 3, 5)),
        ((6,), 0, (6,), (6,)),
        ((2, 0), 1, (0, 4), (2, 0, 4)),
    ],
)
def test_unflatten_matches_torch(shape, axis, sizes, expected, device):
    x = gg.arange(float(np.prod(shape)), device=device).reshape(*shape)
    y = nn.Unflatten(axis, sizes)(x)
    assert y.shape == expected
    np.testing.assert_array_equal(y.numpy(), x.numpy().reshape(expected))
    torch = pytest.importorskip("torch")
    assert tuple(torch.nn.Unflatten(axis, sizes)(torch.zeros(shape)).shape) == expected


def test_unflatten_undoes_flatten_and_passes_gradients(device):
    x = gg.ones(2, 3, 4, device=device, requires_grad=True)
    model = nn.Sequential(nn.Flatten(), nn.Unflatten(1, (3, 4)))
    y = model(x)
    assert y.shape == x.shape and "unflattened_size=(3, 4)" in repr(model)
    (y * 2).sum().backward()
    assert np.all(x.grad.numpy() == 2)


def _dict():
    return nn.ModuleDict({"a": nn.ReLU()})


ERRORS = [
    (lambda: _dict().__setitem__("x.y", nn.ReLU()), ArgumentError, "'x.y'"),
    (lambda: _dict().__setitem__("", nn.ReLU()), ArgumentError, "''"),
    (lambda: _dict().__setitem__(3, nn.ReLU()), ArgumentError, "int 3"),
    (lambda: _dict().__setitem__("forward", nn.ReLU()), ArgumentError, "'forward'"),
    (lambda: _dict().__setitem__("training", nn.ReLU()), ArgumentError, "'training'"),
    (lambda: _dict().__setitem__("b", 5), TypeError, "int"),
    (lambda: nn.ModuleDict({"a": nn.ReLU(), "b": "relu"}), TypeError, "str"),
    (lambda: _dict().update(["ab"]), ArgumentError, "'ab'"),
    (lambda: _dict().update(5), TypeError, "int"),
    (lambda: nn.ParameterList([gg.ones(1), 2.0]), TypeError, "float"),
    (lambda: nn.ParameterList([gg.ones(1)])[1], IndexOutOfRangeError, "index 1"),
    (lambda: nn.ParameterList([gg.ones(1)])["0"], TypeError, "'0'"),
    (lambda: nn.ParameterList().extend(gg.ones(2)), TypeError, "one Tensor"),
    (lambda: nn.ParameterDict({"a.b": gg.ones(1)}), ArgumentError, "'a.b'"),
    (lambda: nn.ParameterDict({"w": np.ones(2)}), TypeError, "ndarray"),
    (lambda: nn.ParameterDict({"eval": gg.ones(1)}), ArgumentError, "'eval'"),
    (lambda: nn.Unflatten(1, (2, -1, -1)), ArgumentError, r"\(2, -1, -1\)"),
    (lambda: nn.Unflatten(1, ()), ArgumentError, r"\(\)"),
    (lambda: nn.Unflatten(1, (2, 2.5)), ArgumentError, "2.5"),
    (lambda: nn.Unflatten(1, (3, 5))(gg.ones(2, 12)), ShapeError, r"size 12.*\(3, 5\)"),
    (lambda: nn.Unflatten(1, (5, -1))(gg.ones(2, 12)), ShapeError, r"\(5, -1\)"),
    (lambda: nn.Unflatten(2, (3, 4))(gg.ones(2, 12)), ShapeError, "axis 2"),
]


@pytest.mark.parametrize(("make", "error", "named"), ERRORS)
def test_errors(make, error, named):
    with pytest.raises(error, match=named):
        make()


def test_a_failed_update_changes_nothing():
    d = _dict()
    with pytest.raises(TypeError):
        d.update({"b": nn.ReLU(), "c": 3})
    assert d.keys() == ["a"]
    p = nn.ParameterDict({"w": gg.ones(1)})
    with pytest.raises(ArgumentError):
        p.update({"v": gg.ones(1), "x.y": gg.ones(1)})
    assert p.keys() == ["w"]
