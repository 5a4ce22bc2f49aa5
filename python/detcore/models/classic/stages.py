"""R-CNN's post-fine-tuning stages, shared by R-CNN and SPP-net:

* per-class linear SVMs (hinge loss) with hard-negative mining, on fc7 (or
  fc6 / pool5) features: positives are the ground-truth boxes of the class,
  negatives the proposals overlapping no box of the class by IoU >= 0.3;
* per-class ridge box regressors on pool5 features (lambda 1000) from the
  proposals with IoU >= 0.6 to a ground-truth box, targets in detcore's box
  coding (``detcore.ops.encode_boxes``, weights 1).

Solvers: scikit-learn's ``LinearSVC`` (liblinear, the solver R-CNN itself
used, exact dual coordinate descent for the hinge loss) and ``Ridge``
(a direct solve): well-kept, exact, and as fast as anything written here.

Both take ``records``: a callable returning a fresh iterator of
:class:`~detcore.models.classic.feature_cache.RegionRecord` (one per image),
so the features stream from the disk cache and are never all in memory."""

from __future__ import annotations

import warnings
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from ... import ops
from .feature_cache import RegionRecord

Records = Callable[[], Iterator[RegionRecord]]
TARGET_NORM = 20.0  # R-CNN scales features to this mean L2 norm before the SVMs


def _require_sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ImportError("the SVM and box-regression stages need scikit-learn: pip install 'detcore[classic]'") from None


def feature_scale(records: Records, features_of: Callable[[np.ndarray], np.ndarray], max_images: int = 50) -> float:
    """TARGET_NORM / the mean L2 norm of the features of the first images' regions."""
    norms = []
    for i, rec in enumerate(records()):
        if i >= max_images:
            break
        if rec.pool5.shape[0]:
            norms.append(np.linalg.norm(features_of(rec.pool5).astype(np.float64), axis=1))
    mean = float(np.concatenate(norms).mean()) if norms else 0.0
    return TARGET_NORM / mean if mean > 0 else 1.0


def _class_iou(rec: RegionRecord, cls: int) -> np.ndarray:
    """Each row's best IoU with a ground-truth box of class `cls` (0 when none)."""
    gt = rec.gt_boxes[rec.gt_labels == cls]
    if gt.shape[0] == 0 or rec.boxes.shape[0] == 0:
        return np.zeros(rec.boxes.shape[0], np.float32)
    return ops.box_iou(np.ascontiguousarray(gt, np.float32), np.ascontiguousarray(rec.boxes, np.float32)).max(0)


