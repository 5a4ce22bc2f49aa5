"""Datasets carry proposals into each item, and resize / flip move them with the image."""

import numpy as np
import pytest
import torch

from detcore.data import CocoDetection, SyntheticSpec, make_synthetic_dataset
from detcore.data.transforms import RandomHorizontalFlip, Resize
from detcore.proposals import (ProposalError, ProposalSet, attach_proposals, parse_source, read_proposals,
                               write_proposals)

SPEC = SyntheticSpec(num_train=3, num_val=2, image_size=(40, 56), object_size=(10, 24), seed=5)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return make_synthetic_dataset(str(tmp_path_factory.mktemp("syn")), SPEC)


def file_for(dataset, rng, tmp_path, ext=".npz", with_scores=True):
    ids, boxes, scores = [], [], []
    for info in dataset.image_infos:
        h, w = info["height"], info["width"]
        xy = rng.uniform(-10, max(h, w), (9, 2))
        b = np.concatenate([xy, xy + rng.uniform(-3, 30, (9, 2))], 1)
        b[0] = [np.nan, 1, 5, 5]
        ids.append(info["id"])
        boxes.append(b)
        scores.append(rng.normal(size=9))
    names = [info["file_name"] for info in dataset.image_infos]
    return write_proposals(str(tmp_path / f"p{ext}"), ProposalSet(ids, boxes, scores if with_scores else None,
                                                                    file_names=names))


@pytest.mark.parametrize("ext", [".npz", ".pkl"])
def test_items_carry_the_files_proposals_clipped(paths, rng, tmp_path, ext):
    dataset = CocoDetection(*paths["train"])
    path = file_for(dataset, rng, tmp_path, ext)
    attach_proposals(dataset, path)
    stored = read_proposals(path)  # the reference: clip by hand, drop empty and NaN boxes with their scores
    for index, info in enumerate(dataset.image_infos):
        image, target = dataset[index]
        boxes, scores = stored.get(info["id"])
        h, w = image.shape[-2:]
        b = boxes.astype(np.float64)
        c = np.stack([b[:, 0].clip(0, w), b[:, 1].clip(0, h), b[:, 2].clip(0, w), b[:, 3].clip(0, h)], 1)
        keep = (c[:, 2] > c[:, 0]) & (c[:, 3] > c[:, 1])
        assert target["proposals"].dtype == torch.float32
        np.testing.assert_allclose(target["proposals"].numpy(), c[keep], rtol=1e-6)
        np.testing.assert_array_equal(target["proposal_scores"].numpy(), scores[keep])


def test_selective_search_source(paths):
    pytest.importorskip("cv2")
    dataset = CocoDetection(*paths["val"])
    attach_proposals(dataset, "selective_search:fast:30")
    for index in range(len(dataset)):
        image, target = dataset[index]
        p = target["proposals"]
        assert p.shape[1] == 4 and 0 < p.shape[0] <= 30 and "proposal_scores" not in target
        assert (p[:, 2] <= image.shape[-1]).all() and (p[:, 3] <= image.shape[-2]).all()


def test_transforms_move_proposals_with_the_image(rng):
    image = torch.rand(3, 30, 40)
    proposals = torch.tensor(rng.uniform(0, 30, (7, 4)), dtype=torch.float32).sort(1).values
    target = {"boxes": proposals[:2].clone(), "labels": torch.ones(2, dtype=torch.int64), "proposals": proposals}
    resized, t = Resize(60, 1000)(image, target)
    sy, sx = resized.shape[1] / 30, resized.shape[2] / 40
    ref = proposals.numpy().astype(np.float64) * [sx, sy, sx, sy]
    np.testing.assert_allclose(t["proposals"].numpy(), ref, rtol=1e-6)
    np.testing.assert_allclose(t["boxes"].numpy(), ref[:2], rtol=1e-6)
    flipped, t = RandomHorizontalFlip(1.0)(image, target)
    assert torch.equal(flipped, image.flip(-1))
    p = proposals.numpy().astype(np.float64)
    ref = np.stack([40 - p[:, 2], p[:, 1], 40 - p[:, 0], p[:, 3]], 1)
    np.testing.assert_allclose(t["proposals"].numpy(), ref, rtol=1e-6)
    assert torch.equal(target["proposals"], proposals)  # targets are not modified in place


def test_bad_sources(paths, rng, tmp_path):
    train = CocoDetection(*paths["train"])
    val = CocoDetection(*paths["val"])
    path = file_for(train, rng, tmp_path)
    # same ids 1..N, other files: the file of another split
    with pytest.raises(ProposalError, match=r"image 1 is val_00000.png in the dataset but train_00000.png"):
        attach_proposals(val, path)
    assert val.proposal_source is None
    partial = ProposalSet([1], [np.zeros((1, 4))])
    with pytest.raises(ProposalError, match=r"no proposals for 2 of the dataset's 3 images, e.g. image 2 "
                                            r"\(train_00001.png\)"):
        attach_proposals(train, write_proposals(str(tmp_path / "partial.pkl"), partial))
    other = ProposalSet(["a", "b"], [np.zeros((1, 4))] * 2)
    with pytest.raises(ProposalError, match="another dataset"):
        attach_proposals(train, write_proposals(str(tmp_path / "other.pkl"), other))
    with pytest.raises(FileNotFoundError, match="proposal file not found: nope.pkl"):
        parse_source("nope.pkl")
    with pytest.raises(ValueError, match="the strategy must be one of"):
        parse_source("selective_search:slow")
    with pytest.raises(ValueError, match="MAX_BOXES must be"):
        parse_source("selective_search:fast:x")


def test_voc_images_are_known_by_their_name(tmp_path, rng):
    """VOC proposal files (detectron2's) use the image name, e.g. 000005, not the dataset's index."""
    from PIL import Image

    from detcore.data import VOCDetection

    root = tmp_path / "voc"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    for name, objects in (("000005", ""), ("000007", "<object><name>dog</name><bndbox><xmin>2</xmin><ymin>2</ymin>"
                                                     "<xmax>20</xmax><ymax>20</ymax></bndbox></object>")):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        (root / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><size><width>32</width><height>24</height></size>"
            f"{objects}</annotation>")
    (root / "ImageSets/Main/trainval.txt").write_text("000005\n000007\n")
    proposals = ProposalSet(["000005", "000007"], [np.array([[1, 1, 9, 9]]), np.array([[0, 0, 30, 20], [4, 4, 8, 8]])])
    path = write_proposals(str(tmp_path / "voc.pkl"), proposals)
    train = VOCDetection(str(root), "trainval", classes=("dog",), remove_empty=True)  # 000007 only, at index 0
    attach_proposals(train, path)
    assert train.proposal_id(0) == "000007" and train.image_path(0).endswith("000007.jpg")
    np.testing.assert_array_equal(train[0][1]["proposals"].numpy(), [[0, 0, 30, 20], [4, 4, 8, 8]])
