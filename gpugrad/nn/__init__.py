"""Neural-network building blocks: Module, Parameter, layers, activations, losses, init.

`gpugrad.nn.functional` (F) holds the same activations and losses as functions.
"""

from . import functional, init, utils
from .activation import (
    ELU,
    GELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)  # fmt: skip
from .attention import MultiheadAttention
from .containers import ModuleDict, ModuleList, Sequential
from .conv import Conv1d, Conv2d
from .layers import BatchNorm1d, Dropout, Embedding, Flatten, Identity, LayerNorm, Linear
from .layers2d import BatchNorm2d, Dropout2d
from .loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HingeEmbeddingLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    MultiMarginLoss,
    NLLLoss,
    SmoothL1Loss,
)  # fmt: skip
from .module import IncompatibleKeys, Module
from .param_containers import ParameterDict, ParameterList
from .parameter import Parameter
from .pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .unflatten import Unflatten
from .utils import clip_grad_norm_, clip_grad_value_

# isort: split
from . import parallel  # DistributedDataParallel (needs gpugrad.distributed)
