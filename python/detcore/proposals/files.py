"""Proposal files: precomputed proposals per image id, with optional scores.

Two formats, chosen by the file's extension (``.pkl`` / ``.npz``) or by name:

* ``detectron2`` - detectron2's proposal file, a pickled dict with ``ids``
  (list of int or str image ids), ``boxes`` (list of (Pi, 4) float arrays),
  ``objectness_logits`` (list of (Pi,) arrays) and ``bbox_mode`` (detectron2's
  ``BoxMode``: 0 = XYXY_ABS, 1 = XYWH_ABS). Files of Detectron (v1), with
  ``indexes`` / ``scores`` for ``ids`` / ``objectness_logits``, are read too, as
  detectron2 does. Written with ``bbox_mode = 0`` as a plain int, so reading
  needs no detectron2; a file that pickled detectron2's ``BoxMode`` enum is read
  without detectron2 installed as well.
* ``npz`` - detcore's own, loadable with ``numpy.load(allow_pickle=False)``:
  ``ids`` (N,) int64 or unicode image ids; ``offsets`` (N + 1,) int64, image i's
  boxes are rows ``offsets[i]:offsets[i + 1]``; ``boxes`` (sum Pi, 4) float32
  ``x1, y1, x2, y2`` in the image's pixels; ``scores`` (sum Pi,) float32, only
  when the proposals have scores.

Both may also hold ``file_names`` (the image files' base names, in the order of
``ids``; detectron2 ignores the key): ids alone cannot tell two datasets whose
ids are both 1..N apart, file names can, so a file written by ``detcore
proposals`` is checked against the dataset's files.

Image ids match a dataset's ids as strings (``17`` and ``"17"`` are the same
image), as in detectron2. Boxes are in the original image's pixels.
"""

from __future__ import annotations

import enum
import io
import os
import pickle
from typing import Dict, Iterable, Optional, Tuple, Union

import numpy as np

FORMATS = ("detectron2", "npz")
XYXY_ABS, XYWH_ABS = 0, 1
ImageId = Union[int, str]


class ProposalError(ValueError):
    """A proposal file or source that cannot serve a dataset."""


class _BoxMode(enum.IntEnum):
    """Stands in for detectron2.structures.BoxMode when unpickling its files."""

    XYXY_ABS = 0
    XYWH_ABS = 1
    XYXY_REL = 2
    XYWH_REL = 3
    XYWHA_ABS = 4


