import filecmp
import json
import os

import numpy as np
import pytest

from detcore.data import CocoDetection, SyntheticSpec, make_synthetic_dataset

SMALL = SyntheticSpec(num_train=6, num_val=2, image_size=(48, 64), object_size=(12, 30), seed=3)


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_same_seed_gives_identical_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_synthetic_dataset(str(a), SMALL)
    make_synthetic_dataset(str(b), SMALL)
    files = _files(a)
    assert files == _files(b) and len(files) == 6 + 2 + 3
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors


def test_another_seed_gives_other_images(tmp_path):
    make_synthetic_dataset(str(tmp_path / "a"), SMALL)
    other = SyntheticSpec(**{**SMALL.__dict__, "seed": 4})
    make_synthetic_dataset(str(tmp_path / "b"), other)
    assert not filecmp.cmp(tmp_path / "a/images/train_00000.png", tmp_path / "b/images/train_00000.png", shallow=False)


def test_annotations_describe_the_visible_shapes(tmp_path):
    paths = make_synthetic_dataset(str(tmp_path), SMALL)
    raw = json.load(open(paths["train"][0]))
    kinds = {type(a["segmentation"]).__name__ for a in raw["annotations"]}
    ds = CocoDetection(*paths["train"])
    assert ds.class_names == ["__background__", "circle", "triangle", "square"]
    assert ds.keypoint_names == ["top", "right", "bottom", "left"]
    assert ds.keypoint_flip_map() == [0, 3, 2, 1]
    total = 0
    for i in range(len(ds)):
        image, t = ds[i]
        h, w = image.shape[-2:]
        assert 48 <= h <= 64 and 48 <= w <= 64
        for box, mask, kps in zip(t["boxes"], t["masks"], t["keypoints"]):
            ys, xs = np.nonzero(mask.numpy())
            # the box is the visible mask's extent (pixel edges)
            np.testing.assert_allclose(box.numpy(), [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            inside = (kps[:, 0] >= box[0] - 1) & (kps[:, 0] <= box[2] + 1)
            assert bool(inside.all()) or bool((kps[:, 2] == 1).any())  # occluded extremes may lie outside
            assert set(kps[:, 2].tolist()) <= {1.0, 2.0}
            total += 1
    assert total == len(raw["annotations"]) > 0
    assert "list" in kinds  # unoccluded shapes are polygons


def test_rewrites_only_when_the_spec_changes(tmp_path):
    make_synthetic_dataset(str(tmp_path), SMALL)
    stamp = os.path.getmtime(tmp_path / "annotations/train.json")
    make_synthetic_dataset(str(tmp_path), SMALL)
    assert os.path.getmtime(tmp_path / "annotations/train.json") == stamp
    make_synthetic_dataset(str(tmp_path), SyntheticSpec(**{**SMALL.__dict__, "num_train": 3}))
    assert len(json.load(open(tmp_path / "annotations/train.json"))["images"]) == 3


@pytest.mark.parametrize("change, message", [
    ({"classes": ("hexagon",)}, "classes"),
    ({"image_size": (64, 32)}, "image_size"),
    ({"object_size": (10, 80)}, "object_size"),
])
def test_bad_spec(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_dataset(str(tmp_path), SyntheticSpec(**{**SMALL.__dict__, **change}))
