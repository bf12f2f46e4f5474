"""scaled_dot_product_attention and MultiheadAttention: values and input gradients against
PyTorch in float64, gradcheck / gradgradcheck, masks (bool, additive, causal, rows masked
out entirely), dropout, PyTorch's state dict, and error tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import check, leaf

import gpugrad as gg
import gpugrad.nn.functional as F
from gpugrad import nn
from gpugrad.errors import ArgumentError, DTypeError, ShapeError
from gpugrad.nn.attention import _attend, _Attention

# (query shape, key shape, value shape): batch axes that broadcast, size-1 axes, L ≠ S, Ev ≠ E
SHAPES = [
    ((3, 4), (5, 4), (5, 2)),
    ((2, 3, 4), (2, 5, 4), (2, 5, 3)),
    ((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 4)),
    ((2, 1, 3, 4), (1, 2, 5, 4), (1, 2, 5, 2)),
    ((1, 1, 4), (1, 1, 4), (1, 1, 1)),
    ((2, 5, 3), (2, 3, 3), (2, 3, 2)),  # more queries than keys
]


def qkv(rng, shapes, device):
    return [leaf(rng.standard_normal(s), device) for s in shapes]


def bool_mask(rng, shape, dead_row=False):
    keep = rng.random(shape) < 0.6
    keep[..., 0] = True  # every query attends to something ...
    if dead_row:
        keep[..., 1, :] = False  # ... except query 1, which attends to nothing
    return keep


def masks(rng, q_shape, k_shape):
    """name -> (attn_mask as NumPy or None, is_causal)."""
    ls = (q_shape[-2], k_shape[-2])
    additive = rng.standard_normal(ls)
    additive[0, 1:] = -np.inf
    return {
        "none": (None, False),
        "bool": (bool_mask(rng, ls), False),
        "bool-batched": (bool_mask(rng, (*q_shape[:-2], *ls)), False),
        "additive": (additive, False),
        "causal": (None, True),
    }


def torch_sdpa(torch, arrays, mask, is_causal, scale=None):
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in arrays)
    tm = None if mask is None else torch.tensor(mask)
    out = torch.nn.functional.scaled_dot_product_attention(
        tq, tk, tv, attn_mask=tm, is_causal=is_causal, scale=scale
    )
    return out, (tq, tk, tv)


# Every shape with every mask, except a batched mask without batch axes and the additive
# mask (which hides keys 1.. from query 0) with a single key.
SDPA_CASES = [
    (shapes, kind)
    for shapes in SHAPES
    for kind in ("none", "bool", "bool-batched", "additive", "causal")
    if not (kind == "bool-batched" and len(shapes[0]) == 2)
    and not (kind == "additive" and shapes[1][-2] == 1)
]


@pytest.mark.parametrize(("shapes", "kind"), SDPA_CASES, ids=str)
def test_sdpa_matches_torch(shapes, kind, device, rng):
    torch = pytest.importorskip("torch")
    q, k, v = qkv(rng, shapes, device)
    mask, is_causal = masks(rng, shapes[0], shapes[1])[kind]
    gm = None if mask is None else gg.tensor(mask, device=device)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=gm, is_causal=is_causal)
    g = rng.standard_normal(out.shape)
    out.backward(gg.tensor(g, device=device))
    tout, tin = torch_sdpa(torch, [t.numpy() for t in (q, k, v)], mask, is_causal)
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip((q, k, v), tin):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("additive", [False, True])
def test_rows_that_attend_to_nothing_are_zero_as_in_torch(additive, device, rng):
    torch = pytest.importorskip("torch")
    shapes = ((2, 4, 3), (2, 5, 3), (2, 5, 2))
    q, k, v = qkv(rng, shapes, device)
    keep = bool_mask(rng, (2, 4, 5), dead_row=True)
    mask = np.where(keep, 0.0, -np.inf) if additive else keep
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=gg.tensor(mask, device=device))
    out.sum().backward()
    tout, tin = torch_sdpa(torch, [t.numpy() for t in (q, k, v)], mask, False)
    tout.sum().backward()
    assert np.all(out.numpy()[:, 1] == 0) and np.isfinite(out.numpy()).all()
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip((q, k, v), tin):
        assert np.isfinite(ours.grad.numpy()).all()
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_scale_and_the_formula(device, rng):
    shapes = ((2, 3, 4), (2, 5, 4), (2, 5, 3))
    q, k, v = qkv(rng, shapes, device)
    out = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    scores = q.numpy() @ k.numpy().swapaxes(-1, -2) * 0.3
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    np.testing.assert_allclose(out.numpy(), weights @ v.numpy(), rtol=1e-12)
    default = F.scaled_dot_product_attention(q, k, v)
    explicit = F.scaled_dot_product_attention(q, k, v, scale=1 / math.sqrt(4))
    np.testing.assert_array_equal(default.numpy(), explicit.numpy())


@pytest.mark.parametrize("shapes", SHAPES[1:4], ids=str)
@pytest.mark.parametrize("kind", ["none", "bool-batched", "additive", "causal", "dead-row"])
def test_sdpa_gradcheck(shapes, kind, device, rng):
    q, k, v = qkv(rng, shapes, device)
    if kind == "dead-row":
        mask, is_causal = (
            bool_mask(rng, (*shapes[0][:-2], shapes[0][-2], shapes[1][-2]), True),
            False,
        )
    else:
        mask, is_causal = masks(rng, shapes[0], shapes[1])[kind]
    gm = None if mask is None else gg.tensor(mask, device=device)

    def fn(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=gm, is_causal=is_causal)

    check(fn, q, k, v)


def test_an_additive_mask_that_requires_grad_gets_its_gradient(device, rng):
    q, k, v = qkv(rng, ((2, 3, 4), (2, 5, 4), (2, 5, 2)), device)
    bias = leaf(rng.standard_normal((3, 5)), device)
    check(lambda q, b: F.scaled_dot_product_attention(q, k, v, attn_mask=b), q, bias)


def test_dropout_on_the_attention_weights(device, rng):
    q, k, v = qkv(rng, ((2, 3, 4), (2, 5, 4), (2, 5, 5)), device)
    eye = gg.tensor(np.broadcast_to(np.eye(5), (2, 5, 5)).copy(), device=device)
    plain = F.scaled_dot_product_attention(q, k, eye)  # the attention weights themselves
    gg.manual_seed(3)
    dropped = F.scaled_dot_product_attention(q, k, eye, dropout_p=0.5)
    gg.manual_seed(3)
    again = F.scaled_dot_product_attention(q, k, eye, dropout_p=0.5)
    np.testing.assert_array_equal(dropped.numpy(), again.numpy())
    kept = dropped.numpy() != 0
    assert kept.any() and (~kept).any()
    np.testing.assert_allclose(dropped.numpy()[kept], 2 * plain.numpy()[kept], rtol=1e-12)
    assert np.all(F.scaled_dot_product_attention(q, k, v, dropout_p=1.0).numpy() == 0)


@pytest.mark.parametrize(("shapes", "kind"), SDPA_CASES, ids=str)
def test_the_one_node_equals_the_composition(shapes, kind, device, rng):
    """Without dropout attention is one _Attention node; the composition of ops (kept for
    dropout and returned weights) gives the same values and gradients, mask included."""
    q, k, v = qkv(rng, shapes, device)
    mask, is_causal = masks(rng, shapes[0], shapes[1])[kind]
    gm = None
    if mask is not None:
        gm = gg.tensor(mask, device=device, requires_grad=mask.dtype != bool)
    g = gg.tensor(rng.standard_normal((*np.broadcast_shapes(shapes[0][:-2], shapes[2][:-2]),
                                       shapes[0][-2], shapes[2][-1])), device=device)  # fmt: skip
    inputs = [t for t in (q, k, v, gm) if t is not None and t.requires_grad]
    fused, weights = _attend(q, k, v, gm, 0.0, is_causal, 0.3)
    assert isinstance(fused.grad_fn, _Attention) and weights is None
    composed, weights = _attend(q, k, v, gm, 0.0, is_causal, 0.3, need_weights=True)
    assert not isinstance(composed.grad_fn, _Attention) and weights is not None
    np.testing.assert_allclose(fused.numpy(), composed.numpy(), rtol=1e-12, atol=1e-14)
    for ours, theirs in zip(gg.grad(fused, inputs, g), gg.grad(composed, inputs, g)):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-11, atol=1e-13)


def test_the_output_may_be_edited_in_place(device, rng):
    """The one node keeps its own copy of the output, as the composition kept nothing the
    caller holds: an in-place edit afterwards leaves the gradients right."""
    q, k, v = qkv(rng, SHAPES[1], device)
    grads = []
    for need_weights in (False, True):
        out, _ = _attend(q, k, v, None, 0.0, True, 0.5, need_weights)
        out.mul_(3.0)
        grads.append(gg.grad(out.sum(), [q, k, v]))
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-14)


def test_float32_attention_with_large_scores_stays_finite(device, rng):
    q, k, v = (gg.tensor(rng.standard_normal((2, 3, 6, 8)) * 30, device=device, dtype="float32")
               for _ in range(3))  # fmt: skip
    for is_causal in (False, True):
        out = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
        wide = F.scaled_dot_product_attention(
            *(t.astype("float64") for t in (q, k, v)), is_causal=is_causal
        )
        assert np.isfinite(out.numpy()).all()
        np.testing.assert_allclose(out.numpy(), wide.numpy(), rtol=1e-3, atol=1e-3)


def _sdpa_args(device, **changes):
    args = {
        "query": gg.zeros(2, 3, 4, device=device),
        "key": gg.zeros(2, 5, 4, device=device),
        "value": gg.zeros(2, 5, 6, device=device),
    }
    return {**args, **changes}


SDPA_ERRORS = [
    ({"key": "k"}, TypeError, "str"),
    ({"query": gg.zeros(2, 3, 4, dtype="int64")}, DTypeError, "int64"),
    ({"key": gg.zeros(2, 5, 4, dtype="float64")}, DTypeError, "float64"),
    ({"key": gg.zeros(2, 5, 3)}, ShapeError, r"\(2, 5, 3\)"),
    ({"value": gg.zeros(2, 4, 6)}, ShapeError, r"\(2, 4, 6\)"),
    ({"query": gg.zeros(3, 3, 4)}, ShapeError, r"\(3,\)"),
    ({"query": gg.zeros(4)}, ShapeError, r"\(4,\)"),
    ({"attn_mask": gg.zeros(3, 4)}, ShapeError, r"\(3, 4\)"),
    ({"attn_mask": gg.zeros(4, 3, 5)}, ShapeError, r"\(4, 3, 5\)"),
    ({"attn_mask": gg.zeros(3, 5, dtype="int64")}, DTypeError, "int64"),
    ({"attn_mask": gg.zeros(3, 5, dtype="float64")}, DTypeError, "float64"),
    ({"attn_mask": np.ones((3, 5), dtype=bool)}, TypeError, "ndarray"),
    ({"attn_mask": gg.ones(3, 5, dtype="bool"), "is_causal": True}, ArgumentError, "is_causal"),
    ({"dropout_p": 1.5}, ArgumentError, "1.5"),
    ({"dropout_p": -0.1}, ArgumentError, "-0.1"),
]


@pytest.mark.parametrize(("changes", "error", "named"), SDPA_ERRORS)
def test_sdpa_errors(changes, error, named):
    with pytest.raises(error, match=named):
        F.scaled_dot_product_attention(**_sdpa_args("cpu", **changes))


# --- MultiheadAttention -----------------------------------------------------------------------
def pair(torch, embed_dim=8, num_heads=2, device="cpu", **options):
    """A torch MultiheadAttention in float64 and ours with its weights."""
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(embed_dim, num_heads, **options).double()
    ours = nn.MultiheadAttention(embed_dim, num_heads, dtype="float64", device=device, **options)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def mha_inputs(rng, batch_first, n=3, l=4, s=5, e=8, unbatched=False):
    if unbatched:
        return [rng.standard_normal((t, e)) for t in (l, s, s)]
    return [rng.standard_normal((n, t, e) if batch_first else (t, n, e)) for t in (l, s, s)]


MHA_CASES = {
    "plain": ({}, {}),
    "batch_first": ({"batch_first": True}, {}),
    "no-bias": ({"bias": False}, {}),
    "per-head-weights": ({}, {"average_attn_weights": False}),
    "no-weights": ({}, {"need_weights": False}),
    "key-padding": ({"batch_first": True}, {"key_padding_mask": "bool-kpm"}),
    "attn-mask": ({}, {"attn_mask": "bool-2d"}),
    "float-masks": ({"batch_first": True},
                    {"attn_mask": "float-3d", "key_padding_mask": "float-kpm"}),
    "both-bool": ({}, {"attn_mask": "bool-2d", "key_padding_mask": "bool-kpm"}),
    "causal": ({"batch_first": True}, {"attn_mask": "causal", "is_causal": True}),
    "unbatched": ({}, {"unbatched": True}),
}  # fmt: skip


def _mha_masks(rng, kind, n=3, heads=2, l=4, s=5, unbatched=False):
    if kind == "bool-kpm":
        m = rng.random((s,) if unbatched else (n, s)) < 0.3
        m[..., 0] = False
        return m
    if kind == "float-kpm":
        return rng.standard_normal((n, s))
    if kind == "bool-2d":
        m = rng.random((l, s)) < 0.3
        m[:, 1] = False
        return m
    if kind == "float-3d":
        return rng.standard_normal((n * heads, l, s))
    return np.triu(np.ones((l, s), dtype=bool), k=1)  # causal: True above the diagonal


@pytest.mark.parametrize("case", list(MHA_CASES))
def test_multihead_attention_matches_torch(case, device, rng):
    torch = pytest.importorskip("torch")
    options, call = MHA_CASES[case]
    call = dict(call)
    unbatched = call.pop("unbatched", False)
    ours, theirs = pair(torch, device=device, **options)
    arrays = mha_inputs(rng, options.get("batch_first", False), unbatched=unbatched)
    for key in ("attn_mask", "key_padding_mask"):
        if key in call:
            call[key] = _mha_masks(rng, call[key], unbatched=unbatched)
    gx = [leaf(a, device) for a in arrays]
    tx = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, weights = ours(*gx, **{k: gg.tensor(v, device=device) if isinstance(v, np.ndarray)
                                 else v for k, v in call.items()})  # fmt: skip
    tout, tweights = theirs(*tx, **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                                    for k, v in call.items()})  # fmt: skip
    g = rng.standard_normal(out.shape)
    out.backward(gg.tensor(g, device=device))
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    if tweights is None:
        assert weights is None
    else:
        np.testing.assert_allclose(weights.numpy(), tweights.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)  # fmt: skip
    for a, b in zip(gx, tx):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), rtol=1e-10,
                                   atol=1e-12)  # fmt: skip


def test_self_attention_matches_torch(device, rng):
    torch = pytest.importorskip("torch")
    ours, theirs = pair(torch, embed_dim=6, num_heads=3, device=device, batch_first=True)
    x = rng.standard_normal((2, 4, 6))
    gx, tx = leaf(x, device), torch.tensor(x, requires_grad=True)
    out, _ = ours(gx, gx, gx)
    tout, _ = theirs(tx, tx, tx)
    out.sum().backward()
    tout.sum().backward()
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_parameters_names_and_init(device):
    m = nn.MultiheadAttention(12, 3, device=device)
    assert list(m.state_dict()) == ["in_proj_weight", "in_proj_bias", "out_proj.weight",
                                    "out_proj.bias"]  # fmt: skip
    assert m.in_proj_weight.shape == (36, 12) and m.out_proj.weight.shape == (12, 12)
    assert np.all(m.in_proj_bias.numpy() == 0) and np.all(m.out_proj.bias.numpy() == 0)
    bound = math.sqrt(6 / (12 + 36))  # xavier_uniform_ over (3E, E)
    w = m.in_proj_weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert len(list(m.parameters())) == 4
    no_bias = nn.MultiheadAttention(12, 3, bias=False)
    assert list(no_bias.state_dict()) == ["in_proj_weight", "out_proj.weight"]
    assert "num_heads=3" in repr(m)


def test_dropout_only_while_training(device, rng):
    m = nn.MultiheadAttention(4, 2, dropout=0.5, batch_first=True, dtype="float64", device=device)
    x = gg.tensor(rng.standard_normal((2, 3, 4)), device=device)
    m.eval()
    a, _ = m(x, x, x)
    b, _ = m(x, x, x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    m.train()
    _, weights = m(x, x, x, average_attn_weights=False)
    assert (weights.numpy() == 0).any()


def test_multihead_attention_gradcheck(device, rng):
    m = nn.MultiheadAttention(4, 2, batch_first=True, dtype="float64", device=device)
    q = leaf(rng.standard_normal((2, 3, 4)), device)
    kv = leaf(rng.standard_normal((2, 2, 4)), device)
    kpm = gg.tensor([[False, True], [False, False]], device=device)

    def fn(q, kv, w):
        out, weights = m(q, kv, kv, key_padding_mask=kpm)
        return out, weights

    assert gg.gradcheck(fn, (q, kv, m.in_proj_weight))
    assert gg.gradgradcheck(lambda q, kv: fn(q, kv, None)[0], (q, kv))


def test_multihead_attention_without_weights_is_the_one_node(device, rng):
    m = nn.MultiheadAttention(4, 2, batch_first=True, dtype="float64", device=device)
    q = leaf(rng.standard_normal((2, 3, 4)), device)
    kv = leaf(rng.standard_normal((2, 2, 4)), device)
    kpm = gg.tensor([[False, True], [True, True]], device=device)  # the second hides every key

    def fn(q, kv):
        return m(q, kv, kv, key_padding_mask=kpm, need_weights=False)[0]

    with_weights, _ = m(q, kv, kv, key_padding_mask=kpm)
    np.testing.assert_allclose(fn(q, kv).numpy(), with_weights.numpy(), rtol=1e-12, atol=1e-14)
    check(fn, q, kv)


def _mha_call(**changes):
    m = nn.MultiheadAttention(4, 2)
    args = {"query": gg.zeros(3, 2, 4), "key": gg.zeros(5, 2, 4), "value": gg.zeros(5, 2, 4)}
    args.update(changes)
    return m(**args)


MHA_ERRORS = [
    (lambda: nn.MultiheadAttention(10, 3), ArgumentError, "embed_dim=10.*num_heads=3"),
    (lambda: nn.MultiheadAttention(8, 0), ArgumentError, "num_heads.*0"),
    (lambda: nn.MultiheadAttention(8.0, 2), ArgumentError, "8.0"),
    (lambda: nn.MultiheadAttention(8, 2, dropout=1.2), ArgumentError, "1.2"),
    (lambda: _mha_call(query=gg.zeros(3, 2, 5)), ShapeError, r"\(3, 2, 5\)"),
    (lambda: _mha_call(key=gg.zeros(5, 4)), ShapeError, r"\(5, 4\)"),
    (lambda: _mha_call(value=gg.zeros(6, 2, 4)), ShapeError, r"value \(6, 2, 4\)"),
    (
        lambda: _mha_call(key=gg.zeros(5, 3, 4), value=gg.zeros(5, 3, 4)),
        ShapeError,
        r"key \(5, 3, 4\)",
    ),
    (lambda: _mha_call(query=gg.zeros(3, 2, 4, dtype="float64")), DTypeError, "float64"),
    (lambda: _mha_call(key_padding_mask=gg.zeros(2, 4, dtype="bool")), ShapeError, r"\(2, 4\)"),
    (lambda: _mha_call(attn_mask=gg.zeros(5, 3, dtype="bool")), ShapeError, r"\(5, 3\)"),
    (lambda: _mha_call(attn_mask=gg.zeros(3, 3, 5, dtype="bool")), ShapeError, r"\(3, 3, 5\)"),
    (lambda: _mha_call(attn_mask=gg.zeros(3, 5, dtype="int64")), DTypeError, "int64"),
    (lambda: _mha_call(key_padding_mask=gg.zeros(2, 5, dtype="float64")), DTypeError, "float64"),
    (lambda: _mha_call(is_causal=True), ArgumentError, "is_causal"),
    (lambda: _mha_call(query="q"), TypeError, "str"),
]


@pytest.mark.parametrize(("make", "error", "named"), MHA_ERRORS)
def test_multihead_attention_errors(make, error, named):
    with pytest.raises(error, match=named):
        make()


def test_float32_attention_stays_float32(device, rng):
    m = nn.MultiheadAttention(4, 2, batch_first=True, device=device)
    x = gg.tensor(rng.standard_normal((2, 3, 4)), dtype="float32", device=device)
    kpm = gg.tensor([[False, False, True], [True, True, True]], device=device)
    out, weights = m(x, x, x, key_padding_mask=kpm)
    assert out.dtype == gg.float32 and weights.dtype == gg.float32
    assert np.all(weights.numpy()[1] == 0)  # the second sequence hides every key
    causal = F.scaled_dot_product_attention(x, x, x, is_causal=True)
    assert causal.dtype == gg.float32
    np.testing.assert_allclose(causal.numpy()[:, 0], x.numpy()[:, 0], rtol=1e-6)
