"""Truncated SVD of fully connected layers (Fast R-CNN, section 3.1).

A layer y = W x + b with W of shape (u, v) is replaced by two layers:
y = U_k (S_k V_k^T x) + b, with k singular values kept: u*v multiply-adds
become k*(u + v). Fast R-CNN compresses VGG16's fc6 (25088 -> 4096) to rank
1024 and fc7 (4096 -> 4096) to rank 256."""

from __future__ import annotations

import copy

import torch
from torch import nn


def low_rank_linear(layer: nn.Linear, rank: int) -> nn.Sequential:
    """Two linear layers (no bias, then the original bias) whose product is
    the best rank-`rank` approximation of `layer`'s weight."""
    if not isinstance(layer, nn.Linear):
        raise ValueError(f"layer: expected an nn.Linear, got {type(layer).__name__}")
    out_f, in_f = layer.weight.shape
    if not 1 <= rank <= min(out_f, in_f):
        raise ValueError(f"rank: expected 1..{min(out_f, in_f)} for a {in_f} -> {out_f} layer, got {rank}")
    # The rank-k truncation is the projection of W onto its top-k singular
    # subspace: from the eigenvectors of the smaller Gram matrix (float64),
    # W_k = U_k (U_k^T W) or (W V_k) V_k^T. Several times faster than a full
    # SVD of VGG16's 4096 x 25088 fc6, and no division by singular values.
    w = layer.weight.detach().to(torch.float64)
    if out_f <= in_f:
        _, vecs = torch.linalg.eigh(w @ w.T)
        u_k = vecs[:, -rank:].flip(1)  # eigenvalues ascend: the top k, largest first
        left, right = u_k, u_k.T @ w
    else:
        _, vecs = torch.linalg.eigh(w.T @ w)
        v_k = vecs[:, -rank:].flip(1)
        left, right = w @ v_k, v_k.T
    first = nn.Linear(in_f, rank, bias=False)
    second = nn.Linear(rank, out_f, bias=layer.bias is not None)
    dtype, device = layer.weight.dtype, layer.weight.device
    with torch.no_grad():
        first.weight.copy_(right.to(dtype))
        second.weight.copy_(left.to(dtype))
        if layer.bias is not None:
            second.bias.copy_(layer.bias.detach())
    return nn.Sequential(first, second).to(device)


def compress_fc_svd(model: nn.Module, ranks=None, inplace: bool = False) -> nn.Module:
    """Compress the box head's fc layers of a trained detector.

    Args:
        model: a detector whose ``roi_heads.box_head`` has fc6 / fc7 (every
            R-CNN builder), or any module with those attribute paths in `ranks`.
        ranks: {"fc6": k6, "fc7": k7} (the paper's VGG16 setting: 1024, 256).
            Keys are attribute paths relative to ``roi_heads.box_head``.
        inplace: modify `model` instead of a copy.

    Returns:
        the model with each named layer replaced by its rank-k factorisation.
    """
    if ranks is None:
        ranks = {"fc6": 1024, "fc7": 256}
    if not inplace:
        model = copy.deepcopy(model)
    head = model.roi_heads.box_head
    for name, rank in ranks.items():
        layer = getattr(head, name, None)
        if not isinstance(layer, nn.Linear):
            raise ValueError(f"ranks: box_head.{name} is not an uncompressed nn.Linear")
        setattr(head, name, low_rank_linear(layer, int(rank)))
    return model
