"""detcore's detectors against torchvision's on the same weights and images:
boxes and scores equal to 1e-4. Skipped where torchvision is not importable
(detcore never depends on it)."""

import numpy as np
import pytest
import torch

import detcore.models as models

tvdet = pytest.importorskip("torchvision.models.detection")
from torchvision.ops.misc import FrozenBatchNorm2d as TVFrozenBN  # noqa: E402

SIZE = dict(min_size=224, max_size=320)


def frozen_random_bn(module, g):
    """torchvision builds with plain batch norm when no weights are given;
    its COCO checkpoints run with frozen batch norm and eps 0: swap them in,
    with random statistics so the comparison sees them."""
    for name, child in list(module.named_children()):
        if isinstance(child, torch.nn.BatchNorm2d):
            bn = TVFrozenBN(child.num_features, eps=0.0)
            n = child.num_features
            bn.weight.copy_(torch.rand(n, generator=g) * 0.4 + 0.3)
            bn.bias.copy_(torch.randn(n, generator=g) * 0.1)
            bn.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            setattr(module, name, bn)
        else:
            frozen_random_bn(child, g)


def canonical_order(result):
    """Detections sorted by (score desc, label, x1, y1): exactly tied scores
    are legitimately ordered differently (detcore's NMS keeps the lower index
    first, torchvision's sort is not stable)."""
    b = result["boxes"].numpy()
    order = np.lexsort((b[:, 1], b[:, 0], result["labels"].numpy(), -result["scores"].numpy()))
    return {k: v[torch.from_numpy(order.copy())] for k, v in result.items()}


CASES = {
    "faster_rcnn_r50_fpn": (tvdet.fasterrcnn_resnet50_fpn, 5, {}, {}),
    "mask_rcnn_r50_fpn": (tvdet.maskrcnn_resnet50_fpn, 5, {}, {"mask_threshold": None}),
    "keypoint_rcnn_r50_fpn": (tvdet.keypointrcnn_resnet50_fpn, 2, {"box_detections_per_img": 10}, {}),
    "retinanet_r50_fpn": (tvdet.retinanet_resnet50_fpn, 5, {"detections_per_img": 50}, {}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_detections_equal_torchvision(name, rng):
    tv_builder, num_classes, shared, ours_only = CASES[name]
    with torch.no_grad():
        tv = tv_builder(weights=None, weights_backbone=None, num_classes=num_classes, **SIZE, **shared)
        frozen_random_bn(tv, torch.Generator().manual_seed(0))
        if name.startswith("retinanet"):  # spread the scores past the 0.05 threshold
            tv.head.classification_head.cls_logits.bias.normal_(0, 1)
            tv.head.classification_head.cls_logits.weight.normal_(0, 0.05)
    tv.eval()
    ours = models.build(name, num_classes, **SIZE, **shared, **ours_only).eval()
    assert models.load_torchvision_weights(ours, tv.state_dict()) == []
    # sizes that need no padding: zero padding gives exactly tied scores,
    # which detcore's NMS orders by index and torchvision's sort arbitrarily
    images = [torch.tensor(rng.uniform(0, 1, (3, 224, 288)), dtype=torch.float32) for _ in range(2)]
    with torch.no_grad():
        expected, got = tv(images), ours(images)
    assert sum(r["boxes"].shape[0] for r in expected) > 0
    for e, o in zip(expected, got):
        assert set(e) == set(o)
        e, o = canonical_order(e), canonical_order(o)
        assert torch.equal(e["labels"], o["labels"])
        torch.testing.assert_close(o["boxes"], e["boxes"], atol=1e-4, rtol=0)
        torch.testing.assert_close(o["scores"], e["scores"], atol=1e-4, rtol=0)
        if "masks" in e:
            torch.testing.assert_close(o["masks"], e["masks"], atol=1e-4, rtol=0)
        if "keypoints" in e:
            torch.testing.assert_close(o["keypoints"], e["keypoints"], atol=1e-4, rtol=0)
            torch.testing.assert_close(o["keypoints_scores"], e["keypoints_scores"], atol=1e-4, rtol=0)
