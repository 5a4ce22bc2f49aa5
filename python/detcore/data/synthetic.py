"""The built-in synthetic dataset: coloured shapes on textured backgrounds.

Every image holds a few shapes (circle, triangle, square, star, bar, ring) with
random size, rotation and colour over a background of smooth noise and stripes.
Later shapes may occlude earlier ones; boxes, masks and keypoints describe the
*visible* part. Each instance has four keypoints, its extreme points
``top, right, bottom, left`` (``right`` and ``left`` swap under a horizontal
flip), marked visible (2) or occluded (1).

The dataset is written to disk as COCO json + PNG files so it is read back
through the same path as real data (:class:`detcore.data.CocoDetection`).
Unoccluded instances store their mask as a polygon, occluded ones as a
compressed RLE, so both encodings are exercised. Everything is a function of
the seed: the same arguments give byte-identical files.

The harder variant (:data:`HARD`, the dataset spec ``synthetic-hard``) is the same
generator with four switches turned up, for experiments whose effect needs more
than the plain shapes show (box regression, mask quality, proposals):

* several scales: objects of 8 to 96 px on 160-224 px images, sizes drawn
  log-uniformly (``size_sampling="log"``) so small objects are as common as large;
* thin shapes: two more classes, ``bar`` (a rotated bar six times as long as
  wide) and ``ring`` (an annulus with a hole; its mask is always stored as an
  RLE), whose boxes and masks are hard to get right from a coarse feature map;
* clutter (``distractors``): marks of no class - bent scribbles, irregular blobs
  and stars - some under the objects, some over them (which hides their parts);
* more objects per image (3 to 8) and with it more occlusion.

The new switches default to off, so the plain ``synthetic`` dataset (and its
``spec.json`` stamp) stays exactly what it was.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np

SHAPES = ("circle", "triangle", "square", "star", "bar", "ring")
SIZE_SAMPLING = ("uniform", "log")
_BAR_ASPECT = 6.0  # a bar is this many times as long as wide
_RING_THICKNESS = 0.15  # of the ring's outer diameter (at least 2 px)
KEYPOINT_NAMES = ("top", "right", "bottom", "left")
_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """What to generate. ``image_size`` is the (min, max) of each side."""

    num_train: int = 400
    num_val: int = 50
    classes: Tuple[str, ...] = ("circle", "triangle", "square")
    image_size: Tuple[int, int] = (128, 160)
    objects_per_image: Tuple[int, int] = (1, 4)
    object_size: Tuple[int, int] = (24, 64)
    seed: int = 0
    # Added for the harder variant; the defaults leave the plain dataset unchanged.
    size_sampling: str = "uniform"  # or "log": log-uniform in object_size
    distractors: Tuple[int, int] = (0, 0)  # (min, max) clutter marks of no class per image

    def validate(self) -> None:
        unknown = [c for c in self.classes if c not in SHAPES]
        if unknown or not self.classes:
            raise ValueError(f"classes: expected a non-empty subset of {SHAPES}, got {list(self.classes)}")
        for name in ("image_size", "objects_per_image", "object_size"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name}: expected 0 < min <= max, got ({lo}, {hi})")
        if self.object_size[1] >= self.image_size[0]:
            raise ValueError(f"object_size: the largest object ({self.object_size[1]}) must be smaller than "
                             f"the smallest image side ({self.image_size[0]})")
        if self.num_train < 0 or self.num_val < 0:
            raise ValueError("num_train and num_val must be >= 0")
        if self.size_sampling not in SIZE_SAMPLING:
            raise ValueError(f"size_sampling: expected one of {SIZE_SAMPLING}, got {self.size_sampling!r}")
        lo, hi = self.distractors
        if not 0 <= lo <= hi:
            raise ValueError(f"distractors: expected 0 <= min <= max, got ({lo}, {hi})")


# The harder variant: several scales, thin shapes, clutter, more objects and occlusion.
HARD = SyntheticSpec(num_train=300, num_val=60, classes=("circle", "triangle", "square", "bar", "ring"),
                     image_size=(160, 224), objects_per_image=(3, 8), object_size=(8, 96),
                     size_sampling="log", distractors=(3, 8))
# Fields added after format version 1: stamped only when not at their default,
# so a plain dataset written before them is still recognised.
_LATER_FIELDS = {"size_sampling": "uniform", "distractors": [0, 0]}


def make_synthetic_dataset(root: str, spec: SyntheticSpec = SyntheticSpec()) -> Dict[str, Tuple[str, str]]:
    """Writes the train and val splits under ``root`` (skipped when the same
    spec was already written there) and returns
    ``{"train": (annotation_json, image_dir), "val": (...)}``."""
    spec.validate()
    image_dir = os.path.join(root, "images")
    ann_dir = os.path.join(root, "annotations")
    paths = {split: (os.path.join(ann_dir, f"{split}.json"), image_dir) for split in ("train", "val")}
    stamp_path = os.path.join(root, "spec.json")
    stamp = {"version": _FORMAT_VERSION, **dataclasses.asdict(spec)}
    stamp = json.loads(json.dumps(stamp))  # tuples -> lists, as read back
    stamp = {k: v for k, v in stamp.items() if k not in _LATER_FIELDS or v != _LATER_FIELDS[k]}
    if os.path.exists(stamp_path) and all(os.path.exists(p[0]) for p in paths.values()):
        with open(stamp_path) as f:
            if json.load(f) == stamp:
                return paths
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    for split_index, (split, count) in enumerate((("train", spec.num_train), ("val", spec.num_val))):
        coco = generate_split(spec, split, count, split_index, image_dir)
        _write_json_atomic(coco, paths[split][0])
    _write_json_atomic(stamp, stamp_path)
    return paths


def generate_split(spec: SyntheticSpec, split: str, count: int, split_index: int, image_dir: str) -> dict:
    from PIL import Image

    categories = [
        {"id": i + 1, "name": name, "supercategory": "shape",
         "keypoints": list(KEYPOINT_NAMES), "skeleton": [[1, 2], [2, 3], [3, 4], [4, 1]]}
        for i, name in enumerate(spec.classes)
    ]
    images, annotations = [], []
    for index in range(count):
        rng = np.random.default_rng([spec.seed, split_index, index])
        pixels, instances = render_image(rng, spec)
        image_id = index + 1
        file_name = f"{split}_{index:05d}.png"
        Image.fromarray(pixels).save(os.path.join(image_dir, file_name))
        height, width = pixels.shape[:2]
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for inst in instances:
            annotations.append(_annotation(inst, image_id, len(annotations) + 1, height, width))
    return {"info": {"description": f"detcore synthetic shapes, {split} split", "seed": spec.seed},
            "images": images, "annotations": annotations, "categories": categories}


def render_image(rng: np.random.Generator, spec: SyntheticSpec):
    """One image (H, W, 3) uint8 and its instances: dicts with the class
    index, the visible mask, the full polygon and the keypoints."""
    height, width = (int(rng.integers(spec.image_size[0], spec.image_size[1] + 1)) for _ in range(2))
    image = _background(rng, height, width)
    occupied = np.zeros((height, width), dtype=np.int32)  # 1 + index of the shape on top, 0 = none
    # Clutter: drawn (no rng drawn at all when off, so the plain dataset is unchanged)
    # partly before the objects, partly after them, where it hides their parts.
    clutter = int(rng.integers(spec.distractors[0], spec.distractors[1] + 1)) if spec.distractors[1] else 0
    clutter_over = int(rng.binomial(clutter, 0.3)) if clutter else 0
    for _ in range(clutter - clutter_over):
        _paint(rng, image, _distractor_mask(rng, spec, height, width))
    shapes = []
    for _ in range(int(rng.integers(spec.objects_per_image[0], spec.objects_per_image[1] + 1))):
        class_index = int(rng.integers(len(spec.classes)))
        name = spec.classes[class_index]
        size = _object_size(rng, spec)
        polygon = _shape_polygon(name, size, float(rng.uniform(0, 2 * np.pi)))
        centre = rng.uniform(size / 2, [width - size / 2, height - size / 2])
        # Rounded as written to the json, so the polygon there decodes to exactly this mask.
        polygon = np.round(polygon + centre, 2)
        mask = _rasterize(polygon, height, width)
        if name == "ring":
            inner = size - 2 * max(2.0, _RING_THICKNESS * size)
            mask &= ~_rasterize(np.round(_shape_polygon("circle", inner, 0.0) + centre, 2), height, width)
        if mask.sum() < 16:
            continue
        _paint(rng, image, mask)
        occupied[mask] = len(shapes) + 1
        shapes.append((class_index, polygon, mask))
    for _ in range(clutter_over):
        mask = _distractor_mask(rng, spec, height, width)
        _paint(rng, image, mask)
        occupied[mask] = 0
    instances = []
    for i, (class_index, polygon, full_mask) in enumerate(shapes):
        visible = occupied == i + 1
        if visible.sum() < 0.3 * full_mask.sum():
            continue  # mostly hidden: not annotated, like a heavily occluded object in real data
        keypoints = []
        for x, y in _extreme_points(polygon):
            xi, yi = int(np.clip(x, 0, width - 1)), int(np.clip(y, 0, height - 1))
            keypoints.append((float(x), float(y), 2 if visible[yi, xi] else 1))
        # a ring's mask has a hole no single polygon holds: stored as an RLE like an occluded one
        hollow = spec.classes[class_index] == "ring"
        instances.append({"class_index": class_index, "mask": visible, "polygon": polygon,
                          "occluded": bool((visible != full_mask).any()) or hollow, "keypoints": keypoints})
    return image.astype(np.uint8), instances


def _paint(rng, image: np.ndarray, mask: np.ndarray) -> None:
    """Fills ``mask`` with a shaded colour far from the background under it, so shapes stand out."""
    if not mask.any():
        return  # a mark wholly outside the image
    under = image[mask].reshape(-1, 3).mean(0)
    colour = _contrasting_colour(rng, under)
    shading = rng.normal(0, 6, image.shape[:2] + (1,))
    image[mask] = np.clip(colour + shading[mask], 0, 255)


def _object_size(rng, spec: SyntheticSpec) -> float:
    lo, hi = spec.object_size
    if spec.size_sampling == "log":
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return float(rng.uniform(lo, hi))


def _distractor_mask(rng, spec: SyntheticSpec, height: int, width: int) -> np.ndarray:
    """A mark of no class: a bent scribble 1-3 px wide, an irregular blob, or a
    star (when stars are not a class), within the objects' size range."""
    size = _object_size(rng, spec)
    kind = int(rng.integers(3))
    centre = rng.uniform(size / 2, [width - size / 2, height - size / 2])
    if kind == 0:
        points = centre + np.cumsum(rng.normal(0, size / 3, (int(rng.integers(2, 5)), 2)), 0)
        half = float(rng.uniform(0.5, 1.5))
        mask = np.zeros((height, width), dtype=bool)
        for a, b in zip(points[:-1], points[1:]):
            direction = b - a
            normal = np.array([-direction[1], direction[0]]) / max(float(np.hypot(*direction)), 1e-6) * half
            mask |= _rasterize(np.stack([a + normal, b + normal, b - normal, a - normal]), height, width)
        return mask
    if kind == 1 or "star" in spec.classes:
        t = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 10))))
        radius = size / 2 * rng.uniform(0.4, 1.0, t.size)
        points = np.stack([np.cos(t), np.sin(t)], 1) * radius[:, None]
    else:
        points = _shape_polygon("star", size, float(rng.uniform(0, 2 * np.pi)))
    return _rasterize(points + centre, height, width)


