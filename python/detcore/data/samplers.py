"""Batching: aspect-ratio grouped, seeded, resumable and sharded across processes.

Training follows the Fast R-CNN hierarchical sampling: a mini-batch is N
images (``images_per_batch``, summed over all processes), and the RoI heads
then sample R/N RoIs from each image (the models' ``box_batch_size_per_image``).
Sampling few images and many RoIs per image shares the convolutional work
between the RoIs of an image.

:class:`TrainingBatchSampler` is an infinite stream of global batches, a pure
function of ``(seed, iteration)``: a resumed run starts at its iteration and
sees exactly the batches (and per-sample augmentation seeds) of an
uninterrupted one, and each process takes its slice of every global batch, so
N processes see the same images as one process with the same global batch.
"""

from __future__ import annotations

from typing import Iterator, List, Sequence, Tuple

import numpy as np
import torch


def aspect_group(aspect_ratios: Sequence[float]) -> np.ndarray:
    """0 for wide images (w >= h), 1 for tall ones: images of a batch share a
    group, so padding them to a common size wastes little."""
    return (np.asarray(aspect_ratios, dtype=np.float64) < 1.0).astype(np.int64)


class TrainingBatchSampler(torch.utils.data.Sampler):
    """Yields, per iteration from ``start_iter`` on, this process's list of
    ``(dataset_index, sample_seed)`` pairs."""

    def __init__(self, aspect_ratios: Sequence[float], images_per_batch: int, *, seed: int = 0,
                 rank: int = 0, world_size: int = 1, start_iter: int = 0, group_by_aspect_ratio: bool = True):
        if len(aspect_ratios) == 0:
            raise ValueError("TrainingBatchSampler: the dataset is empty")
        if images_per_batch <= 0 or images_per_batch % world_size:
            raise ValueError(f"images_per_batch ({images_per_batch}) must be a positive multiple of the "
                             f"number of processes ({world_size})")
        self.groups = aspect_group(aspect_ratios) if group_by_aspect_ratio else np.zeros(len(aspect_ratios), np.int64)
        self.images_per_batch, self.seed = images_per_batch, seed
        self.rank, self.world_size, self.start_iter = rank, world_size, start_iter

    def global_batches(self) -> Iterator[List[int]]:
        """Every global batch from iteration 0: images are taken in a fresh
        permutation per epoch and batched within their aspect group; a
        group's leftovers carry into the next epoch."""
        buckets = {int(g): [] for g in np.unique(self.groups)}
        epoch = 0
        while True:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.groups))
            for index in order.tolist():
                bucket = buckets[int(self.groups[index])]
                bucket.append(index)
                if len(bucket) == self.images_per_batch:
                    yield list(bucket)
                    bucket.clear()
            epoch += 1

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        per_rank = self.images_per_batch // self.world_size
        for iteration, batch in enumerate(self.global_batches()):
            if iteration < self.start_iter:
                continue
            lo = self.rank * per_rank
            yield [(index, sample_seed(self.seed, iteration, lo + j)) for j, index in enumerate(batch[lo:lo + per_rank])]


def sample_seed(seed: int, iteration: int, position: int) -> int:
    return int(np.random.default_rng([seed, iteration, position, 7]).integers(2**62))


class SeededDataset(torch.utils.data.Dataset):
    """Wraps a dataset for training: ``item = (index, seed)`` loads the image
    and runs ``transforms`` with a generator seeded by ``seed``."""

    def __init__(self, dataset, transforms=None):
        self.dataset, self.transforms = dataset, transforms

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        index, seed = item
        image, target = self.dataset[index]
        if self.transforms is not None:
            generator = torch.Generator().manual_seed(seed)
            image, target = self.transforms(image, target, generator)
        return image, target


class ShardedIndices(torch.utils.data.Sampler):
    """Evaluation: process ``rank`` takes indices rank, rank + world_size, ..."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, length, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def collate(batch):
    """A list of (image, target) -> (list of images, list of targets): detection
    images differ in size, and the detectors batch (pad) them themselves."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)
