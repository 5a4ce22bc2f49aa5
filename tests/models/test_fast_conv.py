"""Winograd 3x3 convolutions (NNPACK) of fused inference: the same outputs as
the ordinary convolution, and the ordinary path wherever NNPACK cannot run."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from detcore.models.fast_conv import WinogradConv2d, use_winograd, winograd_available

pytestmark = pytest.mark.skipif(not winograd_available(), reason="this PyTorch was built without NNPACK")


def reference_conv3x3(x, weight, bias, padding):
    """Plain numpy float64: zero padding, then the 9 shifted products summed."""
    x, weight = x.double().numpy(), weight.double().numpy()
    n, c, h, w = x.shape
    ph, pw = padding
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + w] = x
    oh, ow = h + 2 * ph - 2, w + 2 * pw - 2
    out = np.zeros((n, weight.shape[0], oh, ow))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,kc->nkhw", xp[:, :, i:i + oh, j:j + ow], weight[:, :, i, j])
    if bias is not None:
        out += bias.double().numpy()[None, :, None, None]
    return torch.from_numpy(out)


def switched(conv):
    conv = copy.deepcopy(conv).requires_grad_(False)
    assert use_winograd(conv, min_channels=1) == 1 and type(conv) is WinogradConv2d
    return conv


@pytest.mark.parametrize("shape,padding,bias", [((2, 16, 13, 9), (1, 1), True), ((1, 5, 7, 30), (0, 0), False),
                                                ((3, 8, 3, 3), (1, 1), True), ((1, 32, 40, 57), (2, 1), True)])
def test_equals_the_reference_on_random_inputs(shape, padding, bias):
    g = torch.Generator().manual_seed(sum(shape))
    conv = nn.Conv2d(shape[1], 11, 3, padding=padding, bias=bias)
    x = torch.randn(*shape, generator=g)
    fast = switched(conv)
    with torch.no_grad():
        got = fast(x)
    expected = reference_conv3x3(x, conv.weight.detach(), None if conv.bias is None else conv.bias.detach(), padding)
    assert got.shape == expected.shape and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def test_channels_last_and_strided_inputs_give_the_same_result():
    g = torch.Generator().manual_seed(1)
    conv = nn.Conv2d(8, 8, 3, padding=1)
    fast = switched(conv)
    x = torch.randn(2, 8, 12, 10, generator=g)
    with torch.no_grad():
        expected = conv(x)
        for variant in (x.contiguous(memory_format=torch.channels_last), torch.randn(2, 8, 12, 20)[..., ::2].copy_(x)):
            torch.testing.assert_close(fast(variant), expected, rtol=1e-5, atol=1e-5)


def test_falls_back_where_nnpack_cannot_run():
    g = torch.Generator().manual_seed(2)
    conv = nn.Conv2d(4, 6, 3, padding=1)
    fast = copy.deepcopy(conv)
    use_winograd(fast, min_channels=1)
    x = torch.randn(2, 4, 9, 9, generator=g)
    # autograd: the ordinary path, whose gradients flow
    fast(x).sum().backward()
    conv(x).sum().backward()
    torch.testing.assert_close(fast.weight.grad, conv.weight.grad)
    with torch.no_grad():
        torch.testing.assert_close(fast.double()(x.double()), conv.double()(x.double()))  # float64
        empty = fast.float()(torch.zeros(0, 4, 9, 9))  # NNPACK refuses an empty batch
    assert empty.shape == (0, 6, 9, 9)


def test_torchscript_and_export_keep_the_standard_convolution():
    conv = switched(nn.Conv2d(4, 4, 3, padding=1))
    x = torch.randn(1, 4, 8, 8)
    scripted = torch.jit.script(conv)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), conv(x), rtol=1e-5, atol=1e-5)
    program = torch.export.export(conv, (x,))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any("nnpack" in t for t in targets), targets


def test_only_3x3_stride_1_ungrouped_convs_with_enough_channels_switch():
    model = nn.Sequential(
        nn.Conv2d(128, 128, 3, padding=1),  # switched
        nn.Conv2d(128, 128, 3, stride=2, padding=1),
        nn.Conv2d(128, 128, 1),
        nn.Conv2d(128, 128, 3, padding=2, dilation=2),
        nn.Conv2d(128, 128, 3, padding=1, groups=2),
        nn.Conv2d(64, 128, 3, padding=1),  # too few input channels
        nn.Conv2d(128, 128, 3, padding=1, padding_mode="reflect"),
        nn.Conv2d(256, 256, 3, padding=1),  # switched
    )
    assert use_winograd(model) == 2
    assert [type(m) is WinogradConv2d for m in model] == [True] + [False] * 6 + [True]
