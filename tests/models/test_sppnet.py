"""SPP-net: conv once per image, spp_pool per proposal; fine-tuning stops
below the SPP layer unless finetune_conv; the shared stages train it."""

import numpy as np
import pytest
import torch

from classic_data import SPP_TINY, WithProposals, tiny_synthetic
from tiny_models import batch, proposals_for

from detcore import models, ops
from detcore.models.transform import _scale_xy

pytest.importorskip("sklearn")


def build_spp(**kw):
    return models.build("sppnet_vgg16", 4, **{**SPP_TINY, **kw})


def test_pool5_is_the_pyramid_of_the_conv5_map():
    rng = np.random.default_rng(0)
    images, targets = batch(rng)
    props = proposals_for(targets, rng)
    model = build_spp().eval()
    feats = model.region_features(images, props, ("pool5",))
    for image, p, f in zip(images, props, feats):
        # the reference: the model's own transform and backbone, then the op
        b, _ = model.transform([image])
        conv5 = model.backbone(b.tensors)["c5"]
        expected = ops.spp_pool(conv5, [_scale_xy(p, tuple(image.shape[-2:]), b.image_sizes[0])], levels=(2, 1),
                                spatial_scale=1 / 16)
        assert f["pool5"].shape == (p.shape[0], model.backbone.out_channels * 5)
        torch.testing.assert_close(f["pool5"], expected)


@pytest.mark.parametrize("finetune_conv", [False, True])
def test_finetuning_updates_the_convs_only_when_asked(finetune_conv):
    rng = np.random.default_rng(1)
    images, targets = batch(rng)
    targets = [{k: t[k] for k in ("boxes", "labels")} for t in targets]
    model = build_spp(finetune_conv=finetune_conv).train()
    loss = model(images, targets, proposals=proposals_for(targets, rng))["loss_classifier"]
    loss.backward()
    assert model.head.fc6.weight.grad is not None
    conv_grad = model.backbone.features[-2].weight.grad
    assert (conv_grad is not None and conv_grad.abs().sum() > 0) == finetune_conv


def test_sppnet_overfits_a_fixed_batch():
    rng = np.random.default_rng(2)
    images, targets = batch(rng)
    targets = [{k: t[k] for k in ("boxes", "labels")} for t in targets]
    props = proposals_for(targets, rng)
    model = build_spp(batch_size=256, positive_fraction=0.5, finetune_conv=True).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    history = []
    for _ in range(40):
        loss = model(images, targets, proposals=props)["loss_classifier"]
        history.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert history[-1] < 0.6 * history[0], [round(h, 3) for h in history]


def test_sppnet_stages_train_and_detect(tmp_path):
    from detcore.engine import TrainConfig
    from detcore.engine.stages import train_stages

    train_set, val_set = tiny_synthetic(str(tmp_path / "data"))
    cfg = TrainConfig(max_iter=3, images_per_batch=2, base_lr=0.005, warmup_iters=0, flip_prob=0.0,
                      tensorboard=False, log_period=1)
    model = models.build("sppnet_vgg16", train_set.num_classes, **SPP_TINY)
    summary = train_stages(model, WithProposals(train_set), cfg, str(tmp_path / "run"), log=lambda s: None,
                           show_progress=False)
    assert summary["feature_cache_bytes"] > 0 and bool(model.stages_done.all())
    image, target = WithProposals(val_set)[0]
    out = model([image], proposals=[target["proposals"]])[0]
    assert out["boxes"].shape[0] == out["scores"].shape[0] > 0


def test_bad_levels():
    with pytest.raises(ValueError, match="levels"):
        build_spp(levels=(2, 0))
