"""Pictures: detections drawn on images, and the training curves (matplotlib, Agg)."""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

_COLOURS = np.array([[0.90, 0.10, 0.10], [0.10, 0.60, 0.95], [0.20, 0.80, 0.20], [0.95, 0.65, 0.05],
                     [0.65, 0.25, 0.85], [0.05, 0.80, 0.80], [0.95, 0.35, 0.65], [0.55, 0.55, 0.15]])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _decode_masks(masks) -> List[np.ndarray]:
    from pycocotools import mask as mask_utils

    out = []
    for m in masks:
        if isinstance(m, dict):
            rle = dict(m, counts=m["counts"].encode("ascii") if isinstance(m["counts"], str) else m["counts"])
            out.append(mask_utils.decode(rle).astype(bool))
        else:
            out.append(np.asarray(m) >= 0.5)
    return out


def draw_detections(ax, image: np.ndarray, pred: dict, class_names: Sequence[str], score_threshold: float = 0.5,
                    title: Optional[str] = None) -> int:
    """Draws ``image`` (H, W, 3 float in [0, 1] or uint8) with the detections of
    ``pred`` (numpy boxes / scores / labels, optional masks and keypoints)
    scoring at least ``score_threshold``; returns how many were drawn."""
    plt = _pyplot()
    image = np.asarray(image, dtype=np.float64)
    if image.max() > 1.0:
        image = image / 255.0
    keep = [i for i, s in enumerate(pred["scores"]) if s >= score_threshold]
    masks = _decode_masks([pred["masks"][i] for i in keep]) if "masks" in pred else []
    canvas = image.copy()
    for k, mask in enumerate(masks):
        colour = _COLOURS[int(pred["labels"][keep[k]]) % len(_COLOURS)]
        canvas[mask] = 0.55 * canvas[mask] + 0.45 * colour
    ax.imshow(np.clip(canvas, 0, 1))
    for i in keep:
        label = int(pred["labels"][i])
        colour = _COLOURS[label % len(_COLOURS)]
        x1, y1, x2, y2 = (float(v) for v in pred["boxes"][i])
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.5))
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        ax.text(x1, y1, f"{name} {pred['scores'][i]:.2f}", fontsize=6, color="white", va="bottom",
                bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "edgecolor": "none"})
        if "keypoints" in pred:
            kps = np.asarray(pred["keypoints"][i])
            ax.scatter(kps[:, 0], kps[:, 1], s=9, c=[colour], edgecolors="white", linewidths=0.5)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=7)
    return len(keep)


def save_detection_grid(path: str, images: Sequence[np.ndarray], preds: Sequence[dict], class_names, *,
                        score_threshold: float = 0.5, titles: Optional[Sequence[str]] = None, columns: int = 4) -> str:
    plt = _pyplot()
    n = len(images)
    columns = max(1, min(columns, n))
    rows = max(1, (n + columns - 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for k, (image, pred) in enumerate(zip(images, preds)):
        draw_detections(axes.flat[k], image, pred, class_names, score_threshold, titles[k] if titles else None)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training_curves(records: Sequence[dict], path: str, title: str = "training") -> str:
    """Total and per-term losses and the learning rate against the iteration."""
    plt = _pyplot()
    train = [r for r in records if "loss" in r]
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.6))
    if train:
        its = [r["iteration"] for r in train]
        terms = sorted({k for r in train for k in r if k.startswith("loss_")})
        losses = np.array([r["loss"] for r in train], dtype=np.float64)
        ax_loss.plot(its, losses, color="black", linewidth=0.6, alpha=0.35)
        window = max(1, len(losses) // 15)
        smooth = [np.median(losses[max(0, i - window + 1):i + 1]) for i in range(len(losses))]
        ax_loss.plot(its, smooth, label=f"loss (running median of {window} logs)" if window > 1 else "loss", color="black",
                     linewidth=1.8)
        for term in terms:
            ax_loss.plot(its, [r.get(term, np.nan) for r in train], label=term, linewidth=0.8, alpha=0.8)
        ax_lr.plot(its, [r["lr"] for r in train], color="tab:blue")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_ylabel("loss")
    ax_loss.set_yscale("log")
    ax_loss.legend(fontsize=7)
    ax_loss.set_title(title)
    ax_lr.set_xlabel("iteration")
    ax_lr.set_ylabel("learning rate")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
