"""Image transform: normalise, resize so the short side is min_size (long
side at most max_size), pad the batch to a multiple of 32; and back: boxes,
masks and keypoints to the original image size."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..ops.paste_masks import PASTE_MODES


class ImageBatch:
    """The padded (N, 3, H, W) batch and each image's size before padding."""

    def __init__(self, tensors: torch.Tensor, image_sizes):
        self.tensors = tensors
        self.image_sizes = image_sizes

    @property
    def shape(self):
        return tuple(self.tensors.shape[-2:])


def _scale_xy(t: torch.Tensor, from_size, to_size) -> torch.Tensor:
    """Scale x (even columns) and y (odd columns) of the first two / four
    coordinates of boxes (..., 4) or keypoints (..., 3) from one image size to another."""
    ratio_h = torch.tensor(to_size[0], dtype=torch.float32) / torch.tensor(from_size[0], dtype=torch.float32)
    ratio_w = torch.tensor(to_size[1], dtype=torch.float32) / torch.tensor(from_size[1], dtype=torch.float32)
    t = t.clone()
    ncoord = 4 if t.shape[-1] == 4 else 2
    t[..., 0:ncoord:2] = t[..., 0:ncoord:2] * ratio_w.to(t)
    t[..., 1:ncoord:2] = t[..., 1:ncoord:2] * ratio_h.to(t)
    return t


class Transform(nn.Module):
    """Args: min_size (an int, or a tuple to pick from at random in training),
    max_size, image_mean, image_std (ImageNet's by default), size_divisible 32,
    mask_threshold: masks in the outputs are thresholded at it (0.5, the
    paper); None keeps the probabilities, as torchvision does.
    mask_paste_mode: how each mask is resized into its box when pasted into
    the image, "bilinear" (torchvision's) or "bicubic" (see
    ``detcore.ops.paste_masks``)."""

    def __init__(
        self,
        min_size=800,
        max_size: int = 1333,
        image_mean=(0.485, 0.456, 0.406),
        image_std=(0.229, 0.224, 0.225),
        size_divisible: int = 32,
        mask_threshold=0.5,
        mask_paste_mode: str = "bilinear",
    ):
        super().__init__()
        self.min_size = (min_size,) if isinstance(min_size, int) else tuple(min_size)
        self.max_size = max_size
        self.image_mean = tuple(image_mean)
        self.image_std = tuple(image_std)
        self.size_divisible = size_divisible
        self.mask_threshold = mask_threshold
        if mask_paste_mode not in PASTE_MODES:
            raise ValueError(f"mask_paste_mode: expected 'bilinear' or 'bicubic', got {mask_paste_mode!r}")
        self.mask_paste_mode = mask_paste_mode

    def _resize(self, image, target):
        h, w = image.shape[-2:]
        if self.training:
            size = self.min_size[int(torch.randint(len(self.min_size), (1,)).item())]
        else:
            size = self.min_size[-1]
        scale = min(size / min(h, w), self.max_size / max(h, w))
        image = F.interpolate(
            image[None], scale_factor=scale, mode="bilinear", recompute_scale_factor=True, align_corners=False
        )[0]
        if target is None:
            return image, None
        target = dict(target)
        new_size = tuple(image.shape[-2:])
        target["boxes"] = _scale_xy(target["boxes"], (h, w), new_size)
        if "keypoints" in target:
            target["keypoints"] = _scale_xy(target["keypoints"], (h, w), new_size)
        if "masks" in target:
            m = target["masks"]
            if m.shape[0]:
                m = F.interpolate(m[:, None].float(), size=new_size, mode="nearest")[:, 0].byte()
            else:
                m = m.new_zeros((0,) + new_size)
            target["masks"] = m
        return image, target

    def forward(self, images, targets=None):
        out_images, out_targets = [], []
        for i, image in enumerate(images):
            mean = image.new_tensor(self.image_mean)[:, None, None]
            std = image.new_tensor(self.image_std)[:, None, None]
            image, target = self._resize((image - mean) / std, None if targets is None else targets[i])
            out_images.append(image)
            out_targets.append(target)
        sizes = [tuple(int(s) for s in img.shape[-2:]) for img in out_images]
        d = float(self.size_divisible)
        h = int(math.ceil(max(s[0] for s in sizes) / d) * d)
        w = int(math.ceil(max(s[1] for s in sizes) / d) * d)
        batch = out_images[0].new_zeros((len(out_images), 3, h, w))
        for i, img in enumerate(out_images):
            batch[i, :, : img.shape[1], : img.shape[2]].copy_(img)
        return ImageBatch(batch, sizes), (out_targets if targets is not None else None)

    def postprocess(self, results, image_sizes, original_sizes):
        for r, size, orig in zip(results, image_sizes, original_sizes):
            r["boxes"] = _scale_xy(r["boxes"], size, orig)
            if "keypoints" in r:
                r["keypoints"] = _scale_xy(r["keypoints"], size, orig)
            if "masks" in r:
                m = r["masks"]
                if m.shape[0]:
                    pasted = ops.paste_masks(m, r["boxes"], tuple(orig), self.mask_threshold, self.mask_paste_mode)
                    # torchvision's contract: float (N, 1, H, W), here 0/1 when thresholded
                    m = pasted.to(m.dtype).reshape((m.shape[0], 1) + tuple(orig))
                else:
                    m = m.new_zeros((0, 1) + tuple(orig))
                r["masks"] = m
        return results
