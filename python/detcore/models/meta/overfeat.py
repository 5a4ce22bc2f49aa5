"""OverFeat (Sermanet et al., ICLR 2014): the classifier applied as a fully
convolutional network to the whole image at several scales, with a
class-specific box regressor at every location, and a greedy merge of the
predicted boxes.

The classifier's fully connected layers are convolutions over the conv
body's stride-16 map: "fc6" is a window_cells x window_cells convolution
(VGG16's fc6 is exactly a 7 x 7 convolution over conv5_3), "fc7" and the
class layer are 1 x 1. One pass per scale computes the classifier at every
window position at once; there are no per-window passes.

Location (i, j) of a scale s stands for the square window of
window_cells * 16 / s pixels of the resized image centred at
((j + 0.5) * 16 / s, (i + 0.5) * 16 / s): the classifier's input field, the
"anchor" its box regression is coded against (detcore's (dx, dy, dw, dh)
coding, weights 1).

Training rule (the paper trains regression only where the window sees at
least half of the object): a location is positive for a ground-truth box g
when its centre lies inside g and its window covers at least
`min_coverage` (0.5) of g's area; among several such boxes it takes the one
it covers most. Positive locations are classified as g's class and regress
g; every other location inside the image is background (no box). Locations
in the batch padding are ignored. Background locations far outnumber the
positive ones: the classification loss keeps all positives and the hardest
`negatives_per_positive` times as many negatives (at least
`min_negatives`) per image, OverFeat's on-the-fly bootstrapping. All
`train_scales` are trained on in every step.

Test: every location of every `test_scales` scale gives, for each class whose
softmax probability exceeds `score_thresh`, that class's regressed box; the
best `merge_candidates` boxes of each class then go through OverFeat's
greedy merge (see greedy_merge.py for the match score), or through NMS with
`merge="nms"`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ... import ops
from ..backbones.resnet import ResNet
from ..backbones.vgg import vgg16_body
from ..box_ops import BoxCoder, clip_boxes
from ..transform import Transform
from ..validation import check_images, check_targets
from .greedy_merge import greedy_merge

STRIDE = 16  # both backbones: VGG16 conv5_3, ResNet C4


def _conv(in_ch: int, out_ch: int, kernel: int, std: float) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)
    nn.init.normal_(conv.weight, std=std)
    nn.init.constant_(conv.bias, 0)
    return conv


class OverFeatHead(nn.Module):
    """The classifier and the regressor as convolutions: per location,
    num_classes logits and num_classes * 4 box deltas."""

    def __init__(
        self, in_channels: int, num_classes: int, window_cells: int = 7, representation_size: int = 4096,
        regression_size: int = 1024, dropout: float = 0.5,
    ):
        super().__init__()
        if not isinstance(window_cells, int) or window_cells < 1 or window_cells % 2 == 0:
            raise ValueError(f"window_cells: expected an odd int >= 1, got {window_cells!r}")
        self.num_classes = num_classes
        self.window_cells = window_cells
        self.classifier = nn.Sequential(
            _conv(in_channels, representation_size, window_cells, 0.01), nn.ReLU(inplace=True), nn.Dropout(dropout),
            _conv(representation_size, representation_size, 1, 0.01), nn.ReLU(inplace=True), nn.Dropout(dropout),
            _conv(representation_size, num_classes, 1, 0.01),
        )
        self.regressor = nn.Sequential(
            _conv(in_channels, regression_size, window_cells, 0.01), nn.ReLU(inplace=True),
            _conv(regression_size, regression_size, 1, 0.01), nn.ReLU(inplace=True),
            _conv(regression_size, num_classes * 4, 1, 0.001),
        )

    def forward(self, features: torch.Tensor):
        """(N, num_classes, H, W) logits and (N, num_classes * 4, H, W) deltas."""
        return self.classifier(features), self.regressor(features)


class _ScaleOutput:
    """One scale's maps flattened per image: logits (N, L, C), deltas
    (N, L, C * 4), windows (L, 4) and location centres (L, 2) in the
    coordinates of the (unscaled) batch."""

    def __init__(self, logits, deltas, windows, centres):
        self.logits, self.deltas, self.windows, self.centres = logits, deltas, windows, centres


class OverFeat(nn.Module):
    def __init__(
        self,
        transform: Transform,
        backbone: nn.Module,
        head: OverFeatHead,
        num_classes: int,
        train_scales=(1.0, 0.5),
        test_scales=(1.0, 0.7071, 0.5, 0.3536),
        min_coverage: float = 0.5,
        negatives_per_positive: int = 3,
        min_negatives: int = 16,
        score_thresh: float = 0.05,
        merge: str = "greedy",
        merge_thresh: float = 0.6,
        nms_thresh: float = 0.3,
        merge_candidates: int = 200,
        detections_per_img: int = 100,
    ):
        super().__init__()
        for name, scales in (("train_scales", train_scales), ("test_scales", test_scales)):
            if not scales or any(not (isinstance(s, (int, float)) and 0 < s <= 4) for s in scales):
                raise ValueError(f"{name}: expected a non-empty list of scales in (0, 4], got {scales!r}")
        if merge not in ("greedy", "nms"):
            raise ValueError(f"merge: expected 'greedy' or 'nms', got {merge!r}")
        self.transform = transform
        self.backbone = backbone
        self.head = head
        self.num_classes = num_classes
        self.train_scales = tuple(float(s) for s in train_scales)
        self.test_scales = tuple(float(s) for s in test_scales)
        self.min_coverage = min_coverage
        self.negatives_per_positive = negatives_per_positive
        self.min_negatives = min_negatives
        self.score_thresh = score_thresh
        self.merge = merge
        self.merge_thresh = merge_thresh
        self.nms_thresh = nms_thresh
        self.merge_candidates = merge_candidates
        self.detections_per_img = detections_per_img
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))

    def forward(self, images, targets=None):
        check_images(images)
        if self.training:
            check_targets(targets, len(images), self.num_classes)
        original_sizes = [tuple(int(s) for s in img.shape[-2:]) for img in images]
        batch, targets = self.transform(images, targets)
        scales = self.train_scales if self.training else self.test_scales
        outputs = [self._run_scale(batch.tensors, s) for s in scales]
        if self.training:
            return self._loss(outputs, batch.image_sizes, targets)
        detections = self._detect(outputs, batch.image_sizes)
        return self.transform.postprocess(detections, batch.image_sizes, original_sizes)

    def _run_scale(self, tensors: torch.Tensor, scale: float) -> _ScaleOutput:
        x = tensors
        if scale != 1.0:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=True)
        features = list(self.backbone(x).values())[-1]
        logits, deltas = self.head(features)
        n, c, h, w = logits.shape
        # the scale actually applied (sizes are rounded down), per axis
        ry, rx = x.shape[-2] / tensors.shape[-2], x.shape[-1] / tensors.shape[-1]
        ys = (torch.arange(h, device=x.device, dtype=torch.float32) + 0.5) * STRIDE / ry
        xs = (torch.arange(w, device=x.device, dtype=torch.float32) + 0.5) * STRIDE / rx
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        centres = torch.stack([cx.reshape(-1), cy.reshape(-1)], 1)
        half = torch.tensor([STRIDE * self.head.window_cells / 2 / rx, STRIDE * self.head.window_cells / 2 / ry],
                            device=x.device)
        windows = torch.cat([centres - half, centres + half], 1)
        return _ScaleOutput(
            logits.permute(0, 2, 3, 1).reshape(n, h * w, c),
            deltas.permute(0, 2, 3, 1).reshape(n, h * w, c * 4),
            windows,
            centres,
        )

    @staticmethod
    def _inside(centres: torch.Tensor, image_size) -> torch.Tensor:
        """Locations whose centre lies in the image (not in the batch padding)."""
        return (centres[:, 0] < image_size[1]) & (centres[:, 1] < image_size[0])

    def _assign(self, windows, centres, gt):
        """(index of the ground-truth box of each location, -1 for background)."""
        if gt.shape[0] == 0:
            return torch.full((windows.shape[0],), -1, dtype=torch.long, device=windows.device)
        inside = (
            (centres[:, None, 0] > gt[None, :, 0]) & (centres[:, None, 0] < gt[None, :, 2])
            & (centres[:, None, 1] > gt[None, :, 1]) & (centres[:, None, 1] < gt[None, :, 3])
        )
        lo = torch.maximum(windows[:, None, :2], gt[None, :, :2])
        hi = torch.minimum(windows[:, None, 2:], gt[None, :, 2:])
        inter = (hi - lo).clamp(min=0).prod(-1)
        area = ((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]))[None, :]
        coverage = torch.where(inside, inter / area, torch.zeros_like(inter))
        best, index = coverage.max(1)
        return torch.where(best >= self.min_coverage, index, torch.full_like(index, -1))

    def _loss(self, outputs, image_sizes, targets):
        cls_losses, box_losses = [], []
        for i, (size, t) in enumerate(zip(image_sizes, targets)):
            gt = t["boxes"].to(torch.float32)
            logits, deltas, windows, matched = [], [], [], []
            for out in outputs:
                keep = self._inside(out.centres, size)
                logits.append(out.logits[i][keep])
                deltas.append(out.deltas[i][keep])
                windows.append(out.windows[keep])
                matched.append(self._assign(out.windows[keep], out.centres[keep], gt))
            logits, deltas, windows, matched = (torch.cat(v) for v in (logits, deltas, windows, matched))
            positive = matched >= 0
            labels = torch.zeros_like(matched)
            labels[positive] = t["labels"][matched[positive]]
            ce = F.cross_entropy(logits, labels, reduction="none")
            num_pos = int(positive.sum())
            # bootstrapping: every positive and the hardest negatives
            negative_ce = torch.where(positive, torch.full_like(ce, -1.0), ce.detach())
            num_neg = min(max(self.negatives_per_positive * num_pos, self.min_negatives), int((~positive).sum()))
            hard = negative_ce.topk(num_neg).indices
            selected = positive.clone()
            selected[hard] = True
            cls_losses.append(ce[selected].sum() / max(1, int(selected.sum())))
            if num_pos:
                pos = torch.where(positive)[0]
                columns = labels[pos, None] * 4 + torch.arange(4, device=labels.device)
                predicted = deltas[pos[:, None], columns]
                wanted = self.box_coder.encode(gt[matched[pos]], windows[pos])
                box_losses.append(F.smooth_l1_loss(predicted, wanted, beta=1 / 9, reduction="sum") / num_pos)
            else:
                box_losses.append(deltas.sum() * 0)
        n = len(targets)
        return {"loss_classifier": sum(cls_losses) / n, "loss_box_reg": sum(box_losses) / n}

    def _detect(self, outputs, image_sizes):
        results = []
        for i, size in enumerate(image_sizes):
            boxes_all, scores_all, labels_all = [], [], []
            for out in outputs:
                keep = self._inside(out.centres, size)
                probs = F.softmax(out.logits[i][keep], -1)
                location, cls = torch.where(probs[:, 1:] > self.score_thresh)
                cls = cls + 1
                deltas = out.deltas[i][keep].reshape(-1, self.num_classes, 4)[location, cls]
                boxes = self.box_coder.decode(deltas, out.windows[keep][location])[:, 0]
                boxes_all.append(clip_boxes(boxes, size))
                scores_all.append(probs[location, cls])
                labels_all.append(cls)
            boxes, scores, labels = torch.cat(boxes_all), torch.cat(scores_all), torch.cat(labels_all)
            merged_boxes, merged_scores, merged_labels = [], [], []
            for c in labels.unique().tolist():
                index = torch.where(labels == c)[0]
                top = scores[index].topk(min(self.merge_candidates, index.numel())).indices
                b, s = boxes[index[top]], scores[index[top]]
                if self.merge == "greedy":
                    b, s = greedy_merge(b, s, self.merge_thresh)
                else:
                    keep = ops.nms(b, s, self.nms_thresh)
                    b, s = b[keep], s[keep]
                merged_boxes.append(b)
                merged_scores.append(s)
                merged_labels.append(torch.full_like(s, c, dtype=torch.int64))
            if merged_boxes:
                boxes, scores, labels = torch.cat(merged_boxes), torch.cat(merged_scores), torch.cat(merged_labels)
            order = torch.argsort(scores, descending=True, stable=True)[: self.detections_per_img]
            results.append({"boxes": boxes[order], "scores": scores[order], "labels": labels[order]})
        return results


def build_overfeat(
    num_classes: int, backbone: str = "vgg16", min_size=600, max_size: int = 1000, depth: int = 50, base_width: int = 64, blocks=None, trainable_stages: int = 3,
    window_cells: int = 7, representation_size: int = 4096, regression_size: int = 1024, dropout: float = 0.5,
    **kw,
) -> OverFeat:
    """OverFeat on a stride-16 body: backbone "vgg16" (conv5_3) or
    "resnet" (C4 of ResNet-`depth`, `blocks`); `base_width` and
    `trainable_stages` size and freeze either. Other keywords go to OverFeat (scales, thresholds)."""
    if backbone == "vgg16":
        body = vgg16_body(base_width, trainable_stages)
        channels = body.out_channels
    elif backbone == "resnet":
        body = ResNet(depth, trainable_stages, (4,), base_width, blocks)
        channels = body.out_channels[0]
    else:
        raise ValueError(f"backbone: expected 'vgg16' or 'resnet', got {backbone!r}")
    head = OverFeatHead(channels, num_classes, window_cells, representation_size, regression_size, dropout)
    transform = Transform(min_size, max_size, image_mean=(0.485, 0.456, 0.406), image_std=(0.229, 0.224, 0.225))
    return OverFeat(transform, body, head, num_classes, **kw)
