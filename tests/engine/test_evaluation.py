import contextlib
import io

import numpy as np
import pytest
import torch
from pycocotools.cocoeval import COCOeval

from detcore.engine import coco_evaluate, coco_results, evaluate, format_ap_table, voc07_ap, voc07_map


class Oracle(torch.nn.Module):
    """Returns the given outputs, one image after the other (the evaluation
    visits the images in order with one process)."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs, self.calls = outputs, 0

    def forward(self, images):
        out = [self.outputs[self.calls + i] for i in range(len(images))]
        self.calls += len(images)
        return out


def _perfect_outputs(dataset):
    outputs = []
    for i in range(len(dataset)):
        _, t = dataset[i]
        n = len(t["labels"])
        outputs.append({"boxes": t["boxes"], "labels": t["labels"], "scores": torch.linspace(0.99, 0.9, n),
                        "masks": t["masks"][:, None].float(), "keypoints": t["keypoints"]})
    return outputs


def test_perfect_detections_score_one(tiny_synthetic):
    _, val = tiny_synthetic
    metrics = evaluate(Oracle(_perfect_outputs(val)), val)
    assert set(metrics) >= {"bbox", "segm", "keypoints", "inference_time_per_image", "num_images"}
    for kind in ("bbox", "segm", "keypoints"):
        assert metrics[kind]["AP"] == pytest.approx(1.0) and metrics[kind]["AP50"] == pytest.approx(1.0)
    assert metrics["num_images"] == len(val) and metrics["inference_time_per_image"] > 0
    table = format_ap_table(metrics)
    assert "| bbox | 100.0 | 100.0 |" in table and "keypoints" in table


def test_reproduces_pycocotools_on_hand_made_detections(tiny_synthetic, rng):
    _, val = tiny_synthetic
    coco_gt = val.coco()
    predictions, direct = {}, []
    for i in range(len(val)):
        _, t = val[i]
        boxes = t["boxes"].numpy().astype(np.float64)
        noisy = boxes + rng.normal(0, 2.0, boxes.shape)
        extra = rng.uniform(0, 30, (2, 2))
        noisy = np.concatenate([noisy, np.concatenate([extra, extra + 10], 1)])  # two false positives
        labels = np.concatenate([t["labels"].numpy(), rng.integers(1, val.num_classes, 2)])
        scores = rng.uniform(0.05, 1.0, len(noisy))
        predictions[t["image_id"]] = {"boxes": noisy, "scores": scores, "labels": labels}
        for box, score, label in zip(noisy, scores, labels):
            direct.append({"image_id": t["image_id"], "category_id": val.label_to_cat_id[int(label)],
                           "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": score})
    ours = coco_evaluate(coco_gt, coco_results(predictions, val.label_to_cat_id), ["bbox"])["bbox"]
    with contextlib.redirect_stdout(io.StringIO()):
        reference = COCOeval(coco_gt, coco_gt.loadRes(direct), "bbox")
        reference.evaluate()
        reference.accumulate()
        reference.summarize()
    np.testing.assert_allclose(list(ours.values()), reference.stats, rtol=0, atol=1e-12)
    assert 0.0 < ours["AP50"] < 1.0


def test_no_detections_give_zero(tiny_synthetic):
    _, val = tiny_synthetic
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0)}
             for _ in range(len(val))]
    metrics = evaluate(Oracle(empty), val)
    assert metrics["bbox"]["AP"] == 0.0 and "segm" not in metrics


class _FakeVOC:
    num_classes, class_names = 2, ["__background__", "thing"]
    targets = [
        {"image_id": 1, "boxes": torch.tensor([[0., 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([1, 1]),
         "difficult": torch.tensor([False, True])},
        {"image_id": 2, "boxes": torch.tensor([[5., 5, 15, 15]]), "labels": torch.tensor([1]),
         "difficult": torch.tensor([False])},
    ]

    def __len__(self):
        return 2

    def load_target(self, i):
        return self.targets[i]


def test_voc07_map_by_hand():
    predictions = {
        1: {"boxes": np.array([[0., 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]]),
            "scores": np.array([0.9, 0.8, 0.7]), "labels": np.array([1, 1, 1])},
        2: {"boxes": np.array([[5., 5, 15, 16]]), "scores": np.array([0.6]), "labels": np.array([1])},
    }
    # TP (r .5, p 1), FP (r .5, p .5), difficult match ignored, TP (r 1, p 2/3)
    result = voc07_map(predictions, _FakeVOC())
    assert result["per_class"]["thing"] == pytest.approx((6 * 1.0 + 5 * 2 / 3) / 11)
    assert result["mAP"] == result["per_class"]["thing"]
    assert voc07_ap(np.array([0.2, 1.0]), np.array([1.0, 0.5])) == pytest.approx((3 * 1.0 + 8 * 0.5) / 11)


class ScaledOracle(Oracle):
    """Perfect outputs in the coordinates of the (resized) input image."""

    def __init__(self, outputs, sizes):
        super().__init__(outputs)
        self.sizes = sizes

    def forward(self, images):
        out = []
        for image in images:
            o = dict(self.outputs[self.calls])
            h0, w0 = self.sizes[self.calls]
            h, w = image.shape[-2:]
            scale = torch.tensor([w / w0, h / h0, w / w0, h / h0])
            o["boxes"] = o["boxes"] * scale
            o["masks"] = torch.nn.functional.interpolate(o["masks"], size=(h, w), mode="nearest")
            kps = o["keypoints"].clone()
            kps[..., 0] *= w / w0
            kps[..., 1] *= h / h0
            o["keypoints"] = kps
            out.append(o)
            self.calls += 1
        return out


def test_predictions_return_to_the_original_size(tiny_synthetic):
    _, val = tiny_synthetic
    sizes = [val[i][1]["orig_size"] for i in range(len(val))]
    metrics = evaluate(ScaledOracle(_perfect_outputs(val), sizes), val, min_size=100, max_size=200)
    for kind in ("bbox", "segm", "keypoints"):
        assert metrics[kind]["AP50"] == pytest.approx(1.0)
    assert metrics["bbox"]["AP"] == pytest.approx(1.0)
