"""Selective search runs once per image file: a second run (a new source, as
in a new process) reads the cache; a changed file or other settings search again."""

import os

import numpy as np
import pytest
from proposal_images import painted_image

from detcore.proposals import ProposalCache, SelectiveSearchSource, source as source_module
from detcore.proposals.cache import CACHE_FOLDER

pytest.importorskip("cv2", reason="selective search needs detcore[classic] (opencv-contrib-python-headless)")


def write_png(path, pixels):
    from PIL import Image

    Image.fromarray(pixels).save(path)
    return str(path)


@pytest.fixture
def counted_search(monkeypatch):
    """selective_search as the sources call it, counting the calls."""
    calls = []
    real = source_module.selective_search

    def counting(image, strategy, max_boxes):
        calls.append(strategy)
        return real(image, strategy, max_boxes)

    monkeypatch.setattr(source_module, "selective_search", counting)
    return calls


def test_second_run_reads_the_cache(tmp_path, rng, counted_search):
    paths = [write_png(tmp_path / f"im{i}.png", painted_image(rng)) for i in range(3)]
    first = SelectiveSearchSource("fast", 50)
    boxes = [first.boxes_for_file(p) for p in paths]
    assert len(counted_search) == 3 and first.cache.misses == 3
    assert os.path.isdir(tmp_path / CACHE_FOLDER) and len(os.listdir(tmp_path / CACHE_FOLDER)) == 3

    second = SelectiveSearchSource("fast", 50)  # a new run
    again = [second.boxes_for_file(p) for p in paths]
    assert len(counted_search) == 3 and second.cache.hits == 3
    for a, b in zip(boxes, again):
        assert b.dtype == np.float32
        np.testing.assert_array_equal(a, b)

    SelectiveSearchSource("quality", 50).boxes_for_file(paths[0])  # other settings: another entry
    SelectiveSearchSource("fast", 20).boxes_for_file(paths[0])
    assert counted_search == ["fast"] * 3 + ["quality", "fast"]

    write_png(paths[1], painted_image(rng))  # the file changed: searched again
    os.utime(paths[1], ns=(1, 10**18))
    changed = SelectiveSearchSource("fast", 50)
    changed.boxes_for_file(paths[1])
    assert changed.cache.misses == 1 and len(counted_search) == 6


def test_configured_folder_and_read_only_dataset(tmp_path, rng, counted_search, monkeypatch):
    images = tmp_path / "images"
    images.mkdir()
    path = write_png(images / "a.png", painted_image(rng))
    cache = tmp_path / "cache"
    SelectiveSearchSource("fast", 30, cache_dir=str(cache)).boxes_for_file(path)
    assert len(os.listdir(cache)) == 1 and not (images / CACHE_FOLDER).exists()
    SelectiveSearchSource("fast", 30, cache_dir=str(cache)).boxes_for_file(path)
    assert len(counted_search) == 1

    # a dataset folder that cannot be written: the user cache folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("detcore.proposals.cache._writable", lambda folder: False)
    SelectiveSearchSource("fast", 30).boxes_for_file(path)
    assert len(os.listdir(tmp_path / "xdg/detcore/proposals")) == 1


def test_a_damaged_entry_is_computed_again(tmp_path):
    cache = ProposalCache("test-settings", str(tmp_path / "c"))
    image = tmp_path / "x.png"
    image.write_bytes(b"stand-in file")
    calls = []

    def compute():
        calls.append(1)
        return np.arange(8, dtype=np.float64).reshape(2, 4)

    np.testing.assert_array_equal(cache.get(str(image), compute), np.arange(8).reshape(2, 4))
    entry = cache.path_for(str(image))
    with open(entry, "wb") as f:
        f.write(b"truncated")
    cache.get(str(image), compute)
    assert len(calls) == 2 and cache.get(str(image), compute).dtype == np.float32 and len(calls) == 2
    with pytest.raises(FileNotFoundError, match="image file not found"):
        cache.get(str(tmp_path / "absent.png"), compute)


def test_parallel_precompute_fills_the_same_cache(tmp_path, rng):
    class Files:  # the two methods precompute needs from a dataset
        def __init__(self, paths):
            self.paths = paths

        def __len__(self):
            return len(self.paths)

        def image_path(self, index):
            return self.paths[index]

    paths = [write_png(tmp_path / f"im{i}.png", painted_image(rng)) for i in range(4)]
    serial = SelectiveSearchSource("fast", 40, cache_dir=str(tmp_path / "serial"))
    serial.precompute(Files(paths[:1]))
    serial.precompute(Files(paths))
    assert (serial.cache.misses, serial.cache.hits) == (4, 1)
    pooled = SelectiveSearchSource("fast", 40, cache_dir=str(tmp_path / "pooled"))
    pooled.precompute(Files(paths), workers=2)
    assert pooled.cache.misses == 4 and len(os.listdir(tmp_path / "pooled")) == 4
    for p in paths:  # the workers' boxes are the serial ones (deterministic in every process)
        np.testing.assert_array_equal(pooled.boxes_for_file(p), serial.boxes_for_file(p))
    assert pooled.cache.hits == 4
