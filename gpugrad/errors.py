"""Typed errors. Each subclasses the built-in exception a Python user would expect to catch."""


class GpugradError(Exception):
    """Base class of every error gpugrad raises on purpose."""


class ShapeError(GpugradError, ValueError):
    """Shapes that do not fit together (broadcasting, matmul, reshape, a wrong-shaped gradient)."""


class IndexOutOfRangeError(ShapeError, IndexError):
    """An index outside the indexed tensor's shape."""


class DTypeError(GpugradError, TypeError):
    """A dtype an operation cannot take (for example, gradients of integer tensors)."""


class DeviceError(GpugradError, RuntimeError):
    """Tensors on different devices in one operation, or a device string that cannot be parsed."""


class BackendUnavailableError(DeviceError):
    """A device was asked for whose array library or hardware is missing (CuPy, a GPU)."""


class GraphError(GpugradError, RuntimeError):
    """Misuse of the autograd graph: backward twice through freed buffers, a non-scalar root, ..."""


class InplaceError(GpugradError, RuntimeError):
    """An in-place change that would make gradients wrong."""


class GradcheckError(GpugradError, AssertionError):
    """Analytic and numerical gradients disagree."""


class CheckpointError(GpugradError, ValueError):
    """A saved state that does not match what it is loaded into, or a corrupt file."""


class DataFormatError(GpugradError, ValueError):
    """A data file that is not in the format it claims (bad magic number, truncated, ...)."""


class NonFiniteNormError(GpugradError, RuntimeError):
    """The total gradient norm is NaN or infinite (clip_grad_norm_ with error_if_nonfinite)."""


class AnomalyError(GpugradError, RuntimeError):
    """Under detect_anomaly: a backward step produced NaN or inf."""


class KeywordError(GpugradError, TypeError):
    """A keyword gpugrad spells differently: PyTorch's dim=/keepdim= are axis=/keepdims= here."""


class MissingFileError(GpugradError, FileNotFoundError):
    """A file or folder that is not there (a checkpoint to load, a data folder); the message
    names the path."""


class SaveError(GpugradError, OSError):
    """gg.save could not write its file (disk full, size limit, read-only or missing folder);
    the message names the file, and a checkpoint that was there before is kept."""


class ArgumentError(GpugradError, ValueError, TypeError):
    """An argument a function cannot take: a negative size, a zero step, a probability outside
    [0, 1], a batch_size of 0, options that exclude each other, `fit(epochs="a")`, a loss
    function that returns a float. Catchable as ValueError or TypeError."""


class ArgumentTypeError(ArgumentError):
    """An argument of a type a function cannot take, such as a size of 2.5."""


class DistributedError(GpugradError, RuntimeError):
    """Misuse of a process group (a collective before init_process_group, a second init), or
    ranks that disagree (a rendezvous that times out)."""


class OutOfMemoryError(GpugradError, MemoryError):
    """The array library could not allocate a tensor (host or device memory); the message
    names the function and the shape asked for."""
