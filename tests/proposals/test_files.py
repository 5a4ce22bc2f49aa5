"""Proposal files: both formats round-trip, detectron2's own files read, and
every malformed or mismatched file is a ProposalError naming the image/file."""

import pickle
import sys
import types

import numpy as np
import pytest

from detcore.proposals import ProposalError, ProposalSet, read_proposals, write_proposals


def random_set(rng, ids, with_scores, file_names=None):
    boxes, scores = [], []
    for _ in ids:
        n = int(rng.integers(0, 7))  # some images have no proposal at all
        xy = rng.uniform(-5, 80, (n, 2))
        boxes.append(np.concatenate([xy, xy + rng.uniform(0.5, 40, (n, 2))], 1).astype(np.float32))
        scores.append(rng.normal(0, 3, n).astype(np.float32))
    return ProposalSet(ids, boxes, scores if with_scores else None, file_names=file_names)


def assert_same(a: ProposalSet, b: ProposalSet, scores_expected=True):
    assert a.ids == b.ids and len(a) == len(b)
    for image_id in a.ids:
        boxes_a, scores_a = a.get(image_id)
        boxes_b, scores_b = b.get(image_id)
        assert boxes_b.dtype == np.float32 and boxes_b.shape == boxes_a.shape
        np.testing.assert_array_equal(boxes_a, boxes_b)
        if scores_expected:
            np.testing.assert_array_equal(scores_a, scores_b)


@pytest.mark.parametrize("ext", [".pkl", ".npz"])
@pytest.mark.parametrize("with_scores", [True, False])
@pytest.mark.parametrize("ids", [[3, 17, 5, 1000000], ["000005", "000012", "2008_000123"]])
def test_round_trip(tmp_path, rng, ext, with_scores, ids):
    original = random_set(rng, ids, with_scores, file_names=[f"img_{i}.jpg" for i in ids])
    path = write_proposals(str(tmp_path / f"p{ext}"), original)
    back = read_proposals(path)
    assert_same(original, back, scores_expected=with_scores)
    assert back.file_names == original.file_names
    if with_scores:
        assert back.scores is not None
    elif ext == ".npz":
        assert back.scores is None  # npz keeps "no scores"; detectron2 needs logits and gets zeros
    else:
        assert all(not s.any() for s in back.scores)


def test_npz_layout_is_plain_arrays(tmp_path, rng):
    original = random_set(rng, [1, 2, 3], True)
    path = write_proposals(str(tmp_path / "p.npz"), original)
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["boxes", "ids", "offsets", "scores"]
        counts = [len(b) for b in original.boxes]
        np.testing.assert_array_equal(data["offsets"], np.concatenate([[0], np.cumsum(counts)]))
        np.testing.assert_array_equal(data["boxes"], np.concatenate(original.boxes).reshape(-1, 4))
        assert data["ids"].dtype == np.int64


def test_detectron2_layout_and_its_own_files(tmp_path, rng):
    original = random_set(rng, [7, 9], True)
    path = write_proposals(str(tmp_path / "p.pkl"), original)
    with open(path, "rb") as f:
        raw = pickle.load(f)
    assert raw["bbox_mode"] == 0 and raw["ids"] == [7, 9]
    assert {"ids", "boxes", "objectness_logits", "bbox_mode"} <= set(raw)
    # a file pickled by detectron2 holds its BoxMode enum; it reads without detectron2, and XYWH_ABS converts
    import enum

    module = types.ModuleType("detectron2.structures.boxes")
    BoxMode = enum.IntEnum("BoxMode", {"XYXY_ABS": 0, "XYWH_ABS": 1})
    BoxMode.__module__ = module.__name__
    module.BoxMode = BoxMode
    xywh = [np.array([[1, 2, 3, 4], [10, 10, 5, 6]], np.float32)]
    fake = {"detectron2": types.ModuleType("detectron2"),
            "detectron2.structures": types.ModuleType("detectron2.structures"), module.__name__: module}
    fake["detectron2"].structures = fake["detectron2.structures"]
    fake["detectron2.structures"].boxes = module
    sys.modules.update(fake)
    try:
        blob = pickle.dumps({"ids": ["a"], "boxes": xywh, "objectness_logits": [np.ones(2)],
                             "bbox_mode": BoxMode.XYWH_ABS})
    finally:
        for name in fake:
            del sys.modules[name]
    assert b"detectron2.structures.boxes" in blob
    (tmp_path / "d2.pkl").write_bytes(blob)
    boxes, scores = read_proposals(str(tmp_path / "d2.pkl")).get("a")
    np.testing.assert_array_equal(boxes, [[1, 2, 4, 6], [10, 10, 15, 16]])
    np.testing.assert_array_equal(scores, [1, 1])
    # Detectron (v1) names: indexes / scores
    with open(tmp_path / "d1.pkl", "wb") as f:
        pickle.dump({"indexes": [4], "boxes": [np.zeros((1, 4))], "scores": [np.ones(1)]}, f)
    assert read_proposals(str(tmp_path / "d1.pkl")).get(4)[1].tolist() == [1.0]


