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

import numbers

import numpy as np

try:
    import torch
except ImportError:  # detcore.ops works without PyTorch
    torch = None

NUMPY_KIND, TORCH_KIND, DLPACK_KIND = "numpy", "torch", "dlpack"
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
        device_type, _ = x.__dlpack_device__()
        if int(device_type) not in _DLPACK_CPU_DEVICES:
            raise ValueError(
                f"{name}: arrays on DLPack device type {int(device_type)} are not supported without "
                "PyTorch; pass torch tensors for CUDA"
            )
        x = np.from_dlpack(x)
    return np.ascontiguousarray(x)


def prepare(**arrays):
    """(kind, [arrays]) ready for an op: NUMPY_KIND with C-contiguous numpy
    arrays (numpy and CPU DLPack inputs), or TORCH_KIND with tensors (torch
    inputs, and DLPack inputs on a GPU). None values stay None."""
    kind = kind_of(**arrays)
    if kind == TORCH_KIND:
        for name, x in arrays.items():
            if x is not None and x.is_quantized:  # torchvision has quantized kernels; detcore does not
                raise TypeError(f"{name}: expected a float tensor, got a quantized one ({x.dtype}); "
                                "pass .dequantize()")
        return kind, list(arrays.values())
    on_cpu = kind == NUMPY_KIND or all(
        x is None or int(x.__dlpack_device__()[0]) in _DLPACK_CPU_DEVICES for x in arrays.values()
    )
    if on_cpu:
        return NUMPY_KIND, [None if x is None else to_numpy(x, name) for name, x in arrays.items()]
    if torch is None:
        name = next(n for n, x in arrays.items() if x is not None)
        raise ValueError(f"{name}: DLPack arrays on a GPU need PyTorch installed (detcore runs them through it)")
    return TORCH_KIND, [None if x is None else torch.from_dlpack(x) for x in arrays.values()]


def dtype_name(dtype) -> str:
    """'float32' for numpy and torch dtypes alike (for messages and _C)."""
    return str(dtype).removeprefix("torch.")


def check_int(value, name: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def check_float(value, name: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    value = float(value)
    if minimum is not None and not value >= minimum:  # also refuses NaN
        raise ValueError(f"{name}: expected a number >= {minimum}, got {value}")
    return value


def check_ndim(x, name: str, ndim: int, layout: str) -> None:
    """Shape checks the Python layer needs before it can size the outputs;
    the core checks again (and everything else) before touching memory."""
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array of shape {layout}, got shape {tuple(x.shape)}")


def check_boxes(x, name: str, layout: str = "(N, 4)", width: int = 4) -> None:
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(f"{name}: expected an array of shape {layout}, got shape {tuple(x.shape)}")


class NumpyArrays:
    """Array namespace for the numpy path."""

    int64 = np.int64
    int32 = np.int32
    uint8 = np.uint8
    bool_ = np.bool_

    @staticmethod
    def empty(shape, dtype, like=None):
        return np.empty(shape, dtype=dtype)

    @staticmethod
    def zeros(shape, dtype, like=None):
        return np.zeros(shape, dtype=dtype)

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
        return torch.empty(shape, dtype=dtype, device=like.device)

    @staticmethod
    def zeros(shape, dtype, like):
        return torch.zeros(shape, dtype=dtype, device=like.device)

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

