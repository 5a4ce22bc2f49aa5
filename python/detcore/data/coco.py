"""COCO-json datasets: boxes, polygon / RLE masks, keypoints, iscrowd."""

from __future__ import annotations

import contextlib
import io
import json
import os
import numpy as np
import torch

from .base import DatasetError, DetectionDataset, load_image, require_dir, require_file


class CocoDetection(DetectionDataset):
    """Images and instances of a COCO-format annotation file.

    Category ids are mapped to contiguous labels 1..C in increasing id order
    (``cat_id_to_label`` / ``label_to_cat_id``). ``remove_empty`` drops images
    without a usable instance (for training); ``skip_crowd`` drops crowd
    instances from the targets (for training; the evaluator reads them from
    the annotation file).
    """

    def __init__(self, annotation_file: str, image_dir: str, transforms=None, *, masks: bool = True,
                 keypoints: bool = True, remove_empty: bool = False, skip_crowd: bool = False):
        super().__init__(transforms)
        require_file(annotation_file, "COCO annotation file")
        require_dir(image_dir, "image folder")
        self.annotation_file, self.image_dir = annotation_file, image_dir
        self.with_masks, self.skip_crowd = masks, skip_crowd
        try:
            with open(annotation_file) as f:
                self.dataset = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"{annotation_file} is not valid JSON: {e}") from e
        _validate(self.dataset, annotation_file)

        categories = sorted(self.dataset["categories"], key=lambda c: c["id"])
        self.cat_id_to_label = {c["id"]: i + 1 for i, c in enumerate(categories)}
        self.label_to_cat_id = {label: cat for cat, label in self.cat_id_to_label.items()}
        self.class_names = ["__background__"] + [str(c["name"]) for c in categories]
        kp_names = [c.get("keypoints") for c in categories if c.get("keypoints")]
        self.keypoint_names = list(kp_names[0]) if kp_names and keypoints else []

        self.annotations_by_image = {img["id"]: [] for img in self.dataset["images"]}
        for ann in self.dataset["annotations"]:
            if ann["image_id"] not in self.annotations_by_image:
                raise DatasetError(f"{annotation_file}: annotation {ann.get('id')} refers to image_id "
                                   f"{ann['image_id']}, which is not in 'images'")
            if ann["category_id"] not in self.cat_id_to_label:
                raise DatasetError(f"{annotation_file}: annotation {ann.get('id')} has category_id "
                                   f"{ann['category_id']}, which is not in 'categories'")
            self.annotations_by_image[ann["image_id"]].append(ann)
        images = sorted(self.dataset["images"], key=lambda img: img["id"])
        if remove_empty:
            images = [img for img in images if any(_usable(a, skip_crowd) for a in self.annotations_by_image[img["id"]])]
        self.image_infos = images
        self._coco = None

    def coco(self):
        """The pycocotools COCO object of the annotation file (for evaluation)."""
        if self._coco is None:
            from pycocotools.coco import COCO

            coco = COCO()
            coco.dataset = self.dataset
            with contextlib.redirect_stdout(io.StringIO()):
                coco.createIndex()
            self._coco = coco
        return self._coco

    def image_path(self, index: int) -> str:
        return os.path.join(self.image_dir, self.image_infos[index]["file_name"])

    def load(self, index: int):
        info = self.image_infos[index]
        image = load_image(self.image_path(index))
        height, width = image.shape[-2:]
        if (height, width) != (info["height"], info["width"]):
            raise DatasetError(f"{info['file_name']}: the file is {width}x{height} but the annotation file says "
                               f"{info['width']}x{info['height']}")
        anns = [a for a in self.annotations_by_image[info["id"]] if _usable(a, self.skip_crowd)]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
        boxes[:, 0::2].clamp_(0, width)
        boxes[:, 1::2].clamp_(0, height)
        target = {
            "boxes": boxes,
            "labels": torch.tensor([self.cat_id_to_label[a["category_id"]] for a in anns], dtype=torch.int64),
            "iscrowd": torch.tensor([int(a.get("iscrowd", 0)) for a in anns], dtype=torch.int64),
            "area": torch.tensor([float(a.get("area", 0.0)) for a in anns], dtype=torch.float32),
        }
        if self.with_masks:
            target["masks"] = torch.from_numpy(_masks(anns, height, width, info["file_name"]))
        if self.keypoint_names:
            k = len(self.keypoint_names)
            kps = []
            for a in anns:
                values = a.get("keypoints") or [0.0] * (3 * k)
                if len(values) != 3 * k:
                    raise DatasetError(f"annotation {a.get('id')}: expected {3 * k} keypoint values, got {len(values)}")
                kps.append(values)
            target["keypoints"] = torch.tensor(kps, dtype=torch.float32).reshape(-1, k, 3)
        # Boxes that collapse after clipping carry no signal (and break the box coder).
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        target = {key: value[keep] for key, value in target.items()}
        target["image_id"] = int(info["id"])
        target["orig_size"] = (int(height), int(width))
        return image, target


