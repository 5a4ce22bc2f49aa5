"""The harder synthetic shapes (``synthetic-hard``): several scales, thin bars and
rings, clutter of no class, occlusion."""

import dataclasses
import filecmp
import json
import os

import numpy as np
import pytest

from detcore.data import CocoDetection, DatasetError, SyntheticSpec, build_dataset, make_synthetic_dataset
from detcore.data.synthetic import HARD, _background, render_image

FEW = dataclasses.replace(HARD, num_train=6, num_val=2, seed=11)


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def _rendered(spec, count, seed=5):
    return [render_image(np.random.default_rng([seed, i]), spec) for i in range(count)]


def test_same_seed_gives_identical_files_and_another_seed_others(tmp_path):
    make_synthetic_dataset(str(tmp_path / "a"), FEW)
    make_synthetic_dataset(str(tmp_path / "b"), FEW)
    files = _files(tmp_path / "a")
    assert files == _files(tmp_path / "b") and len(files) == 6 + 2 + 3
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", files, shallow=False)
    assert not mismatch and not errors
    make_synthetic_dataset(str(tmp_path / "c"), dataclasses.replace(FEW, seed=12))
    assert not filecmp.cmp(tmp_path / "a/images/train_00000.png", tmp_path / "c/images/train_00000.png",
                           shallow=False)


def test_plain_stamp_keeps_its_old_keys(tmp_path):
    # the plain dataset's stamp names no field added for the hard one, so old caches stay valid
    make_synthetic_dataset(str(tmp_path / "plain"), SyntheticSpec(num_train=1, num_val=1, image_size=(48, 64),
                                                                  object_size=(12, 30)))
    make_synthetic_dataset(str(tmp_path / "hard"), dataclasses.replace(FEW, num_train=1, num_val=1))
    plain = json.load(open(tmp_path / "plain/spec.json"))
    hard = json.load(open(tmp_path / "hard/spec.json"))
    assert "size_sampling" not in plain and "distractors" not in plain
    assert hard["size_sampling"] == "log" and hard["distractors"] == [3, 8]


def test_spec_parsing(tmp_path):
    ds = build_dataset("synthetic-hard:3:2", train=False, cache_dir=str(tmp_path))
    assert ds.class_names == ["__background__", "circle", "triangle", "square", "bar", "ring"]
    assert len(ds) == 2 and os.path.dirname(ds.image_dir) == str(tmp_path / "synthetic-hard")
    train = json.load(open(tmp_path / "synthetic-hard/annotations/train.json"))
    assert len(train["images"]) == 3
    assert json.load(open(tmp_path / "synthetic-hard/spec.json"))["image_size"] == [160, 224]
    for bad in ("synthetic-hard:0", "synthetic-hard:a:2", "synthetic-hard:1:2:3", "synthetic-harder"):
        with pytest.raises(DatasetError, match="synthetic"):
            build_dataset(bad, train=True, cache_dir=str(tmp_path))


def test_objects_span_the_scales():
    sizes = []
    for image, instances in _rendered(HARD, 20):
        assert 160 <= image.shape[0] <= 224 and 160 <= image.shape[1] <= 224
        for inst in instances:
            extent = inst["polygon"].max(0) - inst["polygon"].min(0)
            sizes.append(float(extent.max()))
    sizes = np.array(sizes)
    assert len(sizes) >= 20 * 3 * 0.6  # 3-8 objects drawn per image, a few hidden
    assert sizes.min() < 16 and sizes.max() > 64
    # log-uniform: about as many objects below 28 px (the geometric middle) as above
    assert 0.25 < np.mean(sizes < np.sqrt(8 * 96)) < 0.75


def test_thin_shapes_are_thin():
    bars, rings = 0, 0
    for _, instances in _rendered(HARD, 20):
        for inst in instances:
            name = HARD.classes[inst["class_index"]]
            ys, xs = np.nonzero(inst["mask"])
            if name == "bar" and not inst["occluded"] and len(xs) > 60:
                # a rectangle L x W has coordinate variances L^2/12 and W^2/12
                eig = np.linalg.eigvalsh(np.cov(np.stack([xs, ys]).astype(np.float64)))
                assert np.sqrt(eig[1] / eig[0]) > 3.5
                bars += 1
            if name == "ring":
                centre = inst["polygon"].mean(0)
                radius = np.abs(inst["polygon"] - centre).max()
                assert not inst["mask"][int(centre[1]), int(centre[0])]  # the hole
                assert inst["mask"].sum() < 0.8 * np.pi * radius ** 2
                assert inst["occluded"]  # rings are always stored as RLE
                rings += 1
    assert bars > 0 and rings > 0


def test_clutter_is_drawn_and_not_annotated():
    one = dataclasses.replace(HARD, objects_per_image=(1, 1))
    for distractors, expect_clutter in (((4, 4), True), ((0, 0), False)):
        spec = dataclasses.replace(one, distractors=distractors)
        outside = []
        for i in range(6):
            rng = np.random.default_rng([9, i])
            height, width = (int(rng.integers(spec.image_size[0], spec.image_size[1] + 1)) for _ in range(2))
            background = np.clip(_background(rng, height, width), 0, 255).astype(np.uint8)
            image, instances = render_image(np.random.default_rng([9, i]), spec)
            annotated = np.zeros(image.shape[:2], dtype=bool)
            for inst in instances:
                annotated |= inst["mask"]
            changed = (image != background).any(-1)
            outside.append(int((changed & ~annotated).sum()))
        assert (max(outside) > 50) == expect_clutter, outside


def test_boxes_masks_and_keypoints_agree(tmp_path):
    paths = make_synthetic_dataset(str(tmp_path), FEW)
    raw = json.load(open(paths["train"][0]))
    ds = CocoDetection(*paths["train"])
    total, occluded = 0, 0
    for i in range(len(ds)):
        _, t = ds[i]
        for box, mask, kps in zip(t["boxes"], t["masks"], t["keypoints"]):
            ys, xs = np.nonzero(mask.numpy())
            np.testing.assert_allclose(box.numpy(), [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            assert kps.shape == (4, 3) and set(kps[:, 2].tolist()) <= {1.0, 2.0}
            occluded += int((kps[:, 2] == 1).any())
            total += 1
    assert total == len(raw["annotations"]) >= 6 * 3 * 0.6
    assert occluded > 0
    kinds = {type(a["segmentation"]).__name__ for a in raw["annotations"]}
    assert kinds == {"list", "dict"}


@pytest.mark.parametrize("change, message", [
    ({"size_sampling": "cubic"}, "size_sampling"),
    ({"distractors": (3, 1)}, "distractors"),
    ({"classes": ("bar", "hexagon")}, "classes"),
])
def test_bad_hard_spec(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_dataset(str(tmp_path), dataclasses.replace(FEW, **change))
