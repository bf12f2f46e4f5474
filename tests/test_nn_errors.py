"""Misuse of layers, losses and optimizers raises a typed error naming the offending value.

One table per family; each row is (what is done, the error type, a pattern the message must
contain, which names the value that was wrong).
"""

import numpy as np
import pytest

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
from gpugrad import optim
from gpugrad.errors import IndexOutOfRangeError

ArgErr, ArgType = gg.ArgumentError, gg.ArgumentTypeError


def _leaf():
    return gg.zeros(2, requires_grad=True)


# --- nn layers --------------------------------------------------------------------------------
LAYERS = {
    "linear_float_size": (lambda: nn.Linear(2.5, 3), ArgType, r"in_features .*2\.5"),
    "linear_zero_size": (lambda: nn.Linear(2, 0), ArgErr, r"out_features .*got 0"),
    "linear_bool_size": (lambda: nn.Linear(True, 3), ArgType, r"in_features .*True"),
    "linear_str_size": (lambda: nn.Linear("4", 3), ArgType, r"in_features .*'4'"),
    "embedding_size": (lambda: nn.Embedding(0, 3), ArgErr, r"num_embeddings .*got 0"),
    "embedding_dim": (lambda: nn.Embedding(3, 1.5), ArgType, r"embedding_dim .*1\.5"),
    "layernorm_shape": (lambda: nn.LayerNorm((3, 0)), ArgErr, r"normalized_shape .*got 0"),
    "layernorm_eps": (lambda: nn.LayerNorm(3, eps=-1e-5), ArgErr, r"eps .*-1e-05"),
    "batchnorm_size": (lambda: nn.BatchNorm1d(-2), ArgErr, r"num_features .*got -2"),
    "batchnorm_momentum": (lambda: nn.BatchNorm2d(3, momentum=1.5), ArgErr, r"momentum .*1\.5"),
    "batchnorm_eps": (lambda: nn.BatchNorm1d(3, eps="small"), ArgType, r"eps .*'small'"),
    "dropout_p": (lambda: nn.Dropout(p=1.5), ArgErr, r"p must be in \[0, 1\], got 1\.5"),
    "dropout_negative": (lambda: nn.Dropout2d(p=-0.1), ArgErr, r"got -0\.1"),
    "dropout_nan": (lambda: nn.Dropout(p=float("nan")), ArgErr, r"got nan"),
    "dropout_functional": (lambda: F.dropout(gg.ones(2), p=2.0), ArgErr, r"got 2\.0"),
    "conv_channels": (lambda: nn.Conv2d(2.0, 3, 3), ArgType, r"in_channels .*2\.0"),
    "conv_zero_out": (lambda: nn.Conv1d(2, 0, 3), ArgErr, r"out_channels .*got 0"),
    "conv_kernel": (lambda: nn.Conv2d(1, 1, (3, 0)), ArgErr, r"kernel_size .*\(3, 0\)"),
    "conv_stride": (lambda: nn.Conv2d(1, 1, 3, stride=0), ArgErr, r"stride .*got 0"),
    "conv_dilation": (lambda: nn.Conv1d(1, 1, 3, dilation=-1), ArgErr, r"dilation .*got -1"),
    "conv_padding": (lambda: nn.Conv2d(1, 1, 3, padding=-1), ArgErr, r"padding .*got -1"),
    "conv_padding_word": (lambda: nn.Conv2d(1, 1, 3, padding="full"), ArgErr, r"'full'"),
    "conv_same_strided": (
        lambda: nn.Conv2d(1, 1, 3, padding="same", stride=2),
        ArgErr,
        r"stride \(2, 2\)",
    ),
    "conv_groups": (lambda: nn.Conv2d(2, 2, 3, groups=0), ArgErr, r"groups .*got 0"),
    "maxpool_kernel": (lambda: nn.MaxPool2d(0), ArgErr, r"kernel_size .*got 0"),
    "maxpool1d_stride": (lambda: nn.MaxPool1d(2, stride=0), ArgErr, r"stride .*got 0"),
    "avgpool_padding": (lambda: nn.AvgPool2d(2, padding=-1), ArgErr, r"padding .*got -1"),
    "adaptive_size": (lambda: nn.AdaptiveAvgPool2d((2, 0)), ArgErr, r"output_size .*got 0"),
    "leaky_slope": (lambda: nn.LeakyReLU("0.1"), ArgType, r"negative_slope .*'0\.1'"),
    "gelu_mode": (lambda: nn.GELU("fast"), ArgErr, r"approximate .*'fast'"),
    "softplus_beta": (lambda: nn.Softplus(beta=0), ArgErr, r"beta must be non-zero, got 0"),
    "sequential_class": (lambda: nn.Sequential(nn.Linear, "relu"), ArgType, r"class Linear"),
    "sequential_str": (lambda: nn.Sequential(nn.ReLU(), "relu"), ArgType, r"'relu' \(str\)"),
    "modulelist_int": (lambda: nn.ModuleList([1]), ArgType, r"got 1 \(int\)"),
    "sequential_index_type": (lambda: nn.Sequential(nn.ReLU())["0"], ArgType, r"got '0'"),
    "sequential_index_range": (
        lambda: nn.Sequential(nn.ReLU())[3],
        IndexOutOfRangeError,
        r"index 3 is out of range for Sequential of 1",
    ),
    "modulelist_not_iterable": (lambda: nn.ModuleList(5), ArgType, r"got 5 \(int\)"),
    "init_mode": (
        lambda: nn.init.kaiming_uniform_(gg.empty(3, 3), mode="fan"),
        ArgErr,
        r"mode .*'fan'",
    ),
    "init_nonlinearity": (lambda: nn.init.calculate_gain("swish"), ArgErr, r"'swish'"),
    "clip_norm_negative": (
        lambda: nn.utils.clip_grad_norm_([_leaf()], max_norm=-1.0),
        ArgErr,
        r"max_norm must be >= 0, got -1\.0",
    ),
    "clip_norm_type": (
        lambda: nn.utils.clip_grad_norm_([_leaf()], 1.0, norm_type="fro"),
        ArgType,
        r"norm_type .*'fro'",
    ),
    "clip_value_negative": (
        lambda: nn.utils.clip_grad_value_([_leaf()], clip_value=-0.5),
        ArgErr,
        r"clip_value must be >= 0, got -0\.5",
    ),
    "batchnorm_one_value": (
        lambda: nn.BatchNorm1d(3)(gg.randn(1, 3)),
        gg.ShapeError,
        r"more than one value per channel.*\(1, 3\)",
    ),
    "batch_norm_functional_one_value": (
        lambda: F.batch_norm(gg.randn(1, 3, 1), None, None, training=True),
        gg.ShapeError,
        r"\(1, 3, 1\)",
    ),
}


