"""Inputs for the benchmarks, made from a seed (float32 torch tensors)."""

import numpy as np
import torch


def random_boxes(n, image_size=1000.0, min_wh=10.0, max_wh=200.0, seed=0, device="cpu"):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, image_size, (n, 2))
    wh = rng.uniform(min_wh, max_wh, (n, 2))
    return torch.from_numpy(np.concatenate([xy, xy + wh], 1).astype(np.float32)).to(device)


def random_scores(n, seed=1, device="cpu"):
    return torch.from_numpy(np.random.default_rng(seed).random(n, dtype=np.float32)).to(device)


def random_rois(num_rois, batch, height, width, spatial_scale, seed=2, device="cpu"):
    """(K, 5) RoIs in image coordinates over a feature map of (height, width)."""
    rng = np.random.default_rng(seed)
    image_h, image_w = height / spatial_scale, width / spatial_scale
    x1 = rng.uniform(0, image_w * 0.8, num_rois)
    y1 = rng.uniform(0, image_h * 0.8, num_rois)
    w = rng.uniform(16, image_w * 0.4, num_rois)
    h = rng.uniform(16, image_h * 0.4, num_rois)
    batch_index = rng.integers(0, batch, num_rois)
    rois = np.stack([batch_index, x1, y1, np.minimum(x1 + w, image_w), np.minimum(y1 + h, image_h)], 1)
    return torch.from_numpy(rois.astype(np.float32)).to(device)
