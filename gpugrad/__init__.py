"""gpugrad: a tensor autograd library that runs the same code on NumPy (cpu) or CuPy (cuda)."""

from . import autograd  # first: the engine and Tensor know each other

# isort: split
from . import accelerator, backends, cuda, linalg, ops
from ._version import __version__
from .autograd import (
    detect_anomaly,
    enable_grad,
    grad,
    inference_mode,
    is_anomaly_enabled,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from .backend import Device, device
from .creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    tensor,
    zeros,
    zeros_like,
)  # fmt: skip
from .dtypes import (
    bool_,
    double,
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int8,
    int16,
    int32,
    int64,
    long,
    set_default_dtype,
    uint8,
)  # fmt: skip
from .dtypes import bool_ as bool  # PyTorch's names for these dtypes
from .dtypes import float32 as float
from .dtypes import int32 as int
from .errors import (
    AnomalyError,
    ArgumentError,
    ArgumentTypeError,
    BackendUnavailableError,
    CheckpointError,
    DataFormatError,
    DeviceError,
    DistributedError,
    DTypeError,
    GpugradError,
    GradcheckError,
    GraphError,
    InplaceError,
    KeywordError,
    MissingFileError,
    NonFiniteNormError,
    OutOfMemoryError,
    SaveError,
    ShapeError,
)  # fmt: skip
from .generator import Generator
from .gradcheck import gradcheck, gradgradcheck
from .interop import from_dlpack
from .ops import *  # noqa: F403  (every op function: gg.exp, gg.sum, ...)
from .sampling import bernoulli, multinomial, normal, randperm
from .serialization import load, save
from .tensor import Tensor

# isort: split
# The training stack (gg.nn, gg.optim, gg.data) and graph drawing (gg.viz) stand on the above.
from . import data, nn, optim, viz
from .explain import explain

# isort: split
from . import utils  # gpugrad.data at PyTorch's address, gg.utils.data

# isort: split
from . import distributed  # process groups and collectives over MPI / NCCL

# isort: split
# Last, once every public function exists: one guard explains a failed call by its arguments
# (PyTorch's dim=/keepdim= -> axis=/keepdims=, an unknown keyword, a list where a Tensor goes).
import sys as _sys

from . import call_guard as _call_guard

_call_guard.install(
    [ops, _sys.modules[__name__], nn.functional, linalg],
    Tensor,
    [c for c in vars(nn).values() if isinstance(c, type) and issubclass(c, nn.Module)],
)
