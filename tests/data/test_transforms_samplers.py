import numpy as np
import pytest
import torch

from detcore.data import (ColorJitter, Compose, RandomHorizontalFlip, Resize, SeededDataset, ShardedIndices,
                          TrainingBatchSampler, aspect_group, collate)


def _sample(rng, h=12, w=17, n=3, k=4):
    image = torch.from_numpy(rng.uniform(0, 1, (3, h, w)).astype(np.float32))
    x1 = rng.uniform(0, w / 2, n)
    y1 = rng.uniform(0, h / 2, n)
    boxes = np.stack([x1, y1, x1 + rng.uniform(1, w / 2, n), y1 + rng.uniform(1, h / 2, n)], 1)
    masks = (rng.uniform(size=(n, h, w)) > 0.5).astype(np.uint8)
    kps = np.concatenate([rng.uniform(0, w, (n, k, 1)), rng.uniform(0, h, (n, k, 1)), np.full((n, k, 1), 2.0)], 2)
    return image, {"boxes": torch.tensor(boxes, dtype=torch.float32), "masks": torch.from_numpy(masks),
                   "keypoints": torch.tensor(kps, dtype=torch.float32), "labels": torch.arange(1, n + 1)}


def test_flip_matches_a_numpy_reference_and_is_an_involution(rng):
    image, target = _sample(rng)
    original = {k: v.clone() for k, v in target.items()}
    flip = RandomHorizontalFlip(1.0, keypoint_flip_map=[0, 3, 2, 1])
    out_image, out = flip(image, target)
    w = image.shape[-1]
    np.testing.assert_array_equal(out_image.numpy(), image.numpy()[:, :, ::-1])
    b = original["boxes"].numpy()
    np.testing.assert_allclose(out["boxes"].numpy(), np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], 1))
    np.testing.assert_array_equal(out["masks"].numpy(), original["masks"].numpy()[:, :, ::-1])
    kp = original["keypoints"].numpy()[:, [0, 3, 2, 1]].copy()
    kp[..., 0] = w - kp[..., 0]
    np.testing.assert_allclose(out["keypoints"].numpy(), kp)
    for key in original:  # nothing mutated in place
        assert torch.equal(target[key], original[key])
    back_image, back = flip(out_image, out)
    assert torch.equal(back_image, image)
    for key in ("boxes", "masks", "keypoints"):
        torch.testing.assert_close(back[key], original[key])
    assert RandomHorizontalFlip(0.0)(image, target)[1] is target


def test_resize_scales_everything(rng):
    image, target = _sample(rng, h=10, w=20)
    out_image, out = Resize(20, 100)(image, target)
    assert out_image.shape == (3, 20, 40)
    torch.testing.assert_close(out["boxes"], target["boxes"] * 2)
    torch.testing.assert_close(out["keypoints"][..., :2], target["keypoints"][..., :2] * 2)
    assert out["masks"].shape == (3, 20, 40) and out["masks"].dtype == torch.uint8
    np.testing.assert_array_equal(out["masks"][:, ::2, ::2].numpy(), target["masks"].numpy())
    # the long side is capped by max_size
    assert Resize(20, 30)(image, target)[0].shape == (3, 15, 30)


def test_jitter_and_randomness_follow_the_generator(rng):
    image, target = _sample(rng)
    pipeline = Compose([RandomHorizontalFlip(0.5), ColorJitter(0.4, 0.4, 0.4), Resize((8, 10, 12), 100)])
    runs = [pipeline(image, target, torch.Generator().manual_seed(s)) for s in (5, 5, 6, 7, 8, 9)]
    assert torch.equal(runs[0][0], runs[1][0])
    assert any(r[0].shape != runs[0][0].shape or not torch.equal(r[0], runs[0][0]) for r in runs[2:])
    assert all(float(r[0].min()) >= 0 and float(r[0].max()) <= 1 for r in runs)
    with pytest.raises(ValueError, match="brightness"):
        ColorJitter(brightness=1.5)
    with pytest.raises(ValueError, match="prob"):
        RandomHorizontalFlip(2.0)


def test_batches_share_an_aspect_group_and_cover_the_epoch(rng):
    ratios = rng.uniform(0.5, 2.0, 37).tolist()
    groups = aspect_group(ratios)
    sampler = TrainingBatchSampler(ratios, 4, seed=1)
    batches = []
    for batch in sampler.global_batches():
        batches.append(batch)
        if len(batches) == 8:
            break
    for batch in batches:
        assert len(batch) == 4 and len({int(groups[i]) for i in batch}) == 1
    first = [i for b in batches[:6] for i in b]  # 24 of 37 images: no repeats within the first epoch
    assert len(set(first)) == len(first)


def test_resume_and_sharding_see_the_same_stream(rng):
    ratios = rng.uniform(0.5, 2.0, 23).tolist()

    def take(sampler, n):
        out, it = [], iter(sampler)
        for _ in range(n):
            out.append(next(it))
        return out

    full = take(TrainingBatchSampler(ratios, 4, seed=3), 12)
    assert take(TrainingBatchSampler(ratios, 4, seed=3, start_iter=7), 5) == full[7:]
    ranks = [take(TrainingBatchSampler(ratios, 4, seed=3, rank=r, world_size=2), 12) for r in range(2)]
    for it in range(12):
        assert ranks[0][it] + ranks[1][it] == full[it]
    assert take(TrainingBatchSampler(ratios, 4, seed=4), 12) != full
    with pytest.raises(ValueError, match="multiple"):
        TrainingBatchSampler(ratios, 3, world_size=2)


def test_seeded_dataset_collate_and_shards(rng):
    samples = [_sample(rng) for _ in range(3)]
    ds = SeededDataset(samples, RandomHorizontalFlip(0.5))
    a, b = ds[(1, 123)], ds[(1, 123)]
    assert torch.equal(a[0], b[0])
    images, targets = collate([a, ds[(2, 5)]])
    assert len(images) == 2 and len(targets) == 2 and isinstance(images, list)
    assert sorted(list(ShardedIndices(7, 0, 2)) + list(ShardedIndices(7, 1, 2))) == list(range(7))