class _ClassSVM:
    """One class's SVM and its cache of hard negatives (keys: (image, row))."""

    def __init__(self, positives: np.ndarray, dim: int):
        self.positives = positives
        self.w, self.b = np.zeros(dim), 0.0
        self.neg: List[np.ndarray] = []
        self.keys: List[Tuple[int, int]] = []
        self.known = set()
        self.new = 0

    def scores(self, x: np.ndarray) -> np.ndarray:
        return x @ self.w + self.b

    def add(self, image: int, rows: np.ndarray, feats: np.ndarray) -> None:
        for row, f in zip(rows.tolist(), feats):
            if (image, row) not in self.known:
                self.known.add((image, row))
                self.keys.append((image, row))
                self.neg.append(f)
                self.new += 1

    def fit(self, C: float, pos_weight: float, evict_below: float = -1.2) -> None:
        from sklearn.svm import LinearSVC

        self.new = 0
        if not self.neg or not self.positives.shape[0]:
            return
        neg = np.stack(self.neg)
        x = np.concatenate([self.positives, neg])
        y = np.concatenate([np.ones(len(self.positives)), np.zeros(len(neg))])
        # tol 0.1: liblinear's own stopping rule for this dual solver (-s 3, "dual maximal
        # violation <= 0.1"), which R-CNN's training code kept (it set -w1, -c, -s and -B only);
        # scikit-learn's 1e-4 is 1000x stricter and ran for many minutes per class on hard caches
        svm = LinearSVC(C=C, loss="hinge", dual=True, class_weight={1: pos_weight, 0: 1.0},
                        intercept_scaling=10.0, tol=0.1, max_iter=20000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # liblinear's convergence notes on tiny caches
            svm.fit(x, y)
        self.w, self.b = svm.coef_[0].astype(np.float64), float(svm.intercept_[0])
        # easy negatives leave the cache (they may come back if they become hard again)
        keep = np.where(self.scores(neg) >= evict_below)[0]
        for i in set(range(len(neg))) - set(keep.tolist()):
            self.known.discard(self.keys[i])
        self.neg = [self.neg[i] for i in keep]
        self.keys = [self.keys[i] for i in keep]


def train_svms(
    records: Records, num_classes: int, features_of: Callable[[np.ndarray], np.ndarray], *, C: float = 0.001,
    pos_weight: float = 2.0, neg_iou: float = 0.3, epochs: int = 1, retrain_every: int = 2000,
    scale: Optional[float] = None, log: Callable[[str], None] = lambda s: None,
) -> Tuple[np.ndarray, np.ndarray, float]:
    """Trains one SVM per foreground class. Returns (weights (num_classes, D),
    biases (num_classes,), the feature scale they expect); row 0 (background)
    is zero. A class without positives gets bias -1000 (never detected)."""
    _require_sklearn()
    if epochs < 1 or retrain_every < 1:
        raise ValueError(f"epochs, retrain_every: expected >= 1, got {epochs}, {retrain_every}")
    if scale is None:
        scale = feature_scale(records, features_of)
    positives = {c: [] for c in range(1, num_classes)}
    dim = None
    for rec in records():
        feats = features_of(rec.pool5)
        dim = feats.shape[1]
        for c in range(1, num_classes):
            rows = np.where(rec.is_gt & (_gt_label_of_rows(rec) == c))[0]
            if rows.size:
                positives[c].append(feats[rows] * scale)
    if dim is None:
        raise ValueError("records: no cached image")
    svms = {c: _ClassSVM(np.concatenate(p) if p else np.zeros((0, dim)), dim) for c, p in positives.items()}
    for epoch in range(epochs):
        for image, rec in enumerate(records()):
            feats = features_of(rec.pool5) * scale
            for c, svm in svms.items():
                if not svm.positives.shape[0]:
                    continue
                rows = np.where(~rec.is_gt & (_class_iou(rec, c) < neg_iou))[0]
                hard = rows[svm.scores(feats[rows]) > -1.0 - 1e-4]
                svm.add(image, hard, feats[hard])
                if svm.new >= retrain_every:
                    svm.fit(C, pos_weight)
        for svm in svms.values():
            if svm.new:
                svm.fit(C, pos_weight)
        log(f"SVM epoch {epoch + 1}/{epochs}: hard negatives cached per class "
            f"{ {c: len(s.neg) for c, s in svms.items()} }")
    weights, biases = np.zeros((num_classes, dim), np.float32), np.zeros(num_classes, np.float32)
    for c, svm in svms.items():
        if not svm.positives.shape[0]:
            biases[c] = -1000.0
            log(f"SVM class {c}: no positive example; it is never detected")
            continue
        weights[c], biases[c] = svm.w, svm.b
    return weights, biases, scale


def _gt_label_of_rows(rec: RegionRecord) -> np.ndarray:
    """The class of each ground-truth row (rows after the proposals), 0 for proposals."""
    labels = np.zeros(rec.boxes.shape[0], np.int64)
    labels[np.where(rec.is_gt)[0]] = rec.gt_labels
    return labels


def regression_targets(rec: RegionRecord, iou_thresh: float, weights=(1.0, 1.0, 1.0, 1.0)):
    """Rows overlapping a ground-truth box by IoU >= iou_thresh: (rows, class of
    their best box, (R, 4) deltas that take the row's box to that box)."""
    if rec.gt_boxes.shape[0] == 0 or rec.boxes.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
    gt = np.ascontiguousarray(rec.gt_boxes, np.float32)
    iou = ops.box_iou(gt, np.ascontiguousarray(rec.boxes, np.float32))
    best, idx = iou.max(0), iou.argmax(0)
    rows = np.where(best >= iou_thresh)[0]
    deltas = ops.encode_boxes(gt[idx[rows]], np.ascontiguousarray(rec.boxes[rows], np.float32), weights)
    return rows, rec.gt_labels[idx[rows]].astype(np.int64), deltas


def train_box_regressors(
    records: Records, num_classes: int, *, iou_thresh: float = 0.6, lam: float = 1000.0,
    weights=(1.0, 1.0, 1.0, 1.0), scale: Optional[float] = None, log: Callable[[str], None] = lambda s: None,
) -> Tuple[np.ndarray, np.ndarray, float]:
    """Ridge regression per class from scaled pool5 features to box deltas.
    Returns (weights (num_classes, 4, D), biases (num_classes, 4), scale); a
    class without examples keeps zeros (its boxes stay as proposed)."""
    _require_sklearn()
    from sklearn.linear_model import Ridge

    if lam <= 0:
        raise ValueError(f"lam: expected > 0, got {lam}")
    if scale is None:
        scale = feature_scale(records, lambda x: x)
    xs = {c: [] for c in range(1, num_classes)}
    ys = {c: [] for c in range(1, num_classes)}
    dim = None
    for rec in records():
        dim = rec.pool5.shape[1]
        rows, labels, deltas = regression_targets(rec, iou_thresh, weights)
        for c in np.unique(labels).tolist():
            sel = labels == c
            xs[c].append(rec.pool5[rows[sel]] * scale)
            ys[c].append(deltas[sel])
    if dim is None:
        raise ValueError("records: no cached image")
    w, b = np.zeros((num_classes, 4, dim), np.float32), np.zeros((num_classes, 4), np.float32)
    for c in range(1, num_classes):
        if not xs[c]:
            log(f"box regression class {c}: no proposal with IoU >= {iou_thresh}; boxes stay as proposed")
            continue
        ridge = Ridge(alpha=lam).fit(np.concatenate(xs[c]).astype(np.float64), np.concatenate(ys[c]).astype(np.float64))
        w[c], b[c] = ridge.coef_, ridge.intercept_
    return w, b, scale


def as_list(items: Iterable[RegionRecord]) -> Records:
    """Records from an in-memory list (tests, small runs)."""
    items = list(items)
    return lambda: iter(items)
