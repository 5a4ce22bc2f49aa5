"""``svd``: Fast R-CNN's fc6/fc7 compressed by truncated SVD (Fast R-CNN,
section 3.1, Section 4.4 and Figure 2)."""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

from ..base import Experiment, Outcome, Row, register
from .. import runs
from ..runs import PAPER_VOC07, data_specs, eval_run, percent, train_run
from . import _first_line as fl

PAPER_RANKS = (1024, 256)  # fc6, fc7 of VGG16's 4096-wide layers
# the sweep: the paper's ranks times these factors (its ranks are a quarter and a sixteenth of the fc width)
SWEEP = (0.25, 0.5, 1.0, 2.0)
# Figure 2: VGG16 forward pass per image on VOC07 test, before and after SVD
PUBLISHED = {"full": {"fc_ms": 142.0, "test_ms": 320.0, "map": 66.9},
             "svd": {"fc_ms": 41.0, "test_ms": 223.0, "map": 66.6}}
MAP_TOLERANCE = 1.0  # mAP points: a loss smaller than this counts as "small", as the paper's 0.3


def ranks_for(width: int) -> List[Tuple[int, int]]:
    """(fc6, fc7) ranks of the sweep for fc layers ``width`` wide (4096: the paper's)."""
    k6, k7 = width * PAPER_RANKS[0] // 4096, width * PAPER_RANKS[1] // 4096
    return [(max(1, int(k6 * f)), max(1, int(k7 * f))) for f in SWEEP]


@register
class SVD(Experiment):
    """One Fast R-CNN (``fast_rcnn_vgg16``), trained once, evaluated with
    ``detcore eval --voc`` uncompressed and with ``model.svd_ranks=[k6,k7]``
    (fc6 and fc7 replaced at test time by their rank-k truncated SVDs; no
    retraining, as in the paper) for the paper's ranks scaled to the model's fc
    width (1024 and 256 of 4096: a quarter and a sixteenth) and a sweep of a
    quarter, half and twice those ranks.

    Measured: the fc6+fc7 time (the box head alone, timed on as many RoIs as
    the validation images have proposals on average, median of five rounds),
    the whole test time per image (``detcore eval``'s model time, proposals
    precomputed) and VOC07 mAP at each rank; plotted against the fc6 rank.

    Presets: ``paper`` - VGG16 (fc 4096) on VOC07 from an ImageNet VGG16, the
    paper's schedule; ranks 256/64 ... 2048/512, the paper's 1024/256 among
    them. ``small`` - the Fast R-CNN of ``fast_rcnn_main`` (conv1 width 16,
    fc 256, 160 pixels; 2000 iterations of stand-in pre-training, 300 of
    fine-tuning) with ranks 16/4, 32/8, 64/16, 128/32; about 5 minutes on an
    idle 2-core CPU (training 3, five evaluations of 60 images 1). ``quick``:
    fc 32, ranks 2/1 ... 16/4.
    """

    name = "svd"
    title = "Truncated SVD of fc6/fc7: test time and mAP against rank"
    paper = f"{fl.PAPER}, Section 3.1, Section 4.4 and Figure 2"
    claim = ("Truncated SVD of fc6 (rank 1024) and fc7 (rank 256) cuts VGG16 Fast R-CNN's test time by over 30% "
             "(320 -> 223 ms per image; fc6+fc7 142 -> 41 ms) for 0.3 mAP (66.9 -> 66.6), without retraining.")

    def plan(self, preset: str, data: Optional[str] = None, val_data: Optional[str] = None) -> dict:
        fl.check(preset)
        train, val = data_specs(preset, data, val_data, PAPER_VOC07)
        settings = fl.fast_rcnn_settings(preset)
        width = settings["representation_size"]
        ranks = ranks_for(width)
        return {"preset": preset, "data": train, "val_data": val, "proposals": fl.proposal_spec(preset),
                "pretrain": fl.pretrain_plan(preset), "model": "fast_rcnn_vgg16", "model_settings": settings,
                "settings": fl.schedule(preset),
                "ranks": [list(r) for r in ranks], "paper_ranks": list(ranks[SWEEP.index(1.0)])}

    def run(self, plan: dict, workdir: str, log) -> Outcome:
        data = fl.data_and_proposals(plan, workdir, log, [plan["proposals"]])
        weights = fl.initial_weights(plan, workdir, data["train"], plan["proposals"], log)
        trained = train_run(workdir, "fast_rcnn", model=plan["model"], data=data["train"], settings=plan["settings"],
                            model_settings=plan["model_settings"], proposals=plan["proposals"], weights=weights,
                            device=plan["device"], log=log)
        rois = max(1, round(fl.mean_proposals(data["val"], plan["proposals"], workdir)))
        settings = [None] + [tuple(r) for r in plan["ranks"]]
        points = []
        for ranks in settings:
            name = "eval_full" if ranks is None else f"eval_svd_{ranks[0]}_{ranks[1]}"
            extra = {} if ranks is None else {"svd_ranks": list(ranks)}
            metrics = eval_run(workdir, name, checkpoint=trained["checkpoint"], data=data["val"],
                               proposals=plan["proposals"], voc=True, model_settings=extra, device=plan["device"],
                               log=log)
            fc_s = fc_seconds(trained["checkpoint"], extra, rois, plan["device"])
            points.append({"ranks": None if ranks is None else list(ranks), "fc_ms": 1e3 * fc_s,
                           "test_ms": 1e3 * metrics["inference_time_per_image"], "map": percent(fl.voc_map(metrics))})
            log(f"reproduce: svd {ranks or 'off'}: fc6+fc7 {points[-1]['fc_ms']:.2f} ms, test "
                f"{points[-1]['test_ms']:.1f} ms per image, mAP {points[-1]['map']}")
        full = points[0]
        paper_point = next(p for p in points[1:] if p["ranks"] == plan["paper_ranks"])
        k6, k7 = plan["paper_ranks"]
        rows = [Row("no SVD", "fc6+fc7 time per image", PUBLISHED["full"]["fc_ms"], full["fc_ms"], "ms"),
                Row("no SVD", "test time per image", PUBLISHED["full"]["test_ms"], full["test_ms"], "ms"),
                Row("no SVD", "VOC07 mAP", PUBLISHED["full"]["map"], full["map"], "%")]
        for p in points[1:]:
            paper_ranks = p is paper_point
            label = f"SVD fc6 {p['ranks'][0]}, fc7 {p['ranks'][1]}" + (" (the paper's ranks, scaled)"
                                                                       if paper_ranks and k6 != 1024 else "")
            pub = PUBLISHED["svd"] if paper_ranks else {}
            rows += [Row(label, "fc6+fc7 time per image", pub.get("fc_ms"), p["fc_ms"], "ms"),
                     Row(label, "test time per image", pub.get("test_ms"), p["test_ms"], "ms"),
                     Row(label, "VOC07 mAP", pub.get("map"), p["map"], "%")]
        saved = 100.0 * (1.0 - paper_point["test_ms"] / full["test_ms"])
        rows += [Row(f"SVD fc6 {k6}, fc7 {k7}", "test time saved", 30.3, saved, "%"),
                 Row(f"SVD fc6 {k6}, fc7 {k7}", "mAP change (points)", -0.3, paper_point["map"] - full["map"], "")]
        plot = fl.plot_curves(
            os.path.join(workdir, "svd_rank.png"), [p["ranks"][0] for p in points[1:]],
            [{"y": [p["test_ms"] for p in points[1:]], "ylabel": "test time per image (ms)",
              "reference": (full["test_ms"], "no SVD")},
             {"y": [p["fc_ms"] for p in points[1:]], "ylabel": "fc6+fc7 time per image (ms)",
              "reference": (full["fc_ms"], "no SVD")},
             {"y": [p["map"] for p in points[1:]], "ylabel": "VOC07 mAP (%)", "reference": (full["map"], "no SVD")}],
            f"fc6 rank (fc7 rank = fc6 rank / 4; {rois} RoIs per image)",
            f"Truncated SVD of fc6/fc7 ({plan['preset']} preset)", xlog=True)
        ms = plan["model_settings"]
        measured_setting = (f"{plan['data']}, fast_rcnn_vgg16 with conv1 width {ms['base_width']} and fc "
                            f"{ms['representation_size']} at {ms['min_size']} pixels, {plan['settings']['max_iter']} "
                            f"iterations from {fl.init_text(plan)}, {plan['proposals']} ({rois} per validation "
                            f"image on average); fc time on {rois} RoIs; {plan['device']}")
        return Outcome(rows=rows, published_setting=("VOC07 test, VGG16 Fast R-CNN (fc 4096) from ImageNet, "
                                                     "2000 selective-search proposals, one Nvidia K40 GPU"),
                       measured_setting=measured_setting, verdict=verdict(full, paper_point, saved, k6, k7),
                       plots=["svd_rank.png"] if plot else [], details={"points": points, "rois_per_image": rois})


