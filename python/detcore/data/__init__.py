"""Datasets (COCO json, VOC xml, the built-in synthetic shapes), transforms,
batch collation and samplers. Needs PyTorch; masks need pycocotools and
images Pillow."""

from .base import DatasetError, DetectionDataset, keypoint_flip_indices, load_image
from .catalog import build_dataset
from .coco import CocoDetection, coco_from_dataset, label_to_category
from .samplers import SeededDataset, ShardedIndices, TrainingBatchSampler, aspect_group, collate
from .synthetic import SyntheticSpec, make_synthetic_dataset
from .transforms import ColorJitter, Compose, RandomHorizontalFlip, Resize, build_transforms
from .voc import VOC_CLASSES, VOCDetection

__all__ = [
    "DatasetError", "DetectionDataset", "keypoint_flip_indices", "load_image", "build_dataset",
    "CocoDetection", "coco_from_dataset", "label_to_category", "SeededDataset", "ShardedIndices",
    "TrainingBatchSampler", "aspect_group", "collate", "SyntheticSpec", "make_synthetic_dataset",
    "ColorJitter", "Compose", "RandomHorizontalFlip", "Resize", "build_transforms", "VOC_CLASSES", "VOCDetection",
]
