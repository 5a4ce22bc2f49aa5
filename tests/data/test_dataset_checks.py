"""Datasets are checked when opened: the VOC split file, the classes of a
custom VOC folder, every image file (and with check_data its header), and the
boxes clipped to the image or dropped are counted."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from detcore.data import CocoDetection, DatasetError, VOCDetection, build_dataset

H, W = 20, 30


def _voc(root, objects, splits=("trainval",)):
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id, objs in objects.items():
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        xml = "".join(f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                      f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for n, b in objs)
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{image_id}.jpg</filename><size><width>{W}</width><height>{H}</height></size>"
            f"{xml}</annotation>")
    for split in splits:
        (root / "ImageSets/Main" / f"{split}.txt").write_text("\n".join(objects) + "\n")
    return str(root)


def test_a_missing_voc_split_names_the_file_and_the_splits_there(tmp_path):
    root = _voc(tmp_path / "voc", {"a": [("dog", (1, 1, 9, 9))]}, splits=("train", "val"))
    with pytest.raises(DatasetError, match=r"trainval\.txt \(the splits there are: train, val\)"):
        VOCDetection(root, "trainval")
    with pytest.raises(DatasetError, match=r"tset\.txt"):
        build_dataset(f"voc:{root}:tset", train=False, cache_dir=str(tmp_path))
    os.remove(tmp_path / "voc/ImageSets/Main/train.txt")
    os.remove(tmp_path / "voc/ImageSets/Main/val.txt")
    with pytest.raises(DatasetError, match="holds no split file"):
        VOCDetection(root, "trainval")


def test_custom_voc_classes_from_the_annotations_or_the_spec(tmp_path):
    root = _voc(tmp_path / "voc", {"a": [("widget", (1, 1, 9, 9)), ("gadget", (3, 3, 12, 12))],
                                   "b": [("widget", (2, 2, 8, 8))]})
    ds = build_dataset(f"voc:{root}", train=True, cache_dir=str(tmp_path))
    assert ds.class_names == ["__background__", "gadget", "widget"]
    ds = build_dataset(f"voc:{root}:trainval:classes=widget,gadget,sprocket", train=True, cache_dir=str(tmp_path))
    assert ds.class_names == ["__background__", "widget", "gadget", "sprocket"]
    assert ds.load_target(0)["labels"].tolist() == [1, 2]
    with pytest.raises(DatasetError, match="unknown class 'gadget'"):
        build_dataset(f"voc:{root}:classes=widget", train=True, cache_dir=str(tmp_path))
    # a checkpoint's classes (eval) apply when the spec names none
    ds = build_dataset(f"voc:{root}:trainval", train=False, cache_dir=str(tmp_path), classes=["widget", "gadget"])
    assert ds.class_names[1:] == ["widget", "gadget"]


def test_every_image_is_checked_when_the_dataset_is_opened(tmp_path):
    root = _voc(tmp_path / "voc", {"a": [("dog", (1, 1, 9, 9))], "b": [("dog", (1, 1, 9, 9))]})
    os.remove(tmp_path / "voc/JPEGImages/b.jpg")
    with pytest.raises(DatasetError, match=r"image file not found: 1 of 2 images are missing \(.*b\.jpg\)"):
        VOCDetection(root, "trainval")
    (tmp_path / "voc/JPEGImages/b.jpg").write_bytes(b"not an image")
    ds = build_dataset(f"voc:{root}", train=True, cache_dir=str(tmp_path))  # exists: enough without check_data
    assert len(ds) == 2
    with pytest.raises(DatasetError, match=r"cannot read image .*b\.jpg"):
        build_dataset(f"voc:{root}", train=True, cache_dir=str(tmp_path), check_data=True)
    Image.fromarray(np.zeros((H + 1, W, 3), np.uint8)).save(tmp_path / "voc/JPEGImages/b.jpg", format="JPEG")
    with pytest.raises(DatasetError, match=r"b\.jpg: the file is 30x21 but the annotations say 30x20"):
        build_dataset(f"voc:{root}", train=True, cache_dir=str(tmp_path), check_data=True)


def test_clipped_and_dropped_boxes_are_counted(tmp_path):
    # VOC: 1-based pixel indices; (1, 1, 40, 9) leaves the 30-px-wide image, (25, 5, 23, 9) ends before it starts
    root = _voc(tmp_path / "voc", {"a": [("dog", (1, 1, 40, 9)), ("dog", (25, 5, 23, 9)), ("dog", (2, 2, 8, 8))]})
    ds = VOCDetection(root, "trainval")
    assert ds.annotation_counts == {"instances": 2, "clipped": 1, "dropped": 1}
    np.testing.assert_allclose(ds.load_target(0)["boxes"].numpy(), [[0, 0, W, 9], [1, 1, 8, 8]])
    assert "2 instances; 1 boxes clipped to the image, 1 dropped (zero or negative size)" in ds.summary()

    img_dir = tmp_path / "img"
    img_dir.mkdir()
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(img_dir / "a.png")
    anns = [[-3, 2, 10, 5], [5, 5, 0, 4], [40, 2, 5, 5], [2, 2, 5, 5], [20, 10, 20, 20]]
    coco = {"images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}],
            "categories": [{"id": 4, "name": "thing"}],
            "annotations": [{"id": i + 1, "image_id": 1, "category_id": 4, "bbox": b, "iscrowd": 0}
                            for i, b in enumerate(anns)]}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    ds = CocoDetection(str(tmp_path / "ann.json"), str(img_dir))
    # [-3, 2, 10, 5] and [20, 10, 20, 20] are clipped; zero width and outside the image are dropped
    assert ds.annotation_counts == {"instances": 3, "clipped": 2, "dropped": 2}
    assert len(ds[0][1]["boxes"]) == 3


def test_train_prints_one_line_per_dataset_and_sizes_the_head_from_it(tmp_path, capsys):
    pytest.importorskip("detcore.models")
    from detcore import cli
    from detcore.engine import read_checkpoint

    root = _voc(tmp_path / "voc", {"a": [("widget", (1, 1, 40, 9)), ("gadget", (3, 3, 12, 12))],
                                   "b": [("widget", (2, 2, 8, 8))]})
    import torch

    import detcore

    threads = torch.get_num_threads(), detcore.num_threads()
    try:
        assert cli.main(["train", "--model", "faster_rcnn_r50_fpn", "--data", f"voc:{root}", "--val-data",
                         f"voc:{root}:trainval", "-o", str(tmp_path / "out"), "max_iter=1", "images_per_batch=1",
                         "tensorboard=false", "model.base_width=8", "model.blocks=(1,1,1,1)", "model.fpn_channels=16",
                         "model.representation_size=32", "model.min_size=32", "model.max_size=48",
                         "model.rpn_pre_nms_top_n={'training': 50, 'testing': 20}",
                         "model.rpn_post_nms_top_n={'training': 20, 'testing': 10}"]) == 0
    finally:
        torch.set_num_threads(threads[0])
        detcore.set_num_threads(threads[1])
    out = capsys.readouterr().out
    assert f"data voc:{root}: 2 images, 2 classes, 3 instances; 1 boxes clipped to the image, 0 dropped" in out
    assert f"val-data voc:{root}:trainval: 2 images, 2 classes" in out
    meta = read_checkpoint(str(tmp_path / "out/model_final.pth"))["meta"]
    assert meta["num_classes"] == 3 and meta["class_names"] == ["__background__", "gadget", "widget"]
