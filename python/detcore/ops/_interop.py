"""How arrays from numpy, PyTorch and DLPack producers reach the native core.

Every op is written once as a function of an array namespace (`NUMPY` or
`TORCH`): it validates shapes, allocates outputs in the caller's framework
and calls ``detcore._C``. The public op picks the namespace from its inputs:

* numpy arrays go straight to the core; results are numpy arrays.
* torch tensors go through the op's ``torch.library`` custom op (autograd,
  ``torch.compile``), whose implementation uses the `TORCH` namespace.
* any other object with ``__dlpack__`` is taken without a copy: on the CPU as
  a numpy view, and the numpy result is returned; on CUDA as a torch tensor
  (``torch.from_dlpack`` follows the DLPack stream protocol, ordering the
  producer's stream before PyTorch's current stream), and the torch result is
  returned. Both results have ``__dlpack__``, so the caller's ``from_dlpack``
  takes them back without a copy.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

try:
    import torch
except ImportError:  # detcore.ops works without PyTorch
    torch = None

NUMPY_KIND, TORCH_KIND, DLPACK_KIND = "numpy", "torch", "dlpack"

# Limits on the work and memory of one call (documented in the ops' docstrings
# and the README): parameters that multiply the work or the output size are
# refused with ValueError above them, so no call runs for hours or asks the
# allocator for terabytes by accident.
MAX_SAMPLING_RATIO = 128  # roi_align samples per bin per axis (the adaptive grid is capped there too)
MAX_POOLED_SIZE = 4096  # roi_align / roi_pool output height and width
MAX_SPP_LEVELS = 16  # spp_pool pyramid levels (detcore/math/spp_pool.h)
MAX_SPP_LEVEL_SIZE = 1024  # spp_pool bins per side of one level
MAX_IMAGE_SIDE = 65536  # paste_masks image height and width
MAX_FEATURE_SIDE = 65536  # make_anchors feature-map height and width
MAX_ANCHORS = 1 << 28  # anchors per make_anchors / cell_anchors call
MAX_OUTPUT_BYTES = (1 << 63) - 1  # beyond it no allocator can serve the output
_DLPACK_CPU_DEVICES = (1, 3)  # kDLCPU, kDLCUDAHost


def is_torch(x) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def kind_of(**arrays) -> str:
    """The framework of the array arguments; None values are skipped.

    Raises TypeError naming the argument for a non-array, and when the
    arguments come from different frameworks.
    """
    found = {}
    for name, x in arrays.items():
        if x is None:
            continue
        if isinstance(x, np.ndarray):
            kind = NUMPY_KIND
        elif is_torch(x):
            check_dense_tensor(x, name)
            kind = TORCH_KIND
        elif hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__"):
            kind = DLPACK_KIND
        else:
            raise TypeError(
                f"{name}: expected a numpy array, a torch.Tensor or an object with __dlpack__, "
                f"got {type(x).__name__}"
            )
        found.setdefault(kind, name)
    if len(found) > 1:
        listing = ", ".join(f"{name} is {kind}" for kind, name in found.items())
        raise TypeError(f"all array arguments must come from one framework, but {listing}")
    return next(iter(found), NUMPY_KIND)


def to_numpy(x, name: str) -> np.ndarray:
    """A C-contiguous numpy view of a numpy or CPU DLPack array (copies only
    a non-contiguous input)."""
    if not isinstance(x, np.ndarray):
        device_type = _dlpack_device_type(x, name)
        if device_type not in _DLPACK_CPU_DEVICES:
            raise ValueError(
                f"{name}: arrays on DLPack device type {device_type} are not supported without "
                "PyTorch; pass torch tensors for CUDA"
            )
        try:
            x = np.from_dlpack(x)
        except (BufferError, RuntimeError, TypeError, ValueError) as e:
            raise TypeError(
                f"{name}: expected a DLPack array numpy can view on the CPU (float32, float64, integer or "
                f"bool; bfloat16 only as a torch tensor), got one it refuses: {e}"
            ) from None
    if not x.dtype.isnative:  # byte-swapped input: the core reads native order
        x = x.astype(x.dtype.newbyteorder("="))
    # ascontiguousarray makes a 0-d array 1-D; a 0-d array is contiguous as is.
    return np.ascontiguousarray(x) if x.ndim else np.asarray(x)


def _dlpack_device_type(x, name: str) -> int:
    try:
        return int(x.__dlpack_device__()[0])
    except Exception as e:  # a foreign object's protocol method: anything may come out
        raise TypeError(f"{name}: __dlpack_device__() did not give a (device_type, device_id) pair: {e}") from None


def check_dense_tensor(x, name: str) -> None:
    """One TypeError at the entry for the torch tensors no op can read:
    sparse, nested, quantized, meta (no data) and other devices."""
    if x.is_nested:
        raise TypeError(f"{name}: expected a dense tensor, got a nested tensor")
    if x.layout != torch.strided:
        raise TypeError(f"{name}: expected a dense (strided) tensor, got layout {x.layout}")
    if x.is_quantized:  # torchvision has quantized kernels; detcore does not
        raise TypeError(
            f"{name}: expected a float or integer tensor, got a quantized tensor ({dtype_name(x.dtype)}); "
            "pass .dequantize()"
        )
    if x.device.type not in ("cpu", "cuda"):
        raise TypeError(f"{name}: expected a tensor on the CPU or a CUDA device, got a {x.device.type} tensor")


def require(name: str, value):
    """`value`, or TypeError naming the argument when it is None."""
    if value is None:
        raise TypeError(f"{name}: expected an array, got None")
    return value


def prepare(**arrays):
    """(kind, [arrays]) ready for an op: NUMPY_KIND with C-contiguous numpy
    arrays (numpy and CPU DLPack inputs), or TORCH_KIND with tensors (torch
    inputs, and DLPack inputs on a GPU). Every array is required: None
    raises TypeError naming it."""
    for name, x in arrays.items():
        require(name, x)
    kind = kind_of(**arrays)
    if kind == TORCH_KIND:  # kind_of has refused quantized, sparse, nested and meta tensors
        return kind, list(arrays.values())
    on_cpu = kind == NUMPY_KIND or all(
        _dlpack_device_type(x, name) in _DLPACK_CPU_DEVICES for name, x in arrays.items()
    )
    if on_cpu:
        return NUMPY_KIND, [to_numpy(x, name) for name, x in arrays.items()]
    if torch is None:
        name = next(n for n, x in arrays.items() if x is not None)
        raise ValueError(f"{name}: DLPack arrays on a GPU need PyTorch installed (detcore runs them through it)")
    return TORCH_KIND, [torch.from_dlpack(x) for x in arrays.values()]


def dtype_name(dtype) -> str:
    """'float32' for numpy and torch dtypes alike (for messages and _C)."""
    return str(dtype).removeprefix("torch.")


# The dtype names _C's workspace queries parse (bindings/names.cpp).
_CORE_DTYPES = ("float16", "bfloat16", "float32", "float64", "int32", "int64", "uint8", "bool")


def query_dtype_name(x, name: str) -> str:
    """dtype_name(x.dtype) for a workspace query, or TypeError naming the
    array when its dtype is one no core op reads (complex, int16, ...), so
    that the error names the caller's argument rather than the query's."""
    dt = dtype_name(x.dtype)
    if dt not in _CORE_DTYPES:
        raise TypeError(f"{name}: expected a float array, got dtype {dt}")
    return dt


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def show_int(value: int) -> str:
    """An int for a message; a huge one by its size (str() refuses ints
    of over 4300 digits)."""
    return str(value) if abs(value) < 10**30 else f"an int of {value.bit_length()} bits"


def check_int(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """A Python int from any integer (numpy integer scalars included). Values
    must fit in an int64 (the core's type) and in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    value = int(value)
    low = INT64_MIN if minimum is None else minimum
    high = INT64_MAX if maximum is None else maximum
    if not low <= value <= high:
        if minimum is not None and value < minimum:
            expected = f"an int >= {minimum}" if maximum is None else f"an int in [{minimum}, {maximum}]"
        elif maximum is not None and value > maximum:
            expected = f"an int <= {maximum}" if minimum is None else f"an int in [{minimum}, {maximum}]"
        else:
            expected = "an int that fits in 64 bits"
        raise ValueError(f"{name}: expected {expected}, got {show_int(value)}")
    return value


def check_float(value, name: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:  # an int (or Fraction) beyond the float range
        raise ValueError(f"{name}: expected a number in the float range, got {show_int(int(value))}") from None
    if minimum is not None and not value >= minimum:  # also refuses NaN
        raise ValueError(f"{name}: expected a number >= {minimum}, got {value}")
    return value


def check_output_bytes(shape, itemsize: int, name: str) -> None:
    """ValueError naming `name` (the argument that sized it) when an output
    of `shape` could not exist in any address space. Symbolic sizes (under
    torch.compile) are not checked."""
    if not all(isinstance(d, int) for d in shape):
        return
    nbytes = math.prod(shape) * itemsize
    if nbytes > MAX_OUTPUT_BYTES:
        raise ValueError(
            f"{name}: the output would have shape {tuple(shape)}, {show_int(nbytes)} bytes, more than any "
            f"process can address (2**63)"
        )


def device_arg(device):
    """A torch.device for `device` (a torch.device, a name such as 'cuda:0' or
    a CUDA index), on the CPU or an available CUDA device."""
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str) or (isinstance(device, numbers.Integral) and not isinstance(device, bool)):
        try:
            dev = torch.device(device)
        except (RuntimeError, ValueError, TypeError) as e:
            raise ValueError(f"device: expected a device such as 'cpu' or 'cuda:0', got {device!r} ({e})") from None
    else:
        raise TypeError(f"device: expected a torch.device or a device name, got {type(device).__name__}")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu' or a CUDA device, got {dev}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {dev} was asked for, but CUDA is not available")
    return dev


def check_ndim(x, name: str, ndim: int, layout: str) -> None:
    """Shape checks the Python layer needs before it can size the outputs;
    the core checks again (and everything else) before touching memory."""
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array of shape {layout}, got shape {tuple(x.shape)}")


def check_boxes(x, name: str, layout: str = "(N, 4)", width: int = 4) -> None:
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(f"{name}: expected an array of shape {layout}, got shape {tuple(x.shape)}")


def _allocate(factory, shape, dtype, **kwargs):
    """factory(shape, dtype): an allocation failure (numpy's MemoryError and
    "array is too big", torch's allocator RuntimeError) surfaces as MemoryError."""
    try:
        return factory(shape, dtype=dtype, **kwargs)
    except MemoryError:
        raise
    except (ValueError, RuntimeError) as e:
        text = str(e)
        if "too big" not in text and "alloc" not in text and "overflow" not in text and "out of memory" not in text:
            raise
        raise MemoryError(f"could not allocate an output of shape {tuple(shape)} ({dtype_name(dtype)}): {text}") from None


class NumpyArrays:
    """Array namespace for the numpy path."""

    int64 = np.int64
    int32 = np.int32
    uint8 = np.uint8
    bool_ = np.bool_

    @staticmethod
    def empty(shape, dtype, like=None):
        return _allocate(np.empty, shape, dtype)

    @staticmethod
    def zeros(shape, dtype, like=None):
        return _allocate(np.zeros, shape, dtype)

    @staticmethod
    def native(a):
        return a

    @staticmethod
    def stream(like) -> int:
        return 0

    @staticmethod
    def device(like) -> str:
        """The device of `like` as the ``_C`` workspace queries take it."""
        return "cpu"

    @staticmethod
    def workspace(nbytes: int, like):
        """A uint8 scratch buffer of `nbytes` bytes for a ``_C`` kernel."""
        return np.empty((nbytes,), np.uint8)


class TorchArrays:
    """Array namespace for torch tensors (inside the custom ops)."""

    int64 = torch.int64 if torch is not None else None
    int32 = torch.int32 if torch is not None else None
    uint8 = torch.uint8 if torch is not None else None
    bool_ = torch.bool if torch is not None else None

    @staticmethod
    def empty(shape, dtype, like):
        return _allocate(torch.empty, shape, dtype, device=like.device)

    @staticmethod
    def zeros(shape, dtype, like):
        return _allocate(torch.zeros, shape, dtype, device=like.device)

    @staticmethod
    def native(t):
        """The object `_C` reads: a numpy view on the CPU (cheapest), a DLPack
        capsule on CUDA and for dtypes numpy lacks. `t` must be contiguous."""
        if t.device.type == "cpu" and t.dtype != torch.bfloat16:
            return t.detach().numpy()
        return torch.utils.dlpack.to_dlpack(t.detach())

    @staticmethod
    def stream(like) -> int:
        """PyTorch's current stream on the device of `like` (0 on the CPU):
        the kernels run on it, ordered with the caller's work."""
        if like.device.type != "cuda":
            return 0
        return torch.cuda.current_stream(like.device).cuda_stream

    @staticmethod
    def device(like) -> str:
        """'cpu' or 'cuda:<index>' (a tensor's device always has its index),
        as the ``_C`` workspace queries take it."""
        return str(like.device)

    @staticmethod
    def workspace(nbytes: int, like):
        """A uint8 scratch buffer of `nbytes` bytes on the device of `like`,
        from PyTorch's caching allocator."""
        return torch.empty((nbytes,), dtype=torch.uint8, device=like.device)


NUMPY = NumpyArrays()
TORCH = TorchArrays()

