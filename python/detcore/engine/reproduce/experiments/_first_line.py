"""What the Fast R-CNN paper's experiments share (``fast_rcnn_main``, ``svd``,
``finetune_layers``, ``proposals``): the reduced VGG16 of each preset, the
schedules, the selective-search proposals (searched once, before any timed
training), the stand-in for ImageNet pre-training, timing and plotting.

Presets. ``paper``: VGG16 (conv1 width 64, fc 4096), shorter side 600, the
paper's SGD (2 images x 64 RoIs, lr 0.001 for 30k iterations then 0.0001 for
10k, momentum 0.9, weight decay 0.0005), selective search "fast" with up to
2000 boxes, initialised from an ImageNet VGG16 (``--weights``). ``small``:
VGG16 at a quarter of the widths (conv1 16 channels, fc 256), shorter side
160, 300 iterations at lr 0.01 (dropped tenfold at 3/4), the same selective
search. ``quick``: widths 8 / 32, shorter side 64, 8 iterations, at most 50
boxes per image: it checks that everything runs.

Pre-training. Every detector of the paper starts from ImageNet. Here, without
ImageNet, ``small`` and ``quick`` first train a Fast R-CNN with every layer
trainable on the experiment's own training images (a "first detector run",
2000 iterations in ``small``), and hand its conv layers - only those, as a
torchvision-style VGG16 file - to every detector as ``--weights``, as a user
would hand an ImageNet VGG16. These features are already tuned to this data's
detection task, which ImageNet features are not: the verdicts say so where it
matters (fine-tuning fewer layers costs less here than in the paper). The
stand-in is one run shared by the experiments of one output folder that agree
on its data, settings and proposals (``DIR/_stand_in/<key>``): ``reproduce
all`` trains it once.

The small stand-in was 600 iterations until a VGG16 trained from scratch got
He et al.'s initialisation; with both, its classifier stayed at the class
prior (loss 0.83-0.95 against 0.97 for guessing the class frequencies) and
every detector below 1 AP50. 2000 iterations were chosen before any
experiment was rerun, so that the stand-in is a trained network, as ImageNet
weights are; no arm's number was looked at to choose it.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

from ..base import Log, ReproduceError
from ..runs import prepare_data, train_run

PAPER = "Girshick, Fast R-CNN, ICCV 2015"
# the paper's selective search: R-CNN's "fast" mode, about 2000 boxes per image
SS_PAPER = "selective_search:fast:2000"
SS_QUICK = "selective_search:fast:50"

_VGG = {
    "quick": dict(base_width=8, representation_size=32, dropout=0.5),
    "small": dict(base_width=16, representation_size=256, dropout=0.5),
    "paper": dict(base_width=64, representation_size=4096, dropout=0.5),
}
# (shorter side, longer side cap) of the image the conv layers see; 600/1000 in the paper
_SCALE = {"quick": (64, 107), "small": (160, 267), "paper": (600, 1000)}
# R-CNN's warped region: 224 gives VGG16 its 7x7 pool5 (the paper: 227 for AlexNet-sized pool5);
# the small presets scale it with the image (2x2 and 1x1 pool5) and scale the context padding with it
_WARP = {"quick": (32, 2), "small": (64, 4), "paper": (224, 16)}
# RoIs per image in a Fast R-CNN batch (64 in the paper: 128 over 2 images), regions per R-CNN batch (128)
_ROIS = {"quick": 32, "small": 64, "paper": 64}
_REGIONS = {"quick": 32, "small": 64, "paper": 128}


def check(preset: str) -> None:
    if preset not in _VGG:
        raise ReproduceError(f"preset {preset!r}: expected quick, small or paper")


def vgg(preset: str) -> Dict[str, object]:
    """The backbone and fc widths every detector of an experiment shares."""
    check(preset)
    return dict(_VGG[preset])


def proposal_spec(preset: str) -> str:
    return SS_QUICK if preset == "quick" else SS_PAPER


def fast_rcnn_settings(preset: str, **extra) -> Dict[str, object]:
    """``fast_rcnn_vgg16``'s model settings: conv3_1 and up fine-tuned (the paper)."""
    min_size, max_size = _SCALE[preset]
    return {**vgg(preset), "min_size": min_size, "max_size": max_size, "trainable_stages": 3,
            "box_batch_size_per_image": _ROIS[preset], **extra}


