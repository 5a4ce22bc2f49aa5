"""Tiny R-CNN / SPP-net configurations and a synthetic dataset that carries
proposals (jittered ground truth plus random boxes), for the classic tests."""

from __future__ import annotations

import numpy as np
import torch

RCNN_TINY = dict(base_width=8, input_size=32, context_pad=4, representation_size=32, dropout=0.0, batch_size=32,
                 region_batch=64)
SPP_TINY = dict(base_width=8, levels=(2, 1), min_size=64, max_size=96, representation_size=32, dropout=0.0,
                batch_size=32, trainable_stages=5)


def proposals_for_target(target: dict, height: int, width: int, seed: int, random_boxes: int = 12) -> torch.Tensor:
    """Jittered copies of each ground-truth box plus random boxes, inside the image."""
    rng = np.random.default_rng(seed)
    gt = target["boxes"].numpy().astype(np.float64).reshape(-1, 4)
    sizes = np.concatenate([gt[:, 2:] - gt[:, :2]] * 3)
    jitter = np.concatenate([gt] * 3) + rng.normal(0, 0.08, (3 * len(gt), 4)) * np.tile(sizes, 2)
    xy = rng.uniform(0, [width * 0.7, height * 0.7], (random_boxes, 2))
    wh = rng.uniform(6, [width * 0.5, height * 0.5], (random_boxes, 2))
    boxes = np.concatenate([jitter, np.concatenate([xy, xy + wh], 1)])
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    boxes = boxes[(boxes[:, 2] - boxes[:, 0] > 2) & (boxes[:, 3] - boxes[:, 1] > 2)]
    return torch.tensor(boxes, dtype=torch.float32)


class WithProposals(torch.utils.data.Dataset):
    """A detcore dataset whose targets also hold "proposals" (the contract of
    datasets with a proposal source)."""

    def __init__(self, dataset, drop: bool = False):
        self.dataset, self.drop = dataset, drop
        self.class_names = dataset.class_names
        self.image_infos = dataset.image_infos

    @property
    def num_classes(self):
        return self.dataset.num_classes

    def aspect_ratios(self):
        return self.dataset.aspect_ratios()

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        image, target = self.dataset[index]
        if not self.drop:
            target = dict(target)
            target["proposals"] = proposals_for_target(target, image.shape[1], image.shape[2], seed=index)
        return image, target


def tiny_synthetic(root: str, num_train: int = 4, num_val: int = 2):
    from detcore.data import CocoDetection, SyntheticSpec, make_synthetic_dataset

    spec = SyntheticSpec(num_train=num_train, num_val=num_val, classes=("circle", "square"), image_size=(64, 80),
                         objects_per_image=(1, 2), object_size=(20, 40))
    paths = make_synthetic_dataset(root, spec)
    train = CocoDetection(*paths["train"], remove_empty=True, skip_crowd=True, masks=False, keypoints=False)
    val = CocoDetection(*paths["val"], masks=False, keypoints=False)
    return train, val