def fc_seconds(checkpoint: str, extra: dict, rois: int, device: str) -> float:
    """Seconds of the box head (fc6, fc7) on ``rois`` pooled RoIs, with the checkpoint's weights."""
    import torch

    from ...cli_support import load_checkpoint_model

    model, _ = load_checkpoint_model(checkpoint, None, extra, torch.device(device))
    head = model.roi_heads.box_head
    x = torch.randn(rois, model.backbone.out_channels, 7, 7, device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)

    def call():
        with torch.no_grad():
            head(x)
        sync()

    return fl.time_call(call)


def _faster(percent_saved: float) -> str:
    return f"{percent_saved:.0f}% faster" if percent_saved >= 0 else f"{-percent_saved:.0f}% slower"


def verdict(full: dict, svd: dict, saved: float, k6: int, k7: int) -> str:
    fc_saved = 100.0 * (1.0 - svd["fc_ms"] / full["fc_ms"])
    loss = full["map"] - svd["map"]
    share = 100.0 * full["fc_ms"] / full["test_ms"]
    fc_faster = fc_saved > 0
    small_loss = loss <= MAP_TOLERANCE
    text = runs.too_weak_sentence([full["map"], svd["map"]]) + (f"At ranks {k6}/{k7} the fc layers ran {_faster(fc_saved)} (published 71% faster) and the whole test "
            f"{_faster(saved)} (published 30% faster), and mAP changed by {-loss:+.1f} points (published -0.3): ")
    if fc_faster and small_loss and saved >= 30:
        text += "the published trade-off shows."
    elif fc_faster and small_loss:
        text += (f"the fc layers get faster at little cost in mAP, as published, but the whole test saves less "
                 f"because fc6+fc7 take {share:.0f}% of the test time here against 45% in the paper (small fc "
                 f"layers, few RoIs per image).")
    elif fc_faster:
        text += "the fc layers get faster, but the accuracy loss is larger than published."
    else:
        text += (f"the fc layers are no faster here: at this size two smaller matrix products do not beat one, and "
                 f"fc6+fc7 take only {share:.0f}% of the test time (45% in the paper), so whole-test differences "
                 f"are timing noise.")
    return text