def faster_rcnn_settings(preset: str, **extra) -> Dict[str, object]:
    """``faster_rcnn_vgg16`` with the same backbone (the RPN's proposals for ``proposals``)."""
    return fast_rcnn_settings(preset, **extra)


def sppnet_settings(preset: str) -> Dict[str, object]:
    """SPP-net as its paper fine-tuned it: the fc layers only (conv frozen), pyramid 6/3/2/1."""
    min_size, max_size = _SCALE[preset]
    return {**vgg(preset), "min_size": min_size, "max_size": max_size, "levels": [6, 3, 2, 1],
            "finetune_conv": False, "batch_size": 256 if preset == "paper" else _REGIONS[preset]}


def rcnn_settings(preset: str) -> Dict[str, object]:
    """R-CNN: every layer fine-tuned on warped regions with context padding."""
    size, pad = _WARP[preset]
    return {**vgg(preset), "input_size": size, "context_pad": pad, "trainable_stages": 5,
            "batch_size": _REGIONS[preset]}


def schedule(preset: str, iterations: Optional[int] = None) -> Dict[str, object]:
    """``detcore train`` settings. ``paper``: Fast R-CNN's VOC07 schedule (SGD,
    2 images, lr 0.001 for 30k iterations then 0.0001 for 10k). The small
    presets keep its shape (lr down tenfold at 3/4) at lr 0.01 for their
    smaller, partly randomly initialised networks, ``iterations`` long."""
    check(preset)
    common = dict(images_per_batch=2, momentum=0.9, weight_decay=0.0005, gamma=0.1, flip_prob=0.5,
                  tensorboard=False, checkpoint_period=0, keep_checkpoints=1)
    if preset == "paper":
        return {**common, "max_iter": iterations or 40000, "base_lr": 0.001, "steps": [30000],
                "warmup_iters": 0, "log_period": 100}
    iters = iterations or (8 if preset == "quick" else 300)
    return {**common, "max_iter": iters, "base_lr": 0.01, "steps": [0.75],
            "warmup_iters": 2 if preset == "quick" else 50, "log_period": max(1, iters // 10)}


def pretrain_plan(preset: str, weights: Optional[str] = None) -> Dict[str, object]:
    """How the detectors are initialised (see the module doc)."""
    if preset == "paper":
        return {"init": "imagenet", "note": "torchvision's ImageNet VGG16 state dict, given with --weights"}
    iters = 8 if preset == "quick" else 2000
    return {"init": "stand-in", "model": "fast_rcnn_vgg16",
            "model_settings": fast_rcnn_settings(preset, trainable_stages=5),
            "settings": schedule(preset, iters),
            "note": "a Fast R-CNN with every layer trained on the training images; its conv layers initialise "
                    "every detector (ImageNet's role in the paper)"}


# ---------------------------------------------------------------------------- running


def data_and_proposals(plan: dict, workdir: str, log: Log, specs: Sequence[str] = ()) -> Dict[str, str]:
    """Makes the data (synthetic data once under ``workdir``) and runs selective
    search over the training and validation images for each spec in ``specs``
    now, so that no timed training or evaluation includes it: the runs then read
    the cache (beside the images) that ``detcore train --proposals`` reads.
    Returns {"train": spec, "val": spec}."""
    from ....data import build_dataset
    from ....proposals import parse_source

    train, val = prepare_data(plan["data"], plan.get("val_data") or None, workdir)
    for spec in specs:
        t0 = time.perf_counter()
        for data, is_train in ((train, True), (val, False)):
            dataset = build_dataset(data, train=is_train, cache_dir=os.path.join(workdir, "data"))
            source = parse_source(spec)
            source.check(dataset)
            source.precompute(dataset, log)
        log(f"reproduce: {spec} over the training and validation images in {time.perf_counter() - t0:.1f} s "
            f"(cached; not part of any time below)")
    return {"train": train, "val": val}


def initial_weights(plan: dict, workdir: str, data: str, proposals: str, log: Log) -> str:
    """The ``--weights`` file every detector starts from: the user's (an
    ImageNet VGG16), else the conv layers of the stand-in pre-training run."""
    import torch

    if plan.get("weights"):
        return plan["weights"]
    pre = plan["pretrain"]
    if pre["init"] == "imagenet":
        raise ReproduceError("--weights: the paper preset starts every detector from an ImageNet VGG16 "
                             "(torchvision's vgg16 state dict, e.g. vgg16-397923af.pth)")
    folder = stand_in_folder(plan, workdir, proposals)
    path = os.path.join(folder, "pretrain", "vgg16_conv.pth")
    if os.path.isfile(path):
        log(f"reproduce: reusing the stand-in pre-training {path}")
        return path
    run = train_run(folder, "pretrain", model=pre["model"], data=data, settings=pre["settings"],
                    model_settings=pre["model_settings"], proposals=proposals, device=plan["device"], log=log)
    state = torch.load(run["checkpoint"], map_location="cpu", weights_only=True)["model"]
    prefix = "backbone.features."
    conv = {"features." + k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    torch.save(conv, path)  # torchvision's VGG16 names: `detcore train --weights` reads it as an ImageNet VGG16
    log(f"reproduce: the stand-in pre-training's {len(conv)} conv tensors -> {path}")
    return path


def stand_in_folder(plan: dict, workdir: str, proposals: str) -> str:
    """``DIR/_stand_in/<key>`` beside the experiments' folders: the key is a
    hash of what makes the stand-in (the data as the user named it, the
    pre-training plan, the proposals' spec or file name), so that every
    experiment that would train the same network reuses one."""
    recipe = {"data": plan["data"], "val_data": plan.get("val_data"), "pretrain": plan["pretrain"],
              "proposals": os.path.basename(proposals), "device": plan["device"]}
    key = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return os.path.join(os.path.dirname(os.path.abspath(workdir)), "_stand_in", f"{plan['preset']}-{key}")


def init_text(plan: dict) -> str:
    """Where the conv weights came from, for the measured setting."""
    if plan.get("weights"):
        return f"--weights {os.path.basename(plan['weights'])}"
    return "the stand-in pre-training's conv layers" if plan["pretrain"]["init"] == "stand-in" else "ImageNet"


def voc_map(metrics: dict) -> float:
    return float(metrics["voc07"]["mAP"])


def time_call(fn: Callable[[], object], min_seconds: float = 0.3, repeats: int = 5) -> float:
    """The median seconds of ``fn()`` over ``repeats`` rounds of at least ``min_seconds`` each."""
    fn()
    rounds = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while n == 0 or time.perf_counter() - start < min_seconds:
            fn()
            n += 1
        rounds.append((time.perf_counter() - start) / n)
    return statistics.median(rounds)


def mean_proposals(data: str, spec: str, workdir: str, train: bool = False) -> float:
    """Proposals per image of a dataset (from the cache or file ``spec`` reads)."""
    from ....data import build_dataset
    from ....proposals import attach_proposals

    dataset = build_dataset(data, train=train, cache_dir=os.path.join(workdir, "data"))
    source = attach_proposals(dataset, spec)
    counts = [len(source.get(dataset, i)[0]) for i in range(len(dataset))]
    return sum(counts) / max(1, len(counts))


def plot_curves(path: str, x: Sequence[float], series: List[dict], xlabel: str, title: str,
                xlog: bool = False) -> str:
    """One panel per series ``{"y": [...], "label": str, "ylabel": str}``, optionally with
    ``"published_x"``/``"published"`` points, a horizontal ``"reference": (y, label)`` and
    single ``"points": [(x, y, label), ...]``."""
    from ...visualize import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(series), figsize=(4.5 * len(series), 3.6), squeeze=False)
    for ax, s in zip(axes[0], series):
        ax.plot(x, s["y"], "o-", label=s.get("label", "detcore"))
        if s.get("reference"):
            ax.axhline(s["reference"][0], color="C1", linestyle=":", label=s["reference"][1])
        for px, py, plabel in s.get("points", ()):
            ax.plot([px], [py], "D", markersize=8, label=plabel)
        if s.get("published_x"):
            ax.plot(s["published_x"], s["published"], "s--", color="gray", label="published")
        if xlog:  # the points' own values as ticks
            ax.set_xscale("log", base=2)
            ax.set_xticks(list(x), [f"{v:g}" for v in x])
            ax.minorticks_off()
        ax.set_xlabel(xlabel)
        ax.set_ylabel(s["ylabel"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def top_n_proposal_files(data: Dict[str, str], ss_spec: str, counts: Sequence[int], workdir: str,
                         log: Log) -> Dict[int, dict]:
    """Proposal files (detcore's npz) of the first ``n`` selective-search boxes
    of every image, for each ``n`` in ``counts``, from one search per image
    (``ss_spec`` searches up to ``max(counts)``; its ranking makes the first n
    the boxes a search capped at n returns). Returns
    ``{n: {"train": path, "val": path, "mean_train": float, "mean_val": float}}``."""
    from ....data import build_dataset
    from ....proposals import ProposalSet, parse_source, write_proposals

    source = parse_source(ss_spec)
    folder = os.path.join(workdir, "proposals")
    out: Dict[int, dict] = {n: {} for n in counts}
    for split, is_train in (("train", True), ("val", False)):
        dataset = build_dataset(data[split], train=is_train, cache_dir=os.path.join(workdir, "data"))
        source.check(dataset)
        source.precompute(dataset, log)
        ids = [dataset.proposal_id(i) for i in range(len(dataset))]
        names = [os.path.basename(dataset.image_path(i)) for i in range(len(dataset))]
        boxes = [source.boxes_for_file(dataset.image_path(i)) for i in range(len(dataset))]
        for n in counts:
            path = os.path.join(folder, f"{ss_spec.split(':')[1]}_top{n}_{split}.npz")
            top = [b[:n] for b in boxes]
            if not os.path.isfile(path):
                write_proposals(path, ProposalSet(ids, top, None, path, names), "npz")
            out[n][split] = path
            out[n][f"mean_{split}"] = sum(len(b) for b in top) / max(1, len(top))
    return out


def rpn_proposal_file(checkpoint: str, data: str, train: bool, count: int, path: str, device: str, log: Log) -> str:
    """``detcore proposals --method rpn``: a trained detector's RPN boxes (top ``count`` per image)."""
    import torch

    from ....cli import main

    if os.path.isfile(path):
        log(f"reproduce: reusing {path}")
        return path
    argv = ["proposals", "--method", "rpn", "--checkpoint", checkpoint, "--data", data, "-o", path,
            "--max-proposals", str(count), "--device", device, "--threads", str(torch.get_num_threads())]
    argv += ["--train"] if train else []
    if main(argv):
        raise ReproduceError(f"writing RPN proposals failed: detcore {' '.join(argv)}")
    return path


def mean_boxes_in_file(path: str) -> float:
    from ....proposals import read_proposals

    proposals = read_proposals(path)
    return sum(len(b) for b in proposals.boxes) / max(1, len(proposals))
