"""A tiny detector obeying the detcore.models contract, for the engine tests
only (the real detectors live in detcore.models): a small conv net predicts a
per-pixel class map; training returns per-image averaged losses, inference
returns one detection per predicted class (box, score, soft mask, extreme
points as keypoints)."""

import torch
import torch.nn.functional as F


class StandInDetector(torch.nn.Module):
    def __init__(self, num_classes, width=8, num_keypoints=0):
        super().__init__()
        self.num_classes, self.num_keypoints = num_classes, num_keypoints
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU())
        self.classifier = torch.nn.Conv2d(width, num_classes, 1)
        self.objectness = torch.nn.Conv2d(width, 1, 1)

    def forward(self, images, targets=None):
        if self.training and targets is None:
            raise ValueError("targets are needed in training mode")
        outputs, cls_losses, obj_losses = [], [], []
        for i, image in enumerate(images):
            features = self.body(image[None])
            logits = self.classifier(features)[0]
            objectness = self.objectness(features)[0, 0]
            if self.training:
                t = targets[i]
                semantic = torch.zeros(image.shape[-2:], dtype=torch.int64, device=image.device)
                for mask, label in zip(t["masks"], t["labels"]):
                    semantic[mask.bool()] = label
                cls_losses.append(F.cross_entropy(logits[None], semantic[None]))
                obj_losses.append(F.binary_cross_entropy_with_logits(objectness, (semantic > 0).float()))
            else:
                outputs.append(self._detect(logits))
        if self.training:
            return {"loss_classifier": torch.stack(cls_losses).mean(), "loss_objectness": torch.stack(obj_losses).mean()}
        return outputs

    def _detect(self, logits):
        probs = logits.softmax(0)
        winner = probs.argmax(0)
        boxes, labels, scores, masks, keypoints = [], [], [], [], []
        for label in range(1, self.num_classes):
            region = winner == label
            if region.sum() < 4:
                continue
            ys, xs = torch.nonzero(region, as_tuple=True)
            boxes.append(torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float())
            labels.append(label)
            scores.append(probs[label][region].mean())
            masks.append(probs[label] * region)
            pts = torch.stack([xs, ys], 1).float()
            extremes = [pts[ys.argmin()], pts[xs.argmax()], pts[ys.argmax()], pts[xs.argmin()]]
            keypoints.append(torch.cat([torch.stack(extremes), torch.ones(4, 1)], 1))
        h, w = logits.shape[-2:]
        out = {
            "boxes": torch.stack(boxes) if boxes else torch.zeros(0, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "scores": torch.stack(scores) if scores else torch.zeros(0),
            "masks": torch.stack(masks)[:, None] if masks else torch.zeros(0, 1, h, w),
        }
        if self.num_keypoints:
            out["keypoints"] = torch.stack(keypoints) if keypoints else torch.zeros(0, 4, 3)
        return out


def build(num_classes, **overrides):
    return StandInDetector(num_classes, **overrides)