class _Unpickler(pickle.Unpickler):
    """Plain containers and numpy arrays only; detectron2's BoxMode maps to ours."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
                ("numpy._core.numeric", "_frombuffer"), ("collections", "OrderedDict")}

    def find_class(self, module, name):
        if name == "BoxMode" and module.startswith("detectron2"):
            return _BoxMode
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a proposal file")


class ProposalSet:
    """Proposals by image id: ``boxes`` and ``scores`` (None when the file has none).

    ``file_names`` (optional) are the images' file names; ``path`` names the
    file in error messages."""

    def __init__(self, ids: Iterable[ImageId], boxes, scores=None, path: str = "<proposals>", file_names=None):
        ids = [_plain_id(i) for i in ids]
        boxes = list(boxes)
        if len(boxes) != len(ids):
            raise ProposalError(f"{path}: {len(ids)} image ids but {len(boxes)} box arrays")
        if scores is not None:
            scores = list(scores)
            if len(scores) != len(ids):
                raise ProposalError(f"{path}: {len(ids)} image ids but {len(scores)} score arrays")
        if file_names is not None:
            file_names = [os.path.basename(str(f)) for f in file_names]
            if len(file_names) != len(ids):
                raise ProposalError(f"{path}: {len(ids)} image ids but {len(file_names)} file names")
        self.path, self.file_names = path, file_names
        self._index: Dict[str, int] = {}
        self.ids, self.boxes, self.scores = [], [], [] if scores is not None else None
        for k, image_id in enumerate(ids):
            key = str(image_id)
            if key in self._index:
                raise ProposalError(f"{path}: image {image_id!r} appears twice")
            b = _check_boxes(boxes[k], image_id, path)
            self._index[key] = k
            self.ids.append(image_id)
            self.boxes.append(b)
            if scores is not None:
                self.scores.append(_check_scores(scores[k], len(b), image_id, path))

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, image_id) -> bool:
        return str(image_id) in self._index

    def get(self, image_id: ImageId, what: str = "") -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """(boxes, scores or None) of an image; a ProposalError naming it when absent."""
        k = self._index.get(str(image_id))
        if k is None:
            raise ProposalError(f"{self.path} has no proposals for image {image_id!r}{what}")
        return self.boxes[k], (self.scores[k] if self.scores is not None else None)

    def id_for_file(self, path: str) -> Optional[ImageId]:
        """The id of an image file: by its name where the file records names,
        else by its name stem (``000005.jpg`` -> ``"000005"`` or ``5``)."""
        name = os.path.basename(path)
        if self.file_names is not None and name in self.file_names:
            return self.ids[self.file_names.index(name)]
        stem = os.path.splitext(name)[0]
        candidates = [stem] + ([str(int(stem))] if stem.isdigit() else [])
        return next((self.ids[self._index[c]] for c in candidates if c in self._index), None)

    def check_covers(self, ids: Iterable[ImageId], file_names=None) -> None:
        """Every id has proposals (and, where both sides know the file names,
        the same file): a file of another dataset, or one missing an image, is
        reported with the image(s) concerned."""
        ids = list(ids)
        names = dict(zip((str(i) for i in ids), file_names)) if file_names is not None else {}

        def describe(i):
            return f" ({names[str(i)]})" if names.get(str(i)) else ""

        missing = [i for i in ids if str(i) not in self._index]
        if not missing:
            if self.file_names is not None and names:
                wrong = [i for i in ids if names.get(str(i)) and
                         os.path.basename(names[str(i)]) != self.file_names[self._index[str(i)]]]
                if wrong:
                    i = wrong[0]
                    raise ProposalError(f"{self.path}: image {i!r} is {os.path.basename(names[str(i)])} in the "
                                        f"dataset but {self.file_names[self._index[str(i)]]} in this file "
                                        f"({len(wrong)} of {len(ids)} images differ); is it the proposal file of "
                                        f"another dataset or split?")
            return
        if len(missing) == len(ids):
            sample = ", ".join(repr(i) for i in self.ids[:3])
            raise ProposalError(f"{self.path}: none of the dataset's {len(ids)} image ids has proposals in this "
                                f"file (its ids are like {sample}); is it the proposal file of another dataset?")
        first = ", ".join(f"{i!r}{describe(i)}" for i in missing[:3])
        raise ProposalError(f"{self.path} has no proposals for {len(missing)} of the dataset's {len(ids)} images, "
                            f"e.g. image {first}")


def _plain_id(image_id) -> ImageId:
    if isinstance(image_id, (np.integer, int)) and not isinstance(image_id, bool):
        return int(image_id)
    if isinstance(image_id, (str, np.str_)):
        return str(image_id)
    if isinstance(image_id, bytes):
        return image_id.decode()
    raise ProposalError(f"image id: expected an int or a str, got {type(image_id).__name__} {image_id!r}")


def _check_boxes(boxes, image_id, path) -> np.ndarray:
    try:
        array = np.asarray(boxes, dtype=np.float32)
    except (TypeError, ValueError):
        raise ProposalError(f"{path}: the boxes of image {image_id!r} are not numbers") from None
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ProposalError(f"{path}: the boxes of image {image_id!r} have shape {tuple(array.shape)}, "
                            f"expected (P, 4) x1, y1, x2, y2")
    return array


def _check_scores(scores, count, image_id, path) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float32).reshape(-1)
    if array.shape[0] != count:
        raise ProposalError(f"{path}: image {image_id!r} has {count} boxes but {array.shape[0]} scores")
    return array


def format_of(path: str, fmt: Optional[str] = None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")
        return fmt
    ext = os.path.splitext(path)[1].lower()
    if ext in (".pkl", ".pickle"):
        return "detectron2"
    if ext == ".npz":
        return "npz"
    raise ValueError(f"{path}: cannot tell the proposal format from the extension {ext!r}; "
                     f"use .pkl (detectron2) or .npz, or name the format")


def read_proposals(path: str, fmt: Optional[str] = None) -> ProposalSet:
    """A proposal file (format from the extension unless given)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"proposal file not found: {path}")
    fmt = format_of(path, fmt)
    return _read_detectron2(path) if fmt == "detectron2" else _read_npz(path)


