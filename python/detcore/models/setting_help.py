"""One line per model setting (``model.KEY=VALUE`` on the command line), for
``detcore train --model NAME --list-settings``. The same name means the same
thing in every builder."""

from __future__ import annotations

from typing import List

MODEL_SETTING_HELP = {
    # input size
    "min_size": "the model resizes the shorter image side to this (a tuple: one at random per image in training)",
    "max_size": "... while keeping the longer side at most this",
    # backbone
    "depth": "ResNet depth: 50 or 101",
    "base_width": "channels of the backbone's first stage (64 in the papers; 8-16 make a tiny model)",
    "blocks": "ResNet blocks per stage, e.g. (1, 1, 1, 1) for a tiny model (None: the depth's)",
    "trainable_stages": "backbone stages that train, counted from the last (5 = all, stem included)",
    "fpn_channels": "FPN output channels (256 in the papers)",
    "bn_eps": "eps of the frozen batch norms",
    # RPN
    "rpn_pre_nms_top_n": "proposals kept per level before NMS, {'training': N, 'testing': M}",
    "rpn_post_nms_top_n": "proposals kept per image after NMS, {'training': N, 'testing': M}",
    "rpn_batch_size_per_image": "anchors sampled per image for the RPN loss",
    "feature_stride": "ResNet-C4 detectors: 16 (res4 features, res5 as the RoI head) or 32 (res5 features and "
                      "the FPN-style head: Mask R-CNN's C5 RoIAlign ablation)",
    "anchor_sizes": "RPN anchor sizes in pixels on the one feature map",
    "aspect_ratios": "RPN anchor aspect ratios (height / width)",
    # RoI heads
    "representation_size": "width of the box head's fully connected layers",
    "pooler": "RoI pooling: 'align' (RoIAlign) or 'pool' (RoIPool); 'roi_align' / 'roi_pool' are the same",
    "sampling_ratio": "RoIAlign sampling points per bin side (<= 0: adaptive)",
    "aligned": "RoIAlign's half-pixel shift (True: detectron2's fix)",
    "box_batch_size_per_image": "RoIs sampled per image for the box head's loss",
    "box_positive_fraction": "fraction of foreground RoIs in that sample",
    "bg_iou_lo": "lowest IoU of a background RoI (Fast R-CNN: 0.1)",
    "roi_sampler": "training RoIs: 'balanced' (at random, box_positive_fraction foreground) or 'ohem' (the "
                   "box_batch_size_per_image highest-loss RoIs after an NMS by loss; Shrivastava et al. 2016)",
    "box_score_thresh": "detections scoring lower are dropped",
    "box_nms_thresh": "per-class NMS IoU threshold of the detections",
    "box_detections_per_img": "at most this many detections per image",
    "dropout": "dropout of the fc6/fc7 head",
    "svd_ranks": "test time: fc6/fc7 as truncated SVDs of these ranks, e.g. (1024, 256) (Fast R-CNN 3.1; () = off)",
    "box_cls_loss_weight": "weight of the box head's classification loss (0: left out, cls_score gets no gradient)",
    "box_reg_loss_weight": "weight of the box-regression loss (0: left out, bbox_pred gets no gradient)",
    "box_reg_at_test": "apply the box regressor at test time (False: the detections are the proposals' boxes)",
    "mask_width": "channels of the mask head's convs",
    "mask_threshold": "mask probability threshold when pasting masks into the image",
    "mask_paste_mode": "resize of each mask into its box when pasted: 'bilinear' (torchvision's) or 'bicubic'",
    "num_keypoints": "keypoints per instance (detcore train takes it from the dataset)",
    "keypoint_width": "channels of the keypoint head's convs",
    # RetinaNet
    "fg_iou_thresh": "anchors with IoU >= this are foreground",
    "bg_iou_thresh": "anchors with IoU < this are background",
    "focal_alpha": "focal loss alpha, the weight of the positives (negative: no weighting; dense_loss='focal')",
    "focal_gamma": "focal loss gamma (0: alpha-balanced cross entropy; dense_loss='focal')",
    "score_thresh": "detections scoring lower are dropped",
    "nms_thresh": "NMS IoU threshold of the detections",
    "detections_per_img": "at most this many detections per image",
    "topk_candidates": "candidates kept per level before NMS",
    "dense_loss": "classification loss: 'focal' (every anchor; focal_gamma=0 is alpha-balanced cross entropy) "
                  "or 'ohem' (cross entropy on the highest-loss anchors after an NMS by loss)",
    "ohem_batch_size_per_image": "OHEM: anchors per image trained on (the highest-loss ones)",
    "ohem_positive_fraction": "OHEM: at most this fraction of the anchors foreground and (1 - f) / f negatives "
                              "per positive (0.25: 'OHEM 1:3'); None: no ratio",
    # online hard example mining, RoI heads and RetinaNet
    "ohem_nms_thresh": "OHEM: IoU above which a lower-loss example's box is suppressed (>= 1: no NMS)",
    # R-CNN and SPP-net (region detectors with SVM and regressor stages)
    "input_size": "R-CNN: side of the warped region fed to the CNN (227, the paper)",
    "context_pad": "R-CNN: pixels of context around each box in the warped region (16)",
    "levels": "SPP-net: spatial pyramid levels, bins per side (6, 3, 2, 1)",
    "finetune_conv": "SPP-net: fine-tuning also updates the conv layers below the SPP layer (Fast R-CNN's change)",
    "image_mean": "per-channel mean subtracted from the [0, 1] image",
    "image_std": "per-channel standard deviation the image is divided by",
    "fg_iou": "fine-tuning: regions with IoU >= this take the box's class",
    "batch_size": "fine-tuning: regions per batch, drawn across the batch's images (128)",
    "positive_fraction": "fine-tuning: fraction of foreground regions in a batch (0.25)",
    "svm_feature": "SVM features: 'pool5', 'fc6' or 'fc7'",
    "svm_C": "SVM regularisation C (liblinear)",
    "svm_pos_weight": "SVM weight of the positive class",
    "svm_neg_iou": "SVM negatives: proposals with IoU below this with every box of the class",
    "svm_epochs": "SVM hard-negative mining passes over the images",
    "svm_retrain_every": "SVM: retrain after this many new hard negatives",
    "reg_iou": "box regressors train on proposals with IoU >= this",
    "reg_lambda": "box regressors' ridge regularisation (1000, the paper)",
    "region_batch": "regions per CNN pass at test time",
    # OverFeat
    "backbone": "OverFeat's body: 'vgg16' (conv5_3) or 'resnet' (C4)",
    "window_cells": "OverFeat: side of the classifier's window on the stride-16 map (7, VGG16's fc6)",
    "regression_size": "OverFeat: width of the regressor's hidden layer",
    "train_scales": "OverFeat: image scales of one training step",
    "test_scales": "OverFeat: image scales evaluated at test time",
    "min_coverage": "OverFeat: a location is positive when its window covers this fraction of the box",
    "negatives_per_positive": "OverFeat: hard negatives kept per positive location",
    "min_negatives": "OverFeat: hard negatives kept per image at least",
    "merge": "OverFeat: 'greedy' (the paper's merge) or 'nms'",
    "merge_thresh": "OverFeat: greedy merge joins boxes while their match score is at most this",
    "merge_candidates": "OverFeat: highest-scoring boxes per class entering the merge",
}


def format_model_settings(name: str) -> List[str]:
    """``model.key = default  # description`` lines of model ``name``'s settings."""
    from .builders import model_settings

    settings = model_settings(name)
    if settings is None:
        return [f"# {name} does not declare its settings"]
    return [f"model.{key} = {default!r}  # {MODEL_SETTING_HELP.get(key, '')}"
            for key, default in sorted(settings.items())]
