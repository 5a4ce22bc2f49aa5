"""What the public ops need to compile under ``torch.jit.script`` and to be
leaf nodes for ``torch.fx`` symbolic tracing (see docs/adding_an_op.md).

A public op reads::

    def nms(boxes: Array, scores: Array, iou_threshold: float) -> Array:
        if is_scripting():          # TorchScript compiles only this branch
            return torch.ops.detcore.nms(boxes, scores, iou_threshold)
        node = fx_node(nms, boxes, scores, iou_threshold)
        if node is not None:        # torch.fx symbolic tracing: one leaf node
            return node
        ...                         # the numpy / torch / DLPack path

TorchScript treats ``is_scripting()`` as the constant True and never compiles
the code after the scripted branch's return, so that code stays free Python.

The annotations are what TorchScript reads: ``Array`` is ``torch.Tensor`` at
run time, while a static type checker sees every accepted array kind.
TorchScript knows ``BroadcastingList2[int]`` (an int or a pair, broadcast to
a pair) by that spelling only, so it is written out, never aliased.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

from ._interop import torch

if TYPE_CHECKING:
    import torch as _torch

    # numpy arrays, torch tensors and any other object with __dlpack__
    Array = Union[np.ndarray, _torch.Tensor, Any]
    _T = TypeVar("_T")
    # BroadcastingList2[int]: an int, or a (height, width) pair
    BroadcastingList2 = Union[_T, Tuple[_T, _T], List[_T]]
    # 4 numbers (wx, wy, ww, wh)
    Weights = Union[Tuple[float, float, float, float], Sequence[float]]
    # anchors: (H, W) per level; an int or (stride_h, stride_w) per level;
    # numbers for every level or one sequence per level; a numpy or torch
    # dtype; a torch device or its name
    GridSizes = Sequence[Tuple[int, int]]
    Strides = Sequence[Union[int, Tuple[int, int]]]
    PerLevel = Union[Sequence[float], Sequence[Sequence[float]]]
    DType = Any
    Device = Any
elif torch is not None:
    from torch.jit.annotations import BroadcastingList2

    Array = torch.Tensor
    Weights = Tuple[float, float, float, float]
    GridSizes = List[Tuple[int, int]]
    Strides = Union[List[int], List[Tuple[int, int]]]
    PerLevel = Union[List[float], List[List[float]]]
    DType = Optional[torch.dtype]
    Device = Optional[torch.device]
else:  # never evaluated without PyTorch; defined for completeness
    Array = BroadcastingList2 = Weights = GridSizes = Strides = PerLevel = DType = Device = object

if torch is not None:
    from torch.jit import is_scripting
else:

    def is_scripting() -> bool:
        return False


def _find_proxy(values):
    for v in values:
        if isinstance(v, torch.fx.Proxy):
            return v
        if isinstance(v, (list, tuple)):
            found = _find_proxy(v)
            if found is not None:
                return found
    return None


def fx_node(fn, *args, **kwargs):
    """Under ``torch.fx`` symbolic tracing (an argument is a Proxy), a
    ``call_function`` node of `fn` with these arguments, so the op is a leaf
    of the graph however the caller reached it; otherwise None.

    ``torch.fx.wrap`` (as torchvision uses) only patches calls made through
    the defining module's globals, e.g. from the module wrappers; a user's
    ``from detcore.ops import nms`` reaches the op here.
    """
    if torch is None:
        return None
    proxy = _find_proxy(args)
    if proxy is None:  # not `or`: bool() of a Proxy raises
        proxy = _find_proxy(kwargs.values())
    if proxy is None:
        return None
    # While tracing, torch.fx.wrap has replaced the module's global `fn` with
    # a wrapper (functools.wraps): the node calls the op itself.
    fn = getattr(fn, "__wrapped__", fn)
    return proxy.tracer.create_proxy("call_function", fn, args, kwargs)
