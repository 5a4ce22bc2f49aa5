"""The COCO and VOC readers on files the tests write."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from detcore.data import CocoDetection, DatasetError, VOCDetection, build_dataset, coco_from_dataset

H, W = 20, 30


def _write_image(path, h=H, w=W, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def _coco(tmp_path, annotations=None, categories=None, images=None):
    img_dir = tmp_path / "img"
    img_dir.mkdir(exist_ok=True)
    _write_image(img_dir / "a.png")
    _write_image(img_dir / "b.png", seed=1)
    box_mask = np.zeros((H, W), np.uint8)
    box_mask[5:15, 10:25] = 1
    compressed = mask_utils.encode(np.asfortranarray(box_mask))
    data = {
        "images": images or [{"id": 7, "file_name": "a.png", "height": H, "width": W},
                             {"id": 9, "file_name": "b.png", "height": H, "width": W}],
        "categories": categories or [{"id": 5, "name": "cat", "keypoints": ["left_eye", "right_eye", "nose"]},
                                     {"id": 2, "name": "dog", "keypoints": ["left_eye", "right_eye", "nose"]}],
        "annotations": annotations if annotations is not None else [
            {"id": 1, "image_id": 7, "category_id": 5, "bbox": [2, 3, 10, 6], "area": 40, "iscrowd": 0,
             "segmentation": [[2, 3, 12, 3, 12, 9, 2, 9]],
             "keypoints": [3, 4, 2, 10, 4, 2, 6, 7, 1], "num_keypoints": 3},
            {"id": 2, "image_id": 7, "category_id": 2, "bbox": [10, 5, 15, 10], "area": 150, "iscrowd": 0,
             "segmentation": {"size": [H, W], "counts": compressed["counts"].decode("ascii")}},
            {"id": 3, "image_id": 7, "category_id": 2, "bbox": [0, 0, 4, 4], "area": 16, "iscrowd": 1,
             "segmentation": {"size": [H, W], "counts": [0, 4, 16, 4, 16, 4, 16, 4, 536]}},
            {"id": 4, "image_id": 7, "category_id": 5, "bbox": [25, 15, 10, 10], "area": 25, "iscrowd": 0},
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return str(path), str(img_dir), box_mask


def test_coco_targets(tmp_path):
    ann, img_dir, box_mask = _coco(tmp_path)
    ds = CocoDetection(ann, img_dir)
    assert len(ds) == 2 and ds.class_names == ["__background__", "dog", "cat"]  # sorted by category id
    assert ds.cat_id_to_label == {2: 1, 5: 2}
    image, t = ds[0]
    assert image.shape == (3, H, W) and str(image.dtype) == "torch.float32" and float(image.max()) <= 1.0
    assert t["image_id"] == 7 and t["orig_size"] == (H, W)
    np.testing.assert_allclose(t["boxes"].numpy(), [[2, 3, 12, 9], [10, 5, 25, 15], [0, 0, 4, 4], [25, 15, 30, 20]])
    assert t["labels"].tolist() == [2, 1, 1, 2]
    assert t["iscrowd"].tolist() == [0, 0, 1, 0]
    masks = t["masks"].numpy()
    assert masks.shape == (4, H, W) and masks.dtype == np.uint8
    poly = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([[2, 3, 12, 3, 12, 9, 2, 9]], H, W)))
    np.testing.assert_array_equal(masks[0], poly)
    np.testing.assert_array_equal(masks[1], box_mask)
    assert masks[2].sum() == 16 and masks[2][:4, :4].all()  # uncompressed RLE (column-major runs)
    assert masks[3].sum() == 0  # no segmentation
    np.testing.assert_allclose(t["keypoints"][0].numpy(), [[3, 4, 2], [10, 4, 2], [6, 7, 1]])
    assert t["keypoints"][1].abs().sum() == 0
    assert ds.keypoint_flip_map() == [1, 0, 2]


def test_training_options_drop_crowds_and_empty_images(tmp_path):
    ann, img_dir, _ = _coco(tmp_path)
    ds = CocoDetection(ann, img_dir, remove_empty=True, skip_crowd=True)
    assert len(ds) == 1  # image 9 has no annotation
    assert ds[0][1]["iscrowd"].tolist() == [0, 0, 0]
    assert ds.aspect_ratios() == [W / H]


def test_coco_gt_object_for_other_datasets(tmp_path):
    ann, img_dir, _ = _coco(tmp_path)
    ds = CocoDetection(ann, img_dir)
    assert coco_from_dataset(ds).getAnnIds() == [1, 2, 3, 4]


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("images"), "'images'"),
    (lambda d: d["annotations"][0].pop("bbox"), "lacks"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "bbox"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, float("nan"), 3]), "non-finite"),
    (lambda d: d["annotations"][0].update(category_id=99), "category_id 99"),
    (lambda d: d["annotations"][0].update(image_id=99), "image_id"),
    (lambda d: d["images"][0].pop("height"), "lacks"),
])
def test_malformed_coco_files(tmp_path, mutate, message):
    ann, img_dir, _ = _coco(tmp_path)
    data = json.load(open(ann))
    mutate(data)
    open(ann, "w").write(json.dumps(data))
    with pytest.raises(DatasetError, match=message):
        CocoDetection(ann, img_dir)


def test_bad_paths_and_contents(tmp_path):
    ann, img_dir, _ = _coco(tmp_path)
    with pytest.raises(DatasetError, match="annotation file not found"):
        CocoDetection(str(tmp_path / "nope.json"), img_dir)
    with pytest.raises(DatasetError, match="image folder"):
        CocoDetection(ann, str(tmp_path / "nope"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        CocoDetection(str(tmp_path / "bad.json"), img_dir)
    os.remove(os.path.join(img_dir, "b.png"))
    with pytest.raises(DatasetError, match="image file not found: 1 of 2 images are missing .*b.png"):
        CocoDetection(ann, img_dir)  # found when the dataset is opened, not when the sampler reaches it
    with pytest.raises(DatasetError, match="image file not found"):
        CocoDetection(ann, img_dir, check_images=False)[1]
    _write_image(os.path.join(img_dir, "b.png"), seed=1)
    data = json.load(open(ann))
    data["annotations"][1]["segmentation"] = {"size": [5, 5], "counts": "abc"}
    open(ann, "w").write(json.dumps(data))
    with pytest.raises(DatasetError, match="malformed segmentation"):
        CocoDetection(ann, img_dir)[0]
    with pytest.raises(DatasetError, match="unknown dataset spec"):
        build_dataset("imagenet", train=True, cache_dir=str(tmp_path))


def _voc(tmp_path, objects, split_ids=("x1", "x2")):
    root = tmp_path / "voc"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id in ("x1", "x2"):
        _write_image(root / "JPEGImages" / f"{image_id}.jpg")
        objs = "".join(
            f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
            f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for n, d, b in objects[image_id])
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{image_id}.jpg</filename><size><width>{W}</width><height>{H}</height>"
            f"<depth>3</depth></size>{objs}</annotation>")
    (root / "ImageSets/Main/trainval.txt").write_text("\n".join(split_ids) + "\n")
    return str(root)


def test_voc_targets(tmp_path):
    root = _voc(tmp_path, {"x1": [("dog", 0, (1, 2, 10, 12)), ("cat", 1, (5, 5, 20, 18))],
                           "x2": [("dog", 1, (3, 3, 8, 8))]})
    ds = VOCDetection(root, "trainval", classes=None)
    assert ds.class_names == ["__background__", "cat", "dog"]
    image, t = ds[0]
    assert image.shape == (3, H, W)
    np.testing.assert_allclose(t["boxes"].numpy(), [[0, 1, 10, 12], [4, 4, 20, 18]])  # 1-based -> 0-based edges
    assert t["labels"].tolist() == [2, 1] and t["difficult"].tolist() == [False, True]
    train = VOCDetection(root, "trainval", classes=None, use_difficult=False, remove_empty=True)
    assert len(train) == 1 and train[0][1]["labels"].tolist() == [2]
    full = VOCDetection(root, "trainval", classes=("cat", "dog", "bird"))
    assert full.num_classes == 4


def test_voc_errors(tmp_path):
    root = _voc(tmp_path, {"x1": [("dog", 0, (1, 2, 10, 12))], "x2": [("zebra", 0, (1, 1, 5, 5))]})
    with pytest.raises(DatasetError, match="unknown class 'zebra'"):
        VOCDetection(root, "trainval", classes=("dog",))
    with pytest.raises(DatasetError, match="VOC folder"):
        VOCDetection(str(tmp_path / "missing"))
    (tmp_path / "voc/Annotations/x2.xml").write_text("<annotation><size>")
    with pytest.raises(DatasetError, match="not valid XML"):
        VOCDetection(root, "trainval", classes=None)
    (tmp_path / "voc/Annotations/x2.xml").write_text("<annotation><object><name>dog</name></object></annotation>")
    with pytest.raises(DatasetError, match="malformed VOC annotation"):
        VOCDetection(root, "trainval", classes=None)
    (tmp_path / "voc/ImageSets/Main/trainval.txt").write_text("x3\n")
    with pytest.raises(DatasetError, match="x3.xml"):
        VOCDetection(root, "trainval", classes=None)
