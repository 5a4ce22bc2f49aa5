"""The RPN dump gives the proposals the detector's own RoI heads get, in image
pixels; models that need proposals say so, and the engine hands them over."""

import os
import sys

import numpy as np
import pytest
import torch

from detcore.engine.build import proposal_inputs
from detcore.models import GeneralizedRCNN
from detcore.models.meta.rcnn import FastRCNN
from detcore.proposals import ProposalError
from detcore.proposals.rpn import rpn_proposals

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "models"))
from tiny_models import batch, build  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_rpn_proposals_are_what_the_roi_heads_get(rng):
    torch.manual_seed(0)
    model = build("faster_rcnn_vgg16").eval()
    images, _ = batch(rng, sizes=((64, 96), (70, 80)))
    seen = {}

    def grab(module, args):
        seen["proposals"], seen["sizes"] = [p.clone() for p in args[1]], list(args[2])

    handle = model.roi_heads.register_forward_pre_hook(grab)
    with torch.no_grad():
        detections = model(images)
    handle.remove()
    dumped = rpn_proposals(model, images)
    with torch.no_grad():
        again = model(images)
    for a, b in zip(detections, again):  # the dump changes nothing in the detector
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["scores"], b["scores"])
    assert not model.training and model.rpn.post_nms_top_n["testing"] == 50
    for (boxes, logits), inside, size, image in zip(dumped, seen["proposals"], seen["sizes"], images):
        h, w = image.shape[-2:]
        ratio = np.array([w / size[1], h / size[0]] * 2)
        np.testing.assert_allclose(boxes.numpy(), inside.numpy().astype(np.float64) * ratio, rtol=1e-5, atol=1e-4)
        assert boxes.shape[0] == logits.shape[0] <= 50
        assert (np.diff(logits.numpy()) <= 1e-6).all()  # NMS keeps them in decreasing objectness
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w + 1e-3).all() and (boxes[:, 3] <= h + 1e-3).all()
    fewer = rpn_proposals(model, images, max_proposals=5)
    for (b, lg), (full, _) in zip(fewer, dumped):
        assert len(b) == min(5, len(full)) and torch.allclose(b, full[: len(b)])
    assert model.rpn.post_nms_top_n["testing"] == 50  # restored
    with pytest.raises(ValueError, match="model: expected a detector with an RPN"):
        rpn_proposals(build("fast_rcnn_vgg16"), images)


def test_models_say_whether_they_need_proposals(rng):
    fast = build("fast_rcnn_vgg16")
    assert isinstance(fast, FastRCNN) and FastRCNN.needs_proposals and fast.needs_proposals
    assert not GeneralizedRCNN.needs_proposals and not build("faster_rcnn_vgg16").needs_proposals
    images, targets = batch(rng)
    with pytest.raises(ValueError, match="proposals: this detector has no RPN and takes external proposals.*"
                                         "--proposals selective_search"):
        fast(images, targets)
    # the engine passes the targets' proposals to such models only
    proposals = [torch.rand(5, 4) * 10 for _ in targets]
    with_props = [dict(t, proposals=p) for t, p in zip(targets, proposals)]
    given = proposal_inputs(fast, with_props)["proposals"]
    assert all(g is p for g, p in zip(given, proposals))
    assert proposal_inputs(build("faster_rcnn_vgg16"), with_props) == {}
    with pytest.raises(ProposalError, match="FastRCNN takes external proposals but the dataset carries none"):
        proposal_inputs(fast, targets)
    fast.train()
    losses = fast(images, with_props, **proposal_inputs(fast, with_props))
    assert all(torch.isfinite(v) for v in losses.values())
