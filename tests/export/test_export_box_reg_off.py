"""The export wrapper keeps ``model.box_reg_at_test=false``: its detections
are the proposals, as in eager mode (the wrapper is run eagerly here; the
graph round trips are test_export_detectors.py's)."""

import numpy as np
import pytest
import torch
from detcore.export.wrapper import ExportWrapper
from tiny_models import build


@pytest.mark.parametrize("reg_at_test", [True, False])
def test_wrapper_follows_box_reg_at_test(reg_at_test, rng):
    torch.manual_seed(0)
    model = build("fast_rcnn_vgg16", box_score_thresh=0.0, box_reg_at_test=reg_at_test).eval()
    with torch.no_grad():
        model.roi_heads.box_predictor.bbox_pred.bias.fill_(0.5)  # regression that visibly moves the boxes
    image = torch.tensor(rng.uniform(0, 1, (1, 3, 64, 96)), dtype=torch.float32)
    xy = rng.uniform(0, [60, 40], (20, 2))
    proposals = torch.tensor(np.concatenate([xy, xy + rng.uniform(8, 30, (20, 2))], 1), dtype=torch.float32)
    with torch.no_grad():
        eager = model([image[0]], proposals=[proposals])[0]
        boxes, labels, scores = ExportWrapper(model)(image, proposals)[:3]
    torch.testing.assert_close(boxes, eager["boxes"], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(scores, eager["scores"], atol=1e-6, rtol=1e-5)
    clipped = proposals.clone()
    clipped[:, 0::2] = clipped[:, 0::2].clamp(0, 96)
    clipped[:, 1::2] = clipped[:, 1::2].clamp(0, 64)
    distance = torch.cdist(boxes.double(), clipped.double(), p=float("inf")).min(1).values
    assert (float(distance.max()) < 1e-4) == (not reg_at_test)
