"""A disk cache of per-image proposals, so selective search runs once per image.

Entries are ``.npy`` files of (P, 4) float32 boxes named by a hash of the
image file (its real path, size and modification time: an edited or replaced
image is searched again) and of the settings. By default they live in a
``.detcore_proposals`` folder beside each image; ``cache_dir`` puts them
elsewhere (a read-only dataset), and a folder beside the images that cannot be
written falls back to ``~/.cache/detcore/proposals`` (or ``$XDG_CACHE_HOME``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Callable, Optional

import numpy as np

CACHE_FOLDER = ".detcore_proposals"


def user_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "detcore", "proposals")


def entry_key(image_path: str, settings: str) -> str:
    """The name of an image's entry: its file's identity and the settings."""
    stat = os.stat(image_path)
    ident = f"{os.path.realpath(image_path)}|{stat.st_size}|{stat.st_mtime_ns}|{settings}"
    stem = os.path.splitext(os.path.basename(image_path))[0]
    return f"{stem}-{hashlib.sha1(ident.encode()).hexdigest()[:16]}.npy"


def _writable(folder: str) -> bool:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


class ProposalCache:
    """``get(image_path, compute)``: the cached boxes of an image, or
    ``compute()``'s, stored for the next time. ``settings`` names what
    ``compute`` does (e.g. ``selective_search-fast-2000``)."""

    def __init__(self, settings: str, cache_dir: Optional[str] = None):
        self.settings = settings
        self.cache_dir = cache_dir
        self.hits = 0
        self.misses = 0

    def folder_for(self, image_path: str) -> str:
        if self.cache_dir is not None:
            return self.cache_dir
        beside = os.path.join(os.path.dirname(os.path.abspath(image_path)), CACHE_FOLDER)
        return beside if _writable(beside) else user_cache_dir()

    def path_for(self, image_path: str) -> str:
        return os.path.join(self.folder_for(image_path), entry_key(image_path, self.settings))

    def get(self, image_path: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        if not os.path.isfile(image_path):
            raise FileNotFoundError(f"image file not found: {image_path}")
        path = self.path_for(image_path)
        if os.path.isfile(path):
            try:
                boxes = np.load(path, allow_pickle=False)
                if boxes.ndim == 2 and boxes.shape[1] == 4 and boxes.dtype == np.float32:
                    self.hits += 1
                    return boxes
            except (OSError, ValueError):
                pass  # a truncated or foreign entry: compute it again
        boxes = np.ascontiguousarray(compute(), dtype=np.float32).reshape(-1, 4)
        self.misses += 1
        _save_atomic(path, boxes)
        return boxes


def _save_atomic(path: str, array: np.ndarray) -> None:
    """Write then rename, so concurrent data-loader workers never read half a file."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
