"""nn.Module: registration, tree walks, modes, gradients, moving, state dicts and repr."""

from collections import OrderedDict

import numpy as np
import pytest

import gpugrad as gg
from gpugrad.nn import Module, Parameter
from gpugrad.nn.containers import ModuleList, Sequential
from gpugrad.nn.layers import BatchNorm1d, Dropout, Embedding, Identity, Linear

DEVICES = ["cpu"] + (["cuda"] if gg.cuda.is_available() else [])


class Block(Module):
    """A small model with a parameter, a buffer, and nested modules."""

    def __init__(self):
        super().__init__()
        self.scale = Parameter(gg.ones(3))
        self.register_buffer("steps", gg.zeros(1))
        self.inner = Sequential(Linear(3, 4), Dropout(0.1), Linear(4, 2))
        self.norm = BatchNorm1d(2)

    def forward(self, x):
        return self.norm(self.inner(x * self.scale))


def test_assignment_registers_parameters_modules_and_buffers(device):
    m = Block().to(device)
    assert list(m._parameters) == ["scale"]
    assert list(m._modules) == ["inner", "norm"]
    assert list(m._buffers) == ["steps"]
    m.plain = gg.zeros(2, device=device)  # a Tensor that is not a registered buffer
    assert "plain" not in m._buffers and "plain" not in m._parameters
    m.steps = gg.ones(1, device=device)  # reassigning a buffer name keeps it a buffer
    assert m._buffers["steps"] is m.steps
    m.scale = Identity()  # a name moves between registries when its kind changes
    assert "scale" not in m._parameters and m._modules["scale"] is m.scale
    del m.scale
    assert "scale" not in m._modules and not hasattr(m, "scale")


def test_assigning_before_init_says_what_to_do():
    class Broken(Module):
        def __init__(self):
            self.w = Parameter(gg.ones(1))

    with pytest.raises(AttributeError, match="super"):
        Broken()


def test_none_registrations_are_skipped(device):
    m = Linear(3, 2, bias=False, device=device)
    m.register_buffer("nothing", None)
    assert m.bias is None and m.nothing is None
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    assert list(m.state_dict()) == ["weight"]


def test_parameters_in_registration_order_and_shared_ones_once(device):
    m = Block().to(device)
    names = [n for n, _ in m.named_parameters()]
    assert names == [
        "scale", "inner.0.weight", "inner.0.bias", "inner.2.weight", "inner.2.bias",
        "norm.weight", "norm.bias",
    ]  # fmt: skip
    assert [id(p) for p in m.parameters()] == [id(p) for _, p in m.named_parameters()]
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in m.named_buffers()] == [
        "steps",
        "norm.running_mean",
        "norm.running_var",
        "norm.num_batches_tracked",
    ]

    shared = Linear(2, 2, device=device)
    tied = Sequential(shared, Identity(), shared)
    assert len(list(tied.parameters())) == 2
    tied_param = Sequential(Linear(2, 2, device=device), Linear(2, 2, device=device))
    tied_param[1].weight = tied_param[0].weight
    assert [n for n, _ in tied_param.named_parameters()] == ["0.weight", "0.bias", "1.bias"]


def test_children_and_modules(device):
    m = Block().to(device)
    assert list(m.children()) == [m.inner, m.norm]
    assert [n for n, _ in m.named_children()] == ["inner", "norm"]
    names = [n for n, _ in m.named_modules()]
    assert names == ["", "inner", "inner.0", "inner.1", "inner.2", "norm"]
    assert next(iter(m.modules())) is m
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "Dropout", "Linear", "Sequential", "BatchNorm1d", "Block"]


def test_train_and_eval_reach_every_module(device):
    m = Block().to(device)
    assert all(mod.training for mod in m.modules())
    assert m.eval() is m
    assert not any(mod.training for mod in m.modules())
    m.train()
    assert all(mod.training for mod in m.modules())
    m.inner.train(False)
    assert m.training and not m.inner[1].training


def _backprop(m, device):
    m(gg.randn(5, 3, device=device)).sum().backward()