def _usable(ann, skip_crowd: bool) -> bool:
    return not (skip_crowd and ann.get("iscrowd", 0)) and ann["bbox"][2] > 0 and ann["bbox"][3] > 0


def _masks(anns, height: int, width: int, file_name: str) -> np.ndarray:
    from pycocotools import mask as mask_utils

    masks = np.zeros((len(anns), height, width), dtype=np.uint8)
    for i, ann in enumerate(anns):
        seg = ann.get("segmentation")
        if not seg:
            continue  # an instance without a mask: an empty one
        try:
            if isinstance(seg, list):  # polygons
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
            elif isinstance(seg.get("counts"), list):  # uncompressed RLE
                rle = mask_utils.frPyObjects(seg, height, width)
            else:  # compressed RLE
                rle = dict(seg, counts=seg["counts"].encode("ascii") if isinstance(seg["counts"], str) else seg["counts"])
                if list(rle["size"]) != [height, width]:
                    raise ValueError(f"RLE size {rle['size']} differs from the image size {[height, width]}")
            masks[i] = mask_utils.decode(rle)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise DatasetError(f"{file_name}: annotation {ann.get('id')} has a malformed segmentation: {e}") from e
    return masks


def _validate(d, path: str) -> None:
    if not isinstance(d, dict):
        raise DatasetError(f"{path}: expected a JSON object with 'images', 'annotations' and 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(d.get(key), list):
            raise DatasetError(f"{path}: missing or non-list '{key}' (a COCO annotation file has "
                               f"'images', 'annotations' and 'categories')")
    for img in d["images"]:
        missing = [k for k in ("id", "file_name", "height", "width") if k not in img]
        if missing:
            raise DatasetError(f"{path}: image entry {img.get('id', img)} lacks {missing}")
    for cat in d["categories"]:
        if "id" not in cat or "name" not in cat:
            raise DatasetError(f"{path}: category entry {cat} lacks 'id' or 'name'")
    for ann in d["annotations"]:
        missing = [k for k in ("image_id", "category_id", "bbox") if k not in ann]
        if missing:
            raise DatasetError(f"{path}: annotation {ann.get('id')} lacks {missing}")
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            raise DatasetError(f"{path}: annotation {ann.get('id')} has bbox {bbox!r}; expected [x, y, width, height]")
        if not all(np.isfinite(bbox)):
            raise DatasetError(f"{path}: annotation {ann.get('id')} has a non-finite bbox {bbox}")


def coco_from_dataset(dataset) -> "object":
    """A pycocotools COCO object for any detcore dataset (e.g. VOC), built from
    its targets, so every dataset can be evaluated with the COCO metrics."""
    if isinstance(dataset, CocoDetection):
        return dataset.coco()
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    images, annotations = [], []
    categories = [{"id": i, "name": name} for i, name in enumerate(dataset.class_names) if i > 0]
    for index in range(len(dataset)):
        target = dataset.load_target(index)
        height, width = target["orig_size"]
        images.append({"id": target["image_id"], "height": height, "width": width})
        boxes = target["boxes"].tolist()
        ignore = target.get("difficult", torch.zeros(len(boxes), dtype=torch.bool)).tolist()
        for j, (x1, y1, x2, y2) in enumerate(boxes):
            ann = {"id": len(annotations) + 1, "image_id": target["image_id"],
                   "category_id": int(target["labels"][j]), "bbox": [x1, y1, x2 - x1, y2 - y1],
                   "area": (x2 - x1) * (y2 - y1), "iscrowd": int(ignore[j])}
            if "masks" in target:
                rle = mask_utils.encode(np.asfortranarray(target["masks"][j].numpy()))
                ann["segmentation"] = rle
                ann["area"] = float(mask_utils.area(rle))
            annotations.append(ann)
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def label_to_category(dataset) -> dict:
    """Contiguous label -> the category id the COCO evaluator expects."""
    if isinstance(dataset, CocoDetection):
        return dict(dataset.label_to_cat_id)
    return {i: i for i in range(1, dataset.num_classes)}