def _read_detectron2(path: str) -> ProposalSet:
    try:
        with open(path, "rb") as f:
            data = _Unpickler(io.BytesIO(f.read()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise ProposalError(f"{path} is not a detectron2 proposal file: {e}") from None
    if not isinstance(data, dict):
        raise ProposalError(f"{path}: expected a pickled dict, got {type(data).__name__}")
    for old, new in (("indexes", "ids"), ("scores", "objectness_logits")):  # Detectron (v1) names
        if old in data and new not in data:
            data[new] = data.pop(old)
    for key in ("ids", "boxes"):
        if key not in data:
            raise ProposalError(f"{path}: a detectron2 proposal file needs {key!r}; it has {sorted(data)}")
    mode = int(data.get("bbox_mode", XYXY_ABS))
    if mode not in (XYXY_ABS, XYWH_ABS):
        raise ProposalError(f"{path}: bbox_mode {mode} is not supported; expected 0 (XYXY_ABS) or 1 (XYWH_ABS)")
    boxes = data["boxes"]
    if mode == XYWH_ABS:
        boxes = [_xywh_to_xyxy(b) for b in boxes]
    return ProposalSet(data["ids"], boxes, data.get("objectness_logits"), path, data.get("file_names"))


def _xywh_to_xyxy(boxes) -> np.ndarray:
    b = np.array(boxes, dtype=np.float32)
    if b.ndim == 2 and b.shape[1] == 4:
        b[:, 2:] += b[:, :2]
    return b  # a wrong shape is reported by ProposalSet


def _read_npz(path: str) -> ProposalSet:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise ProposalError(f"{path} is not a detcore npz proposal file: {e}") from None
    for key in ("ids", "offsets", "boxes"):
        if key not in arrays:
            raise ProposalError(f"{path}: a detcore npz proposal file needs {key!r}; it has {sorted(arrays)}")
    ids, offsets, boxes = arrays["ids"], arrays["offsets"].astype(np.int64), arrays["boxes"]
    scores = arrays.get("scores")
    if offsets.shape != (len(ids) + 1,) or offsets[0] != 0 or np.any(np.diff(offsets) < 0) \
            or offsets[-1] != len(boxes):
        raise ProposalError(f"{path}: 'offsets' must rise from 0 to the number of boxes ({len(boxes)}), "
                            f"one more entry than 'ids' ({len(ids)})")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ProposalError(f"{path}: 'boxes' has shape {boxes.shape}, expected (P, 4)")
    if scores is not None and scores.shape != (len(boxes),):
        raise ProposalError(f"{path}: 'scores' has shape {scores.shape}, expected ({len(boxes)},)")
    spans = list(zip(offsets[:-1], offsets[1:]))
    names = arrays.get("file_names")
    return ProposalSet(ids.tolist(), [boxes[a:b] for a, b in spans],
                       None if scores is None else [scores[a:b] for a, b in spans], path,
                       None if names is None else names.tolist())


def write_proposals(path: str, proposals: ProposalSet, fmt: Optional[str] = None) -> str:
    """Writes ``proposals`` (format from the extension unless given); returns the path."""
    fmt = format_of(path, fmt)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = path + ".tmp"
    if fmt == "detectron2":
        scores = proposals.scores
        if scores is None:  # detectron2 reads objectness_logits unconditionally
            scores = [np.zeros(len(b), np.float32) for b in proposals.boxes]
        payload = {"ids": list(proposals.ids), "boxes": [np.asarray(b, np.float32) for b in proposals.boxes],
                   "objectness_logits": [np.asarray(s, np.float32) for s in scores], "bbox_mode": XYXY_ABS}
        if proposals.file_names is not None:
            payload["file_names"] = list(proposals.file_names)
        with open(tmp, "wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
    else:
        ids = proposals.ids
        id_array = np.asarray(ids, dtype=np.int64) if all(isinstance(i, int) for i in ids) else \
            np.asarray([str(i) for i in ids], dtype=np.str_)
        counts = [len(b) for b in proposals.boxes]
        arrays = {"ids": id_array.reshape(-1), "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                  "boxes": np.concatenate([np.zeros((0, 4), np.float32), *proposals.boxes]).astype(np.float32)}
        if proposals.scores is not None:
            arrays["scores"] = np.concatenate([np.zeros(0, np.float32), *proposals.scores]).astype(np.float32)
        if proposals.file_names is not None:
            arrays["file_names"] = np.asarray(proposals.file_names, dtype=np.str_).reshape(-1)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    os.replace(tmp, path)
    return path