def test_zero_grad_to_none_and_to_zeros(device):
    m = Block().to(device)
    _backprop(m, device)
    grads = {n: p.grad for n, p in m.named_parameters()}
    assert all(g is not None for g in grads.values())
    m.zero_grad(set_to_none=False)
    for name, p in m.named_parameters():
        assert p.grad is not None and not p.grad.numpy().any(), name
    _backprop(m, device)  # accumulates into the zeroed gradients
    assert any(p.grad.numpy().any() for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_requires_grad_freezes(device):
    m = Block().to(device)
    assert m.inner.requires_grad_(False) is m.inner
    _backprop(m, device)
    assert all(p.grad is None for p in m.inner.parameters())
    assert m.scale.grad is not None and m.norm.weight.grad is not None
    m.requires_grad_()
    assert all(p.requires_grad for p in m.parameters())


def test_to_keeps_parameter_objects_and_moves_everything(device):
    m = Block()
    before = [id(p) for p in m.parameters()]
    _backprop(m, "cpu")
    m.to(device)
    assert [id(p) for p in m.parameters()] == before
    for t in [*m.parameters(), *m.buffers(), *(p.grad for p in m.parameters())]:
        assert t.device == gg.device(device)
    assert m.double() is m
    assert {p.dtype for p in m.parameters()} == {np.dtype("float64")}
    assert m.norm.running_var.dtype == np.float64
    assert m.norm.num_batches_tracked.dtype == np.int64  # integer buffers are not cast
    assert m.scale.grad.dtype == np.float64
    m.to(gg.float32)
    assert [id(p) for p in m.parameters()] == before
    assert m.inner[0].weight.dtype == np.float32 and m.norm.running_mean.dtype == np.float32
    m.to("cpu").float()
    assert m.scale.device == gg.device("cpu")


def test_state_dict_names_order_and_sharing(device):
    m = Block().to(device)
    sd = m.state_dict()
    assert list(sd) == [
        "scale", "steps", "inner.0.weight", "inner.0.bias", "inner.2.weight", "inner.2.bias",
        "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var",
        "norm.num_batches_tracked",
    ]  # fmt: skip
    assert all(not v.requires_grad and isinstance(v, gg.Tensor) for v in sd.values())
    assert not isinstance(sd["scale"], Parameter)
    with gg.no_grad():
        m.scale.data[0] = 7.0  # the state dict shares the parameters' data
    assert sd["scale"].numpy()[0] == 7.0


def test_state_dict_matches_torch_names():
    torch = pytest.importorskip("torch")
    tm = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.ReLU(), torch.nn.Embedding(5, 2)
    )
    ours = Sequential(Linear(3, 4), BatchNorm1d(4), Identity(), Embedding(5, 2))
    assert list(ours.state_dict()) == list(tm.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    np.testing.assert_array_equal(ours[0].weight.numpy(), tm[0].weight.detach().numpy())


def test_tied_weights_appear_under_every_name(device):
    shared = Linear(2, 2, device=device)
    m = Sequential(OrderedDict(first=shared, second=shared))
    assert list(m.state_dict()) == ["first.weight", "first.bias", "second.weight", "second.bias"]
    other = Sequential(OrderedDict(first=Linear(2, 2), second=Linear(2, 2))).to(device)
    assert other.load_state_dict(m.state_dict()) == ([], [])
    result = m.load_state_dict(other.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []


@pytest.mark.parametrize("target", DEVICES)
def test_state_dict_round_trip_across_devices(device, target):
    gg.manual_seed(1)
    src = Block().to(device)
    src(gg.randn(6, 3, device=device))  # move the running statistics off their start
    dst = Block().to(target)
    result = dst.load_state_dict(src.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (name, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert b.device == gg.device(target), name
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    assert dst.norm.num_batches_tracked.item() == 1
    x = gg.randn(4, 3)
    src.eval(), dst.eval()
    np.testing.assert_allclose(
        src(x.to(device)).numpy(), dst(x.to(target)).numpy(), rtol=1e-6, atol=1e-6
    )


def test_load_state_dict_copies_in_place(device):
    m = Linear(3, 2, device=device)
    weight = m.weight
    version = weight.version
    m.load_state_dict({"weight": np.ones((2, 3), np.float64), "bias": gg.zeros(2)})
    assert m.weight is weight and weight.version > version
    assert weight.dtype == np.float32 and weight.device == gg.device(device)
    np.testing.assert_array_equal(weight.numpy(), np.ones((2, 3)))


def test_load_state_dict_strict_lists_missing_and_unexpected(device):
    m = Block().to(device)
    sd = m.state_dict()
    del sd["inner.0.bias"]
    sd["extra.weight"] = gg.zeros(1)
    with pytest.raises(gg.CheckpointError, match=r"inner\.0\.bias") as info:
        m.load_state_dict(sd)
    assert "extra.weight" in str(info.value)
    result = m.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["inner.0.bias"]
    assert result.unexpected_keys == ["extra.weight"]


def test_load_state_dict_shape_mismatch_names_key_and_shapes(device):
    m = Linear(3, 2, device=device)
    sd = m.state_dict()
    sd["weight"] = gg.zeros(3, 2)
    with pytest.raises(gg.CheckpointError, match=r"weight.*\(3, 2\).*\(2, 3\)"):
        m.load_state_dict(sd)
    with pytest.raises(gg.CheckpointError):
        m.load_state_dict(sd, strict=False)


def test_repr_is_nested_like_pytorch(device):
    m = Block().to(device)
    assert repr(m) == (
        "Block(\n"
        "  (inner): Sequential(\n"
        "    (0): Linear(in_features=3, out_features=4, bias=True)\n"
        "    (1): Dropout(p=0.1)\n"
        "    (2): Linear(in_features=4, out_features=2, bias=True)\n"
        "  )\n"
        "  (norm): BatchNorm1d(2, eps=1e-05, momentum=0.1, affine=True, "
        "track_running_stats=True)\n"
        ")"
    )
    assert repr(ModuleList()) == "ModuleList()"


def test_forward_is_required():
    with pytest.raises(TypeError, match="forward"):
        Module()(1)


def test_sequential_indexing_and_append(device):
    a, b, c = Linear(3, 4), Identity(), Linear(4, 2)
    seq = Sequential(a, b).to(device)
    assert seq.append(c.to(device)) is seq
    assert len(seq) == 3 and list(seq) == [a, b, c]
    assert seq[0] is a and seq[-1] is c
    head = seq[:2]
    assert isinstance(head, Sequential) and list(head) == [a, b]
    x = gg.randn(5, 3, device=device)
    np.testing.assert_allclose(seq(x).numpy(), c(a(x)).numpy(), rtol=1e-6)
    with pytest.raises(IndexError):
        seq[3]
    with pytest.raises(TypeError):
        Sequential(a, "not a module")
    seq[1] = Dropout(0.0)
    assert isinstance(seq[1], Dropout) and [n for n, _ in seq.named_children()] == ["0", "1", "2"]
    del seq[0]
    assert list(seq) == [seq[0], c] and [n for n, _ in seq.named_children()] == ["0", "1"]
    assert [n for n, _ in seq.named_parameters()] == ["1.weight", "1.bias"]


def test_sequential_from_ordered_dict(device):
    seq = Sequential(OrderedDict([("fc", Linear(2, 3)), ("out", Linear(3, 1))])).to(device)
    names = ["fc.weight", "fc.bias", "out.weight", "out.bias"]
    assert [n for n, _ in seq.named_parameters()] == names
    assert seq.fc is seq[0]
    assert seq(gg.ones(4, 2, device=device)).shape == (4, 1)


def test_module_list(device):
    layers = ModuleList([Linear(2, 2) for _ in range(2)]).to(device)
    extra = Linear(2, 2, device=device)
    assert layers.append(extra) is layers and layers[-1] is extra
    layers.extend([Identity(), Identity()])
    first = Dropout()
    layers.insert(0, first)
    assert len(layers) == 6 and layers[0] is first and layers[3] is extra
    assert [n for n, _ in layers.named_children()] == [str(i) for i in range(6)]
    assert [type(m).__name__ for m in layers] == [
        "Dropout", "Linear", "Linear", "Linear", "Identity", "Identity"
    ]  # fmt: skip
    assert len(list(layers.parameters())) == 6
    assert isinstance(layers[1:3], ModuleList) and len(layers[1:3]) == 2
    del layers[1:3]
    assert len(layers) == 4 and layers[1] is extra
    with pytest.raises(TypeError):
        layers.append(3)
    with pytest.raises(TypeError):
        layers(gg.ones(1))  # a ModuleList has no forward of its own


def test_module_list_registers_for_owner(device):
    class Stack(Module):
        def __init__(self):
            super().__init__()
            self.layers = ModuleList([Linear(2, 2), Linear(2, 2)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    m = Stack().to(device)
    assert [n for n, _ in m.named_parameters()][:2] == ["layers.0.weight", "layers.0.bias"]
    m.eval()
    assert not m.layers[1].training
    assert m(gg.ones(3, 2, device=device)).shape == (3, 2)
