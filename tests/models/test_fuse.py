"""Fused inference: frozen batch norms folded into the convolutions give the
unfused detections."""

import copy

import pytest
import torch

from detcore.models.layers import FrozenBatchNorm2d, fold_frozen_bn
from tiny_models import TINY, batch, build, run

R50_NAMES = sorted(n for n in TINY if "r101" not in n)


def randomize_frozen_bns(model, generator):
    """Statistics that are not the identity, so folding has something to do."""
    for m in model.modules():
        if isinstance(m, FrozenBatchNorm2d):
            n = m.weight.shape[0]
            m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
            m.bias.copy_(torch.randn(n, generator=generator) * 0.1)
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)


def test_folded_conv_equals_conv_then_frozen_bn():
    g = torch.Generator().manual_seed(0)
    for bias in (False, True):
        conv = torch.nn.Conv2d(5, 7, 3, stride=2, padding=1, bias=bias).double()
        bn = FrozenBatchNorm2d(7, eps=1e-3).double()
        randomize_frozen_bns(bn, g)
        x = torch.randn(2, 5, 11, 9, generator=g, dtype=torch.float64)
        with torch.no_grad():
            expected = bn(conv(x))
            fused = fold_frozen_bn(conv, bn)
            torch.testing.assert_close(fused(x), expected, rtol=1e-12, atol=1e-12)
        assert fused.bias is not None and fused.weight.dtype == torch.float64


@pytest.mark.parametrize("winograd_min_channels", [128, 1])
@pytest.mark.parametrize("name", R50_NAMES)
def test_fused_detector_gives_the_unfused_detections(name, winograd_min_channels):
    """The default fuse (channels_last, Winograd from 128 channels: few in the
    tiny models), and with every 3x3, stride-1 conv through NNPACK."""
    from detcore.models.fast_conv import WinogradConv2d, winograd_available
    from detcore.models.fuse import fuse

    import numpy as np

    rng = np.random.default_rng(1)
    model = build(name).eval()
    with torch.no_grad():
        randomize_frozen_bns(model, torch.Generator().manual_seed(2))
    images, targets = batch(rng)
    proposals_rng = np.random.default_rng(3)
    with torch.no_grad():
        expected = run(model, name, images, targets=None, rng=proposals_rng)
        fused = fuse(copy.deepcopy(model), winograd_min_channels=winograd_min_channels)
        got = run(fused, name, images, targets=None, rng=np.random.default_rng(3))
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in fused.modules())
    convs = [m for m in fused.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs if m.weight.shape[-1] > 1)
    switched = [m for m in convs if type(m) is WinogradConv2d]
    assert all(min(m.in_channels, m.out_channels) >= winograd_min_channels for m in switched)
    assert switched or not winograd_available() or winograd_min_channels > 1
    for e, g in zip(expected, got):
        assert e.keys() == g.keys()
        for key in e:
            torch.testing.assert_close(g[key], e[key], rtol=1e-4, atol=1e-4, msg=f"{name}: {key}")
