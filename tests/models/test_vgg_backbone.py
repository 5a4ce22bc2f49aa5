"""The VGG16 body: trainable layers by stage, and an initialisation that trains from scratch."""

import pytest
import torch

from detcore.models.backbones.vgg import vgg16_body


def test_trainable_stages_freeze_the_first_convs():
    body = vgg16_body(base_width=8, trainable_stages=3)
    convs = [m for m in body.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.weight.requires_grad for c in convs] == [False] * 4 + [True] * 9


@pytest.mark.parametrize("base_width", [8, 64])
def test_signal_keeps_its_scale_through_the_13_convs(base_width):
    # He et al.'s fan-out initialisation keeps the second moment of the
    # activations roughly constant through the ReLU layers (PyTorch's default
    # shrinks it about 0.67x per layer: ~0.005x after 13 layers)
    torch.manual_seed(0)
    body = vgg16_body(base_width=base_width, trainable_stages=5)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = body(x)["c5"]
    ratio = out.pow(2).mean().sqrt() / x.pow(2).mean().sqrt()
    assert 0.1 < ratio < 10, float(ratio)
    assert all(float(c.bias.detach().abs().max()) == 0 for c in body.features if isinstance(c, torch.nn.Conv2d))
