"""Pascal VOC datasets: ``Annotations/*.xml``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Optional, Sequence

import torch

from .base import DatasetError, DetectionDataset, load_image, require_dir

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


class VOCDetection(DetectionDataset):
    """A VOC-style folder. Boxes follow the VOC convention of 1-based pixel
    indices and are converted to 0-based pixel edges (``x1 - 1, y1 - 1, x2, y2``).
    Every object keeps its ``difficult`` flag; ``use_difficult=False`` drops
    difficult objects from the targets (for training). When the split file is
    missing, every annotation file is used.
    """

    def __init__(self, root: str, split: str = "trainval", transforms=None, *,
                 classes: Optional[Sequence[str]] = VOC_CLASSES, use_difficult: bool = True,
                 remove_empty: bool = False):
        super().__init__(transforms)
        require_dir(root, "VOC folder")
        self.root, self.split, self.use_difficult = root, split, use_difficult
        ann_dir = os.path.join(root, "Annotations")
        require_dir(ann_dir, "VOC Annotations folder")
        split_file = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
        if os.path.isfile(split_file):
            with open(split_file) as f:
                ids = [line.split()[0] for line in f if line.strip()]
        else:
            ids = sorted(name[:-4] for name in os.listdir(ann_dir) if name.endswith(".xml"))
        if not ids:
            raise DatasetError(f"{root}: no images in split {split!r}")
        self.records = [self._parse(os.path.join(ann_dir, f"{image_id}.xml"), image_id) for image_id in ids]
        if classes is None:  # take the classes from the annotations
            classes = sorted({obj["name"] for rec in self.records for obj in rec["objects"]})
        self.class_names = ["__background__"] + list(classes)
        self.keypoint_names = []
        label_of = {name: i for i, name in enumerate(self.class_names) if i > 0}
        for rec in self.records:
            for obj in rec["objects"]:
                if obj["name"] not in label_of:
                    raise DatasetError(f"{rec['xml']}: unknown class {obj['name']!r}; expected one of {list(classes)}")
                obj["label"] = label_of[obj["name"]]
        if remove_empty:
            self.records = [r for r in self.records if any(use_difficult or not o["difficult"] for o in r["objects"])]
        self.image_infos = [{"id": i + 1, "file_name": r["file_name"], "height": r["height"], "width": r["width"]}
                            for i, r in enumerate(self.records)]

    def _parse(self, xml_path: str, image_id: str) -> dict:
        if not os.path.isfile(xml_path):
            raise DatasetError(f"VOC annotation not found: {xml_path}")
        try:
            root = ET.parse(xml_path).getroot()
            file_name = root.findtext("filename") or f"{image_id}.jpg"
            size = root.find("size")
            width, height = int(size.findtext("width")), int(size.findtext("height"))
            objects = []
            for obj in root.iter("object"):
                box = obj.find("bndbox")
                x1, y1, x2, y2 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
                objects.append({"name": obj.findtext("name").strip(),
                                "difficult": int(obj.findtext("difficult") or 0) == 1,
                                "box": [x1 - 1.0, y1 - 1.0, x2, y2]})
        except ET.ParseError as e:
            raise DatasetError(f"{xml_path} is not valid XML: {e}") from e
        except (AttributeError, TypeError, ValueError) as e:
            raise DatasetError(f"{xml_path}: malformed VOC annotation (expected size/width, size/height and "
                               f"object/bndbox/xmin..ymax numbers): {e}") from e
        return {"xml": xml_path, "file_name": file_name, "width": width, "height": height, "objects": objects}

    def load_target(self, index: int) -> dict:
        rec = self.records[index]
        objects = [o for o in rec["objects"] if self.use_difficult or not o["difficult"]]
        boxes = torch.tensor([o["box"] for o in objects], dtype=torch.float32).reshape(-1, 4)
        return {
            "boxes": boxes,
            "labels": torch.tensor([o["label"] for o in objects], dtype=torch.int64),
            "difficult": torch.tensor([o["difficult"] for o in objects], dtype=torch.bool),
            "iscrowd": torch.zeros(len(objects), dtype=torch.int64),
            "area": (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]),
            "image_id": index + 1,
            "orig_size": (rec["height"], rec["width"]),
        }

    def image_path(self, index: int) -> str:
        return os.path.join(self.root, "JPEGImages", self.records[index]["file_name"])

    def proposal_id(self, index: int) -> str:
        """The VOC image id (``000005``), as detectron2's VOC proposal files use."""
        return os.path.splitext(os.path.basename(self.records[index]["xml"]))[0]

    def load(self, index: int):
        image = load_image(self.image_path(index))
        target = self.load_target(index)
        if tuple(image.shape[-2:]) != target["orig_size"]:
            target["orig_size"] = tuple(image.shape[-2:])  # trust the file over the <size> tag
        return image, target