def test_ids_match_as_strings():
    s = ProposalSet([17, "x"], [np.zeros((0, 4)), np.ones((1, 4))])
    assert "17" in s and 17 in s and s.get("17")[0].shape == (0, 4)


def test_missing_image_names_it():
    s = ProposalSet([1, 2], [np.zeros((1, 4))] * 2, path="props.npz")
    with pytest.raises(ProposalError, match=r"props.npz has no proposals for 1 of the dataset.s 3 images, e.g. image 3 \(c.png\)"):
        s.check_covers([1, 2, 3], ["a.png", "b.png", "c.png"])
    with pytest.raises(ProposalError, match="props.npz has no proposals for image 5"):
        s.get(5)


def test_file_of_another_dataset():
    s = ProposalSet([1, 2], [np.zeros((1, 4))] * 2, path="props.pkl", file_names=["train_1.png", "train_2.png"])
    with pytest.raises(ProposalError, match="none of the dataset's 2 image ids.*another dataset"):
        s.check_covers([10, 11])
    # same ids, other files (another split with ids 1..N too)
    with pytest.raises(ProposalError, match="image 1 is val_1.png in the dataset but train_1.png.*another"):
        s.check_covers([1, 2], ["val_1.png", "val_2.png"])
    s.check_covers([1, 2], ["dir/train_1.png", "train_2.png"])
    s.check_covers([2])


@pytest.mark.parametrize("bad", [np.zeros((3, 5)), np.zeros(4), np.zeros((2, 2, 4)), [["a", "b", "c", "d"]]])
def test_boxes_of_the_wrong_shape_name_the_image(bad):
    with pytest.raises(ProposalError, match="f.pkl: the boxes of image 'im7'"):
        ProposalSet(["ok", "im7"], [np.zeros((1, 4)), bad], path="f.pkl")


def test_other_malformed_files(tmp_path):
    with pytest.raises(ProposalError, match="2 boxes but 3 scores"):
        ProposalSet([1], [np.zeros((2, 4))], [np.zeros(3)])
    with pytest.raises(ProposalError, match="appears twice"):
        ProposalSet([1, "1"], [np.zeros((0, 4))] * 2)
    with pytest.raises(ProposalError, match="2 image ids but 1 box arrays"):
        ProposalSet([1, 2], [np.zeros((0, 4))])
    with pytest.raises(ProposalError, match="image id: expected an int or a str"):
        ProposalSet([1.5], [np.zeros((0, 4))])
    np.savez(tmp_path / "bad.npz", ids=np.array([1, 2]), offsets=np.array([0, 3, 2]), boxes=np.zeros((2, 4)))
    with pytest.raises(ProposalError, match="offsets"):
        read_proposals(str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "shape.npz", ids=np.array([1]), offsets=np.array([0, 2]), boxes=np.zeros((2, 3)))
    with pytest.raises(ProposalError, match=r"'boxes' has shape \(2, 3\)"):
        read_proposals(str(tmp_path / "shape.npz"))
    with open(tmp_path / "list.pkl", "wb") as f:
        pickle.dump([1, 2], f)
    with pytest.raises(ProposalError, match="expected a pickled dict"):
        read_proposals(str(tmp_path / "list.pkl"))
    with open(tmp_path / "mode.pkl", "wb") as f:
        pickle.dump({"ids": [1], "boxes": [np.zeros((1, 4))], "bbox_mode": 4}, f)
    with pytest.raises(ProposalError, match="bbox_mode 4 is not supported"):
        read_proposals(str(tmp_path / "mode.pkl"))
    with open(tmp_path / "code.pkl", "wb") as f:
        pickle.dump({"ids": [1], "boxes": [np.zeros((1, 4))], "x": types.SimpleNamespace()}, f)
    with pytest.raises(ProposalError, match="unexpected object"):
        read_proposals(str(tmp_path / "code.pkl"))
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ProposalError, match="not a detcore npz proposal file"):
        read_proposals(str(tmp_path / "text.npz"))
    with pytest.raises(ValueError, match="format: expected one of"):
        read_proposals(str(tmp_path / "text.npz"), fmt="json")
    (tmp_path / "p.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot tell the proposal format"):
        read_proposals(str(tmp_path / "p.json"))
    with pytest.raises(FileNotFoundError, match="proposal file not found"):
        read_proposals(str(tmp_path / "absent.pkl"))
