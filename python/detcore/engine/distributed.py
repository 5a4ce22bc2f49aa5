"""Process-group helpers for torchrun (DDP).

``torchrun --nproc_per_node=G [--nnodes=M --node_rank=i --master_addr=...] -m detcore.cli train ...``
sets RANK / WORLD_SIZE / LOCAL_RANK; :func:`init_distributed` joins the group
(NCCL on CUDA, gloo on the CPU) and selects the local GPU. Without those
variables everything runs in one process.
"""

from __future__ import annotations

import os
from typing import List

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def init_distributed(device: str = "cpu") -> torch.device:
    """Joins the torchrun process group when launched by torchrun; returns the
    device this process uses (``cuda:LOCAL_RANK`` for CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    dev = torch.device(device)
    if dev.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device("cuda", local_rank if dev.index is None else dev.index)
        torch.cuda.set_device(dev)
    if world_size > 1 and not is_distributed():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return dev


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_object(obj) -> List[object]:
    if not is_distributed():
        return [obj]
    out = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def any_process(flag: bool, device) -> bool:
    """Whether ``flag`` is set on any process (one small all-reduce)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def reduce_mean(values: dict) -> dict:
    """The mean over processes of a dict of scalar tensors (for logging)."""
    if not is_distributed() or not values:
        return {k: float(v.detach()) for k, v in values.items()}
    keys = sorted(values)
    stacked = torch.stack([values[k].detach().float() for k in keys])
    dist.all_reduce(stacked)
    stacked /= get_world_size()
    return {k: float(v) for k, v in zip(keys, stacked.tolist())}
