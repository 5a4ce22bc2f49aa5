"""The second stage: samples and labels proposals in training, pools their
features, runs the box head and optionally the mask and keypoint heads."""

from __future__ import annotations

import torch
from torch import nn

from ... import ops
from ..box_ops import BoxCoder
from ..ohem import check_ohem_settings, hardest_examples
from .box_head import box_loss, box_loss_per_roi, postprocess_boxes
from .keypoint_head import heatmaps_to_keypoints, keypoint_loss
from .mask_head import mask_loss, mask_probs
from .matching import BETWEEN, BELOW_LOW, BalancedSampler, Matcher


class RoIHeads(nn.Module):
    """Args (defaults: Fast/Faster R-CNN papers, torchvision):
    box_pooler, box_head, box_predictor: the box branch.
    fg_iou_thresh 0.5 (foreground IoU >= 0.5); bg_iou_thresh 0.5 and
    bg_iou_lo 0.0 (background IoU in [bg_iou_lo, bg_iou_thresh); the Fast
    R-CNN paper used 0.1); batch_size_per_image 512; positive_fraction 0.25;
    bbox_reg_weights (10, 10, 5, 5); score_thresh 0.05; nms_thresh 0.5;
    detections_per_img 100. mask_* / keypoint_*: optional branches.

    sampler: how the training RoIs are picked. "balanced" (Fast R-CNN):
    batch_size_per_image at random, at most positive_fraction foreground.
    "ohem" (online hard example mining, Shrivastava et al. 2016): a
    read-only pass (no gradient, dropout off) scores every candidate RoI by
    its classification + box loss, an NMS of the RoIs by loss at IoU
    ohem_nms_thresh (0.7, the paper's) drops near copies, and the
    batch_size_per_image highest-loss survivors of each image are the only
    RoIs of the training pass; positive_fraction is not used.

    The multi-task loss's switches (the Fast R-CNN paper's Table 6):
    cls_loss_weight and box_reg_loss_weight (1, 1) scale the classification and
    box-regression losses; 0 leaves that loss out of the returned dict, so no
    gradient reaches its layer (``box_predictor.cls_score`` / ``.bbox_pred``).
    box_reg_at_test False: the detections are the proposals themselves (each
    class scoring every proposal), the regressor unused.

    mask_on_box_features: the ResNet-C4 Mask R-CNN (Figure 4 left of the
    paper): the mask predictor reads the box head's map (``box_head.trunk``,
    res5) of the foreground RoIs, not features of its own; ``mask_pooler`` and
    ``mask_head`` are then None. In training the box branch's map is reused;
    at test time the trunk runs again on the detected boxes."""

    def __init__(
        self,
        box_pooler,
        box_head,
        box_predictor,
        fg_iou_thresh: float = 0.5,
        bg_iou_thresh: float = 0.5,
        bg_iou_lo: float = 0.0,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        bbox_reg_weights=(10.0, 10.0, 5.0, 5.0),
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
        mask_pooler=None,
        mask_head=None,
        mask_predictor=None,
        keypoint_pooler=None,
        keypoint_head=None,
        keypoint_predictor=None,
        sampler: str = "balanced",
        ohem_nms_thresh: float = 0.7,
        cls_loss_weight: float = 1.0,
        box_reg_loss_weight: float = 1.0,
        box_reg_at_test: bool = True,
        mask_on_box_features: bool = False,
    ):
        super().__init__()
        if mask_on_box_features and (mask_pooler is not None or mask_head is not None or mask_predictor is None
                                     or not hasattr(box_head, "trunk")):
            raise ValueError("mask_on_box_features: expected a mask_predictor, no mask_pooler or mask_head, and a "
                             "box_head with trunk() and pool() (e.g. Res5Head)")
        for name, weight in (("cls_loss_weight", cls_loss_weight), ("box_reg_loss_weight", box_reg_loss_weight)):
            if not (isinstance(weight, (int, float)) and not isinstance(weight, bool) and 0 <= weight < float("inf")):
                raise ValueError(f"{name}: expected a finite number >= 0, got {weight!r}")
        if not isinstance(box_reg_at_test, bool):
            raise ValueError(f"box_reg_at_test: expected true or false, got {box_reg_at_test!r}")
        if cls_loss_weight == 0 and box_reg_loss_weight == 0:
            raise ValueError("cls_loss_weight, box_reg_loss_weight: expected at least one > 0, got both 0")
        self.cls_loss_weight = float(cls_loss_weight)
        self.box_reg_loss_weight = float(box_reg_loss_weight)
        self.box_reg_at_test = box_reg_at_test
        self.box_pooler = box_pooler
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality=False, ignore_below=bg_iou_lo)
        if sampler not in ("balanced", "ohem"):
            raise ValueError(f"roi_sampler: expected 'balanced' or 'ohem', got {sampler!r}")
        if sampler == "ohem":
            check_ohem_settings(batch_size_per_image, ohem_nms_thresh, batch_name="box_batch_size_per_image")
        self.ohem = sampler == "ohem"
        self.ohem_nms_thresh = ohem_nms_thresh
        self.batch_size_per_image = batch_size_per_image
        self.sampler = BalancedSampler(batch_size_per_image, positive_fraction)
        self.box_coder = BoxCoder(bbox_reg_weights)
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.mask_pooler = mask_pooler
        self.mask_head = mask_head
        self.mask_predictor = mask_predictor
        self.keypoint_pooler = keypoint_pooler
        self.keypoint_head = keypoint_head
        self.keypoint_predictor = keypoint_predictor
        self.mask_on_box_features = mask_on_box_features

    @property
    def has_mask(self) -> bool:
        return self.mask_predictor is not None

    @property
    def has_keypoint(self) -> bool:
        return self.keypoint_predictor is not None

    def mask_features(self, features, boxes):
        """What the mask predictor reads for the boxes (one (Ni, 4) tensor per image)."""
        if self.mask_on_box_features:
            return self.box_head.trunk(self.box_pooler(features, boxes))
        return self.mask_head(self.mask_pooler(features, boxes))

    def _sample(self, proposals, targets):
        """Adds the ground truth to the proposals, labels them by IoU and
        samples a balanced set (with OHEM: keeps every labelled one). Returns
        per image: boxes, labels, matched gt index, regression targets."""
        out = []
        for props, t in zip(proposals, targets):
            gt = t["boxes"].to(props.dtype)
            props = torch.cat([props, gt])
            if gt.shape[0] == 0:
                matched = torch.zeros(props.shape[0], dtype=torch.int64, device=props.device)
                labels = torch.zeros_like(matched)
            else:
                m = self.matcher(ops.box_iou(gt, props))
                matched = m.clamp(min=0)
                labels = t["labels"][matched].to(torch.int64)
                labels[m == BELOW_LOW] = 0
                labels[m == BETWEEN] = -1
            if self.ohem:
                keep = torch.where(labels >= 0)[0]
            else:
                keep = torch.cat(self.sampler(labels))
            props, labels, matched = props[keep], labels[keep], matched[keep]
            gt_for_reg = gt if gt.shape[0] else props.new_zeros((1, 4))
            out.append((props, labels, matched, self.box_coder.encode(gt_for_reg[matched], props)))
        return [list(x) for x in zip(*out)]

    def _hardest(self, features, proposals, labels, matched, reg_targets):
        """OHEM: the read-only pass over every candidate RoI, then per image
        the highest-loss RoIs after the NMS by loss (see the class doc)."""
        modes = [(m, m.training) for m in (self.box_head, self.box_predictor)]
        try:
            for m, _ in modes:
                m.train(False)
            with torch.no_grad():
                logits, deltas = self.box_predictor(self.box_head(self.box_pooler(features, proposals)))
                losses = box_loss_per_roi(logits, deltas, torch.cat(labels), torch.cat(reg_targets),
                                          self.cls_loss_weight, self.box_reg_loss_weight)
        finally:
            for m, mode in modes:
                m.train(mode)
        out = []
        for p, lab, m, r, loss in zip(proposals, labels, matched, reg_targets,
                                      losses.split([p.shape[0] for p in proposals])):
            keep = hardest_examples(p, loss, self.batch_size_per_image, self.ohem_nms_thresh)
            out.append((p[keep], lab[keep], m[keep], r[keep]))
        return [list(x) for x in zip(*out)]

    def forward(self, features, proposals, image_sizes, targets=None):
        """Returns (detections per image, losses)."""
        if self.training:
            proposals, labels, matched, reg_targets = self._sample(proposals, targets)
            if self.ohem:
                proposals, labels, matched, reg_targets = self._hardest(
                    features, proposals, labels, matched, reg_targets)
        x = self.box_pooler(features, proposals)
        if self.mask_on_box_features:
            box_map = self.box_head.trunk(x)
            class_logits, box_deltas = self.box_predictor(self.box_head.pool(box_map))
        else:
            class_logits, box_deltas = self.box_predictor(self.box_head(x))
        if self.training:
            losses = box_loss(class_logits, box_deltas, torch.cat(labels), torch.cat(reg_targets),
                              self.cls_loss_weight, self.box_reg_loss_weight)
            if self.has_mask or self.has_keypoint:
                fg = [torch.where(lab > 0)[0] for lab in labels]
                fg_boxes = [p[i] for p, i in zip(proposals, fg)]
                fg_matched = [m[i] for m, i in zip(matched, fg)]
            if self.has_mask:
                if self.mask_on_box_features:  # the foreground rows of the box branch's map, in the same order
                    logits = self.mask_predictor(box_map[torch.where(torch.cat(labels) > 0)[0]])
                else:
                    logits = self.mask_predictor(self.mask_head(self.mask_pooler(features, fg_boxes)))
                losses["loss_mask"] = mask_loss(
                    logits, fg_boxes, [t["masks"] for t in targets], [t["labels"] for t in targets], fg_matched
                )
            if self.has_keypoint:
                logits = self.keypoint_predictor(self.keypoint_head(self.keypoint_pooler(features, fg_boxes)))
                losses["loss_keypoint"] = keypoint_loss(logits, fg_boxes, [t["keypoints"] for t in targets], fg_matched)
            return [], losses

        results = postprocess_boxes(
            class_logits,
            box_deltas if self.box_reg_at_test else None,
            proposals,
            image_sizes,
            self.box_coder,
            self.score_thresh,
            self.nms_thresh,
            self.detections_per_img,
        )
        boxes = [r["boxes"] for r in results]
        if self.has_mask:
            logits = self.mask_predictor(self.mask_features(features, boxes))
            for r, p in zip(results, mask_probs(logits, [r["labels"] for r in results])):
                r["masks"] = p
        if self.has_keypoint:
            maps = self.keypoint_predictor(self.keypoint_head(self.keypoint_pooler(features, boxes)))
            for r, m, b in zip(results, maps.split([b.shape[0] for b in boxes]), boxes):
                r["keypoints"], r["keypoints_scores"] = heatmaps_to_keypoints(m, b)
        return results, {}