@pytest.mark.parametrize("make, error, pattern", LAYERS.values(), ids=LAYERS.keys())
def test_layer_misuse_raises_a_typed_error_naming_the_value(make, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        make()
    assert isinstance(info.value, gg.GpugradError)


# --- losses -----------------------------------------------------------------------------------
def _logits():
    return gg.randn(4, 3)


def _labels():
    return gg.tensor([0, 1, 2, 1])


LOSSES = {
    "reduction_module": (lambda: nn.MSELoss(reduction="avg"), ArgErr, r"reduction .*'avg'"),
    "reduction_functional": (
        lambda: F.l1_loss(gg.ones(2), gg.ones(2), reduction="total"),
        ArgErr,
        r"'total'",
    ),
    "reduction_cross_entropy": (
        lambda: F.cross_entropy(_logits(), _labels(), reduction=None),
        ArgErr,
        r"reduction .*None",
    ),
    "label_smoothing_module": (
        lambda: nn.CrossEntropyLoss(label_smoothing=1.5),
        ArgErr,
        r"label_smoothing must be in \[0, 1\], got 1\.5",
    ),
    "label_smoothing_functional": (
        lambda: F.cross_entropy(_logits(), _labels(), label_smoothing=-0.1),
        ArgErr,
        r"label_smoothing .*-0\.1",
    ),
    "huber_delta_module": (lambda: nn.HuberLoss(delta=0), ArgErr, r"delta must be > 0, got 0"),
    "huber_delta_functional": (
        lambda: F.huber_loss(gg.ones(2), gg.ones(2), delta=-1.0),
        ArgErr,
        r"delta .*-1\.0",
    ),
    "smooth_l1_beta": (lambda: nn.SmoothL1Loss(beta=-1), ArgErr, r"beta must be >= 0, got -1"),
    "multi_margin_p": (lambda: nn.MultiMarginLoss(p=3), ArgErr, r"p must be 1 or 2, got 3"),
    "hinge_margin": (lambda: nn.HingeEmbeddingLoss(margin="1"), ArgType, r"margin .*'1'"),
    "input_not_tensor": (
        lambda: F.mse_loss(np.ones(2, "f4"), gg.ones(2)),
        ArgType,
        r"input must be a Tensor, got ndarray",
    ),
    "bce_integer_target": (
        lambda: F.binary_cross_entropy(gg.full((2,), 0.5), gg.tensor([1, 0])),
        gg.DTypeError,
        r"target is int64 but input is float32",
    ),
    "bce_logits_integer_target": (
        lambda: F.binary_cross_entropy_with_logits(gg.ones(2), gg.tensor([1, 0])),
        gg.DTypeError,
        r"target is int64 but input is float32",
    ),
    "bce_logits_wider_target": (
        lambda: nn.BCEWithLogitsLoss()(gg.ones(2), gg.ones(2, dtype="float64")),
        gg.DTypeError,
        r"target is float64 but input is float32",
    ),
    "bce_input_above_one": (
        lambda: F.binary_cross_entropy(gg.tensor([0.5, 1.5]), gg.ones(2)),
        ArgErr,
        r"input should be between 0 and 1.*got 1\.5",
    ),
}


@pytest.mark.parametrize("make, error, pattern", LOSSES.values(), ids=LOSSES.keys())
def test_loss_misuse_raises_a_typed_error_naming_the_value(make, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        make()
    assert isinstance(info.value, gg.GpugradError)


# --- optimizers -------------------------------------------------------------------------------
OPTIM = {
    "negative_lr": (
        lambda: optim.SGD([_leaf()], lr=-0.1),
        ArgErr,
        r"SGD: lr must be >= 0, got -0\.1",
    ),
    "string_lr": (
        lambda: optim.SGD([_leaf()], lr="a"),
        ArgType,
        r"lr must be a real number, got 'a'",
    ),
    "nan_lr": (lambda: optim.Adam([_leaf()], lr=float("nan")), ArgErr, r"lr .*got nan"),
    "negative_momentum": (
        lambda: optim.SGD([_leaf()], lr=0.1, momentum=-0.9),
        ArgErr,
        r"momentum must be >= 0, got -0\.9",
    ),
    "negative_weight_decay": (
        lambda: optim.AdamW([_leaf()], weight_decay=-1),
        ArgErr,
        r"weight_decay .*got -1",
    ),
    "negative_eps": (lambda: optim.RMSprop([_leaf()], eps=-1e-8), ArgErr, r"eps .*-1e-08"),
    "negative_lr_decay": (lambda: optim.Adagrad([_leaf()], lr_decay=-1), ArgErr, r"lr_decay"),
    "beta_one": (lambda: optim.Adam([_leaf()], betas=(0.9, 1.0)), ArgErr, r"betas\[1\] .*1\.0"),
    "beta_negative": (lambda: optim.Adam([_leaf()], betas=(-0.1, 0.9)), ArgErr, r"-0\.1"),
    "betas_length": (lambda: optim.Adam([_leaf()], betas=(0.9,)), ArgErr, r"betas .*\(0\.9,\)"),
    "betas_type": (lambda: optim.Adam([_leaf()], betas=0.9), ArgErr, r"betas .*0\.9"),
    "nesterov": (
        lambda: optim.SGD([_leaf()], lr=0.1, nesterov=True),
        ArgErr,
        r"Nesterov .*momentum=0",
    ),
    "empty_params": (lambda: optim.SGD([], lr=0.1), ArgErr, r"SGD got an empty parameter list"),
    "ints_as_params": (lambda: optim.SGD([1, 2], lr=0.1), ArgType, r"got 1 \(int\) at position 0"),
    "one_tensor": (lambda: optim.SGD(_leaf(), lr=0.1), ArgType, r"a single Tensor"),
    "not_iterable": (lambda: optim.SGD(3, lr=0.1), ArgType, r"got 3"),
    "non_leaf": (
        lambda: optim.SGD([_leaf() * 2], lr=0.1),
        ArgErr,
        r"non-leaf Tensor \(position 0, shape \(2,\)",
    ),
    "group_without_params": (
        lambda: optim.SGD([{"lr": 0.1}], lr=0.1),
        ArgType,
        r"'params' entry, got a dict with keys \['lr'\]",
    ),
    "group_not_dict": (
        lambda: optim.SGD([_leaf()], lr=0.1).add_param_group([_leaf()]),
        ArgType,
        r"param group must be a dict.*got list",
    ),
    "bad_group_lr": (
        lambda: optim.SGD([{"params": [_leaf()], "lr": -1}], lr=0.1),
        ArgErr,
        r"lr must be >= 0, got -1",
    ),
    "step_lr_gamma": (
        lambda: optim.lr_scheduler.StepLR(optim.SGD([_leaf()], lr=0.1), 2, gamma=-0.5),
        ArgErr,
        r"gamma must be >= 0, got -0\.5",
    ),
    "exponential_lr_gamma": (
        lambda: optim.lr_scheduler.ExponentialLR(optim.SGD([_leaf()], lr=0.1), gamma="0.9"),
        ArgType,
        r"gamma .*'0\.9'",
    ),
    "step_lr_size": (
        lambda: optim.lr_scheduler.StepLR(optim.SGD([_leaf()], lr=0.1), step_size=0),
        ArgErr,
        r"StepLR: step_size must be an int >= 1, got 0",
    ),
    "scheduler_without_optimizer": (
        lambda: optim.lr_scheduler.StepLR([_leaf()], step_size=1),
        ArgType,
        r"list is not an Optimizer",
    ),
}


@pytest.mark.parametrize("make, error, pattern", OPTIM.values(), ids=OPTIM.keys())
def test_optimizer_misuse_raises_a_typed_error_naming_the_value(make, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        make()
    assert isinstance(info.value, gg.GpugradError)


def test_argument_errors_are_the_builtin_exceptions_users_catch():
    assert issubclass(gg.ArgumentError, ValueError)
    assert issubclass(gg.ArgumentTypeError, TypeError)
    assert issubclass(gg.ArgumentTypeError, gg.ArgumentError)


def test_a_bad_group_leaves_the_optimizer_as_it_was():
    p, q = _leaf(), _leaf()
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(gg.ArgumentError):
        opt.add_param_group({"params": [q], "lr": -1.0})
    assert len(opt.param_groups) == 1
    assert q not in opt.state


def test_numpy_scalars_and_integers_are_accepted():
    layer = nn.Linear(np.int64(3), np.int32(2))
    assert (layer.in_features, layer.out_features) == (3, 2)
    opt = optim.Adam([_leaf()], lr=np.float32(0.01), betas=(np.float64(0.9), 0.99))
    assert opt.param_groups[0]["lr"] == np.float32(0.01)