def _annotation(inst, image_id: int, ann_id: int, height: int, width: int) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(inst["mask"].astype(np.uint8)))
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    if inst["occluded"]:
        segmentation = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
    else:
        segmentation = [[float(v) for v in inst["polygon"].reshape(-1)]]
    keypoints = [round(v, 2) if j < 2 else v for kp in inst["keypoints"] for j, v in enumerate(kp)]
    return {"id": ann_id, "image_id": image_id, "category_id": inst["class_index"] + 1,
            "bbox": [x, y, w, h], "area": float(mask_utils.area(rle)), "iscrowd": 0,
            "segmentation": segmentation, "keypoints": keypoints, "num_keypoints": len(inst["keypoints"])}


def _background(rng, height, width) -> np.ndarray:
    """Smooth colour noise plus faint stripes at a random angle."""
    coarse = rng.uniform(40, 215, (height // 16 + 2, width // 16 + 2, 3))
    ys = np.linspace(0, coarse.shape[0] - 1.001, height)
    xs = np.linspace(0, coarse.shape[1] - 1.001, width)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    smooth = (coarse[y0][:, x0] * (1 - fy) * (1 - fx) + coarse[y0 + 1][:, x0] * fy * (1 - fx)
              + coarse[y0][:, x0 + 1] * (1 - fy) * fx + coarse[y0 + 1][:, x0 + 1] * fy * fx)
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 20)
    yy, xx = np.mgrid[0:height, 0:width]
    stripes = 18 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    noise = rng.normal(0, 5, (height, width, 3))
    return np.clip(smooth + stripes[..., None] + noise, 0, 255)


def _contrasting_colour(rng, under: np.ndarray) -> np.ndarray:
    best, best_distance = None, -1.0
    for _ in range(8):
        colour = rng.uniform(0, 255, 3)
        distance = float(np.abs(colour - under).sum())
        if distance > best_distance:
            best, best_distance = colour, distance
        if distance > 200:
            break
    return best


def _shape_polygon(name: str, size: float, angle: float) -> np.ndarray:
    """Vertices (V, 2) of a shape of about ``size`` pixels centred on 0."""
    r = size / 2
    if name == "circle":
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        points = np.stack([np.cos(t), np.sin(t)], 1) * r
    elif name == "triangle":
        t = angle + np.arange(3) * 2 * np.pi / 3
        points = np.stack([np.cos(t), np.sin(t)], 1) * r
    elif name == "square":
        t = angle + np.pi / 4 + np.arange(4) * np.pi / 2
        points = np.stack([np.cos(t), np.sin(t)], 1) * r
    elif name == "bar":
        half_width = max(1.0, size / _BAR_ASPECT / 2)
        corners = np.array([[r, half_width], [-r, half_width], [-r, -half_width], [r, -half_width]])
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        points = corners @ rotation.T
    elif name == "ring":  # the outer outline; the hole is cut from the mask
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        points = np.stack([np.cos(t), np.sin(t)], 1) * r
    elif name == "star":
        t = angle + np.arange(10) * np.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        points = np.stack([np.cos(t), np.sin(t)], 1) * radius[:, None]
    else:
        raise ValueError(f"unknown shape {name!r}; expected one of {SHAPES}")
    return points


def _rasterize(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """pycocotools' polygon rasterisation, the one that decodes the annotations."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.frPyObjects([polygon.reshape(-1).tolist()], height, width)
    return mask_utils.decode(rle)[..., 0].astype(bool)


def _extreme_points(polygon: np.ndarray) -> List[Sequence[float]]:
    """top, right, bottom, left: the vertices with min y, max x, max y, min x."""
    return [polygon[np.argmin(polygon[:, 1])], polygon[np.argmax(polygon[:, 0])],
            polygon[np.argmax(polygon[:, 1])], polygon[np.argmin(polygon[:, 0])]]


def _write_json_atomic(payload, path: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(payload, f)
    os.replace(tmp, path)
