"""`OnnxDetector`: an exported ONNX file run in onnxruntime behind the eager
model's interface (``detector([image, ...])`` -> one dict per image in
original image coordinates), for `detcore predict --onnx`.

The steps outside the graph: resizing (the eager transform's rule, read from
the file's metadata), padding to the graph's multiple (with the mean colour,
which the graph normalises to the eager model's zero padding), boxes and
keypoints scaled back to the original image, boxes clipped to the resized
image before padding, and the (D, 1, M, M) masks pasted into the image
with `detcore.ops.paste_masks`. Keypoints come decoded from the graph, against
the boxes clipped to the padded input (eager clips to the image first: a box
reaching into the padding decodes its keypoints over the padded extent).
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch
import torch.nn.functional as F

from .. import ops
from ..models.box_ops import clip_boxes
from ..models.transform import _scale_xy

META_KEY = "detcore"


def export_metadata(model, name: str | None = None, class_names=None) -> dict:
    """What `OnnxDetector` needs to reproduce the eager pre/post-processing."""
    from .torch_export import min_image_size
    from .wrapper import required_multiple

    t = getattr(model, "transform", None)  # None: R-CNN takes the image at its size
    return {
        "model": name,
        "min_size": t.min_size[-1] if t is not None else None,
        "max_size": t.max_size if t is not None else None,
        "image_mean": list((t or model).image_mean),
        "image_std": list((t or model).image_std),
        "multiple": required_multiple(model),
        "min_image_size": min_image_size(model),
        "mask_threshold": t.mask_threshold if t is not None else None,
        "mask_paste_mode": getattr(t, "mask_paste_mode", "bilinear"),
        "num_classes": getattr(model, "num_classes", None),
        "class_names": list(class_names) if class_names else None,
    }


class OnnxDetector:
    def __init__(self, path: str, providers=("CPUExecutionProvider",)):
        import onnxruntime as ort

        self.session = ort.InferenceSession(path, providers=list(providers))
        props = self.session.get_modelmeta().custom_metadata_map
        if META_KEY not in props:
            raise ValueError(f"onnx: {path} was not written by detcore export (no '{META_KEY}' metadata)")
        self.meta = json.loads(props[META_KEY])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        if "proposals" in self.input_names:
            raise ValueError(f"onnx: {path} is a Fast R-CNN that takes proposals; call run() with them")

    def _prepare(self, image: torch.Tensor):
        h, w = image.shape[-2:]
        m = self.meta
        scale = min(m["min_size"] / min(h, w), m["max_size"] / max(h, w))
        resized = F.interpolate(image[None].float(), scale_factor=scale, mode="bilinear",
                                recompute_scale_factor=True, align_corners=False)[0]
        rh, rw = resized.shape[-2:]
        step, lo = m["multiple"], m["min_image_size"]
        ph = max(lo, int(math.ceil(rh / step) * step))
        pw = max(lo, int(math.ceil(rw / step) * step))
        batch = torch.tensor(m["image_mean"], dtype=torch.float32)[:, None, None].repeat(1, ph, pw)
        batch[:, :rh, :rw] = resized
        return batch[None], (rh, rw)

    def run(self, images: np.ndarray, proposals: np.ndarray | None = None) -> dict:
        """The raw graph outputs for a prepared (1, 3, H, W) input."""
        feeds = {"images": np.ascontiguousarray(images, dtype=np.float32)}
        if proposals is not None:
            feeds["proposals"] = np.ascontiguousarray(proposals, dtype=np.float32)
        return dict(zip(self.output_names, self.session.run(None, feeds)))

    def __call__(self, images) -> list[dict]:
        results = []
        for image in images:
            batch, size = self._prepare(image)
            out = {k: torch.from_numpy(v) for k, v in self.run(batch.numpy()).items()}
            orig = tuple(int(s) for s in image.shape[-2:])
            r = {"boxes": _scale_xy(clip_boxes(out["boxes"], size), size, orig), "labels": out["labels"],
                 "scores": out["scores"]}
            if "keypoints" in out:
                r["keypoints"], r["keypoints_scores"] = _scale_xy(out["keypoints"], size, orig), out["keypoints_scores"]
            if "masks" in out:
                masks = out["masks"][:, 0]
                # files exported before the setting existed paste bilinearly
                mode = self.meta.get("mask_paste_mode", "bilinear")
                pasted = ops.paste_masks(masks, r["boxes"], orig, self.meta["mask_threshold"], mode)
                r["masks"] = pasted.to(masks.dtype)[:, None]
            results.append(r)
        return results
