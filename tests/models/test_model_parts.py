"""The pure-tensor parts: matcher, sampler, FPN level rule, transform,
keypoint decoding, truncated SVD."""

import pytest
import torch

from detcore.models.roi_heads.keypoint_head import heatmaps_to_keypoints, keypoint_targets
from detcore.models.roi_heads.matching import BELOW_LOW, BETWEEN, BalancedSampler, Matcher
from detcore.models.roi_heads.poolers import RoIPooler
from detcore.models.svd import compress_fc_svd, low_rank_linear
from detcore.models.transform import Transform
from tiny_models import batch, build, proposals_for, run


def test_matcher_thresholds_and_low_quality_matches():
    iou = torch.tensor([[0.8, 0.5, 0.29, 0.69, 0.1], [0.1, 0.2, 0.2, 0.71, 0.3]])
    m = Matcher(0.7, 0.3)(iou)
    assert m.tolist() == [0, BETWEEN, BELOW_LOW, 1, BETWEEN]  # 0.3 is not below 0.3
    # RPN rule: each ground truth's best anchors (ties included) are positives
    iou = torch.tensor([[0.5, 0.5, 0.1], [0.2, 0.0, 0.0]])
    m = Matcher(0.7, 0.3, allow_low_quality=True)(iou)
    assert m.tolist() == [0, 0, BELOW_LOW]
    # Fast R-CNN background interval [0.1, 0.5): lower IoU is ignored
    iou = torch.tensor([[0.05, 0.1, 0.49, 0.5]])
    assert Matcher(0.5, 0.5, ignore_below=0.1)(iou).tolist() == [BETWEEN, BELOW_LOW, BELOW_LOW, 0]
    assert Matcher(0.5, 0.5)(torch.zeros((0, 3))).tolist() == [BELOW_LOW] * 3


def test_balanced_sampler_fraction_and_ignore(rng):
    labels = torch.tensor(rng.integers(-1, 3, 1000))
    pos, neg = BalancedSampler(256, 0.25)(labels)
    assert pos.numel() == 64 and neg.numel() == 192
    assert (labels[pos] >= 1).all() and (labels[neg] == 0).all()
    assert len(set(pos.tolist())) == 64
    few = torch.tensor([1, 0, 0, -1])
    pos, neg = BalancedSampler(256, 0.5)(few)
    assert pos.tolist() == [0] and sorted(neg.tolist()) == [1, 2]


def test_fpn_level_rule():
    pooler = RoIPooler(["p2", "p3", "p4", "p5"], [4, 8, 16, 32], 7)
    side = torch.tensor([10.0, 111.0, 112.0, 223.9, 224.0, 448.0, 2000.0])
    boxes = torch.stack([torch.zeros_like(side), torch.zeros_like(side), side, side], 1)
    # k = floor(4 + log2(side / 224)), clamped to [2, 5]; index 0 = p2
    assert pooler.level_of(boxes).tolist() == [0, 0, 1, 1, 2, 3, 3]


def test_transform_resizes_pads_and_maps_back(rng):
    t = Transform(min_size=64, max_size=100).eval()
    images = [torch.rand(3, 32, 40), torch.rand(3, 50, 30)]
    targets = [{"boxes": torch.tensor([[4.0, 8.0, 20.0, 30.0]]), "labels": torch.tensor([1])}] * 2
    batch_, out_t = t(images, targets)
    assert batch_.image_sizes == [(64, 80), (100, 60)]
    assert batch_.tensors.shape == (2, 3, 128, 96)  # padded to multiples of 32
    assert (batch_.tensors[0, :, 64:, :] == 0).all() and (batch_.tensors[1, :, :, 60:] == 0).all()
    assert torch.allclose(out_t[0]["boxes"], torch.tensor([[8.0, 16.0, 40.0, 60.0]]))
    assert torch.allclose(out_t[1]["boxes"], torch.tensor([[8.0, 16.0, 40.0, 60.0]]))
    assert torch.equal(targets[0]["boxes"], torch.tensor([[4.0, 8.0, 20.0, 30.0]]))  # inputs not mutated
    back = t.postprocess([{"boxes": out_t[0]["boxes"]}], batch_.image_sizes[:1], [(32, 40)])
    assert torch.allclose(back[0]["boxes"], targets[0]["boxes"])
    # normalised with ImageNet statistics
    flat = torch.full((3, 64, 64), 0.5)
    b, _ = t([flat])
    mean, std = torch.tensor(t.image_mean), torch.tensor(t.image_std)
    assert torch.allclose(b.tensors[0, :, 0, 0], (0.5 - mean) / std)


