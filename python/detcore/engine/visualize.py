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


def place_labels(boxes, label_sizes, width: float, height: float) -> List[tuple]:
    """Top-left corners of label rectangles (``label_sizes``: (w, h) in pixels),
    one per box, placed in order so that none overlaps a label placed before
    it where the image leaves room: just above the box's top-left corner, else
    just inside it, else the nearest free place further down or up."""
    placed: List[tuple] = []
    corners = []
    for (x1, y1, _, _), (w, h) in zip(boxes, label_sizes):
        x = float(min(max(x1, 0.0), max(width - w, 0.0)))
        above, inside = y1 - h, y1
        candidates = [above, inside]
        step = max(h, 1.0)
        for k in range(1, int(height / step) + 2):
            candidates += [inside + k * step, above - k * step]
        candidates = [min(max(y, 0.0), max(height - h, 0.0)) for y in candidates]
        free = next((y for y in candidates if not any(_overlap((x, y, w, h), r) for r in placed)), candidates[0])
        placed.append((x, free, w, h))
        corners.append((x, free))
    return corners


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def save_detection_picture(path: str, image: np.ndarray, pred: dict, class_names: Sequence[str], *,
                           score_threshold: float = 0.5, dpi: int = 100) -> str:
    """One image with its detections, drawn at the image's own resolution
    (one picture pixel per image pixel); labels of overlapping detections are
    moved apart so that each stays readable, the highest scores placed first."""
    plt = _pyplot()
    image = np.asarray(image, dtype=np.float64)
    if image.max() > 1.0:
        image = image / 255.0
    height, width = image.shape[:2]
    order = [i for i in np.argsort(-np.asarray(pred["scores"], dtype=np.float64), kind="stable")
             if pred["scores"][i] >= score_threshold]
    canvas = image.copy()
    if "masks" in pred:
        for i, mask in zip(order, _decode_masks([pred["masks"][i] for i in order])):
            colour = _COLOURS[int(pred["labels"][i]) % len(_COLOURS)]
            canvas[mask] = 0.55 * canvas[mask] + 0.45 * colour
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(np.clip(canvas, 0, 1), interpolation="nearest")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    font_px = float(np.clip(min(height, width) / 30, 8, 18))
    texts = []
    for i in order:
        label = int(pred["labels"][i])
        name = class_names[label] if 0 <= label < len(class_names) else str(label)
        texts.append(f"{name} {pred['scores'][i]:.2f}")
    sizes = [(0.62 * font_px * len(t) + 4, 1.35 * font_px + 2) for t in texts]
    corners = place_labels([pred["boxes"][i] for i in order], sizes, width, height)
    line = max(1.0, min(height, width) / 250)
    for i, text, (x, y) in zip(order, texts, corners):
        colour = _COLOURS[int(pred["labels"][i]) % len(_COLOURS)]
        x1, y1, x2, y2 = (float(v) for v in pred["boxes"][i])
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=line))
        ax.text(x + 2, y + 1, text, fontsize=font_px * 72 / dpi, color="white", va="top", ha="left",
                bbox={"facecolor": colour, "alpha": 0.85, "pad": 1, "edgecolor": "none"})
        if "keypoints" in pred:
            kps = np.asarray(pred["keypoints"][i])
            ax.scatter(kps[:, 0], kps[:, 1], s=(font_px / 2) ** 2, c=[colour], edgecolors="white", linewidths=0.5)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_training_curves(records: Sequence[dict], path: str, title: str = "training") -> str:
    """Total and per-term losses and the learning rate against the iteration,
    and the validation AP (records with ``bbox/AP``, ``segm/AP``, ...) when the
    run evaluated during training."""
    plt = _pyplot()
    fig = training_figure(records, title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_figure(records: Sequence[dict], title: str = "training"):
    """The matplotlib figure of :func:`plot_training_curves`."""
    plt = _pyplot()
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if any(k.endswith("/AP") for k in r)]
    panels = 3 if evals else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.6))
    ax_loss, ax_lr = axes[0], axes[1]
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
    if evals:
        ax_ap = axes[2]
        for key in sorted({k for r in evals for k in r if k.endswith("/AP") or k.endswith("/AP50")}):
            points = [(r["iteration"], 100 * r[key]) for r in evals if key in r]
            ax_ap.plot(*zip(*points), marker="o", markersize=3, label=key)
        ax_ap.set_xlabel("iteration")
        ax_ap.set_ylabel("validation AP (%)")
        ax_ap.legend(fontsize=7)
    fig.tight_layout()
    return fig
