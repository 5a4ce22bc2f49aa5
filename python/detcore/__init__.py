"""detcore: object-detection operators with a native C++/CUDA core.

``detcore.ops`` works on numpy arrays, torch tensors and any DLPack array;
``detcore.models`` and ``detcore.engine`` need PyTorch.
"""

from . import _C, ops
from ._threads import num_threads, set_num_threads

__version__ = "0.1.0"
has_cuda = _C.has_cuda

__all__ = ["ops", "num_threads", "set_num_threads", "has_cuda", "__version__"]