def test_keypoint_targets_and_decoding_agree(rng):
    boxes = torch.tensor([[10.0, 20.0, 66.0, 132.0], [0.0, 0.0, 28.0, 28.0]])
    size = 56
    kps = torch.stack(
        [
            boxes[:, None, 0] + torch.tensor(rng.uniform(0, 1, (2, 5))) * (boxes[:, None, 2] - boxes[:, None, 0]),
            boxes[:, None, 1] + torch.tensor(rng.uniform(0, 1, (2, 5))) * (boxes[:, None, 3] - boxes[:, None, 1]),
            torch.ones(2, 5),
        ],
        -1,
    ).float()
    idx, valid = keypoint_targets(kps, boxes, size)
    assert valid.all()
    # a heatmap peaked at each target cell decodes back to within a cell of the keypoint
    maps = torch.full((2, 5, size * size), -10.0)
    maps.scatter_(2, idx[..., None], 10.0)
    decoded, scores = heatmaps_to_keypoints(maps.view(2, 5, size, size), boxes)
    cell = torch.stack([(boxes[:, 2] - boxes[:, 0]) / size, (boxes[:, 3] - boxes[:, 1]) / size], 1)
    err = (decoded[..., :2] - kps[..., :2]).abs()
    assert (err <= cell[:, None, :] * 1.5 + 1).all()
    assert (decoded[..., 2] == 1).all() and scores.shape == (2, 5)
    # invisible or outside keypoints are not targets
    kps[0, 0, 2] = 0
    kps[1, 1, 0] = 100.0
    _, valid = keypoint_targets(kps, boxes, size)
    assert not valid[0, 0] and not valid[1, 1] and valid.sum() == 8


@pytest.mark.parametrize("in_f, out_f", [(40, 30), (30, 40)])
def test_low_rank_linear_is_the_truncated_svd(rng, in_f, out_f):
    layer = torch.nn.Linear(in_f, out_f)
    full = low_rank_linear(layer, 30)
    x = torch.tensor(rng.normal(size=(7, in_f)), dtype=torch.float32)
    torch.testing.assert_close(full(x), layer(x), atol=1e-4, rtol=1e-4)
    # rank k: the error is the (k+1)-th singular value at most, per unit input
    s = torch.linalg.svdvals(layer.weight.detach())
    err = torch.linalg.matrix_norm(full[1].weight @ full[0].weight - layer.weight.detach(), ord=2)
    assert err < 1e-4
    low = low_rank_linear(layer, 5)
    err = torch.linalg.matrix_norm(low[1].weight @ low[0].weight - layer.weight.detach(), ord=2)
    assert abs(err - s[5]) < 1e-4
    with pytest.raises(ValueError, match="rank"):
        low_rank_linear(layer, 31)


def test_svd_compressed_detector_stays_close_at_high_rank(rng):
    model = build("fast_rcnn_vgg16").eval()
    images, targets = batch(rng)
    proposals = proposals_for(targets, rng)
    fc6 = model.roi_heads.box_head.fc6
    compressed = compress_fc_svd(model, {"fc6": min(fc6.weight.shape), "fc7": 31})
    assert isinstance(model.roi_heads.box_head.fc6, torch.nn.Linear)  # the original is untouched
    assert isinstance(compressed.roi_heads.box_head.fc6, torch.nn.Sequential)
    with torch.no_grad():
        x = model.roi_heads.box_pooler(model.backbone(model.transform(images)[0].tensors), proposals)
        a = model.roi_heads.box_predictor(model.roi_heads.box_head(x))
        b = compressed.roi_heads.box_predictor(compressed.roi_heads.box_head(x))
        ref, out = run(model, "fast_rcnn_vgg16", images, proposals=proposals), run(
            compressed, "fast_rcnn_vgg16", images, proposals=proposals
        )
    for u, v in zip(a, b):
        assert (u - v).abs().max() < 1e-2 * u.abs().max() + 1e-4
    for r, o in zip(ref, out):
        assert r["boxes"].shape == o["boxes"].shape
    with pytest.raises(ValueError, match="fc6"):
        compress_fc_svd(compressed, {"fc6": 4})


@pytest.mark.parametrize("stages", [0, 1, 3, 5])
def test_trainable_stages_freeze_the_rest(stages):
    from detcore.models.backbones.resnet import ResNet

    body = ResNet(blocks=(1, 1, 1, 1), base_width=8, trainable_stages=stages)
    order = ["layer4", "layer3", "layer2", "layer1", "conv1"]
    for name, p in body.named_parameters():
        assert p.requires_grad == any(name.startswith(s) for s in order[:stages]), name
    # frozen batch norm: statistics are buffers, never trained, in train mode too
    assert not any("bn" in n for n, _ in body.named_parameters())
    x = torch.rand(1, 3, 64, 64)
    body.train()
    a = body(x)["c5"]
    assert torch.equal(a, body.eval()(x)["c5"])


def test_pooler_keeps_float32_rois_with_half_precision_features():
    # Under AMP the FPN features are float16 but the boxes float32: a 300 px box
    # must still go to level 4 (index 2), and pooling must match float32.
    names, strides = ["p2", "p3", "p4", "p5"], [4, 8, 16, 32]
    pooler = RoIPooler(names, strides, 7, sampling_ratio=2)
    features = {n: torch.randn(1, 4, 256 // s, 256 // s) for n, s in zip(names, strides)}
    boxes = [torch.tensor([[0.0, 0.0, 300.0, 300.0], [3.25, 3.5, 40.0, 50.0]])]
    half = {n: f.half() for n, f in features.items()}
    assert pooler.level_of(boxes[0]).tolist() == [2, 0]
    torch.testing.assert_close(pooler(half, boxes), pooler({n: f.float() for n, f in half.items()}, boxes))
