"""MultiScaleRoIAlign: the FPN level rule and torchvision's module."""

import math
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from detcore.ops import MultiScaleRoIAlign, roi_align  # noqa: E402


def features(rng):
    sizes = [(48, 64), (24, 32), (12, 16), (6, 8)]
    return OrderedDict(
        (str(k), torch.from_numpy(rng.standard_normal((2, 3) + s).astype(np.float32))) for k, s in enumerate(sizes)
    )


def per_image_boxes(rng, counts, size=(190, 250)):
    out = []
    for n in counts:
        xy = rng.uniform(0, 1, (n, 2)) * size[::-1]
        wh = np.exp(rng.uniform(math.log(2), math.log(300), (n, 2)))
        out.append(torch.from_numpy(np.concatenate([xy, xy + wh], 1).astype(np.float32)))
    return out


def reference(x, names, boxes, image_shapes, output_size, sampling_ratio, canonical_scale=224, canonical_level=4):
    """Each box pooled alone from the level of the FPN rule, written plainly."""
    maps = [v for k, v in x.items() if k in names]
    max_h = max(h for h, _ in image_shapes)
    scales = [2.0 ** round(math.log2(m.shape[-2] / max_h)) for m in maps]
    k_min, k_max = -round(math.log2(scales[0])), -round(math.log2(scales[-1]))
    pooled = []
    for image, bs in enumerate(boxes):
        for b in bs.double().numpy():
            area = (b[2] - b[0]) * (b[3] - b[1])
            k = math.floor(canonical_level + math.log2(math.sqrt(area) / canonical_scale) + 1e-6)
            level = min(max(k, k_min), k_max) - k_min if len(maps) > 1 else 0
            roi = torch.tensor([[image, *b]], dtype=torch.float32)
            pooled.append(roi_align(maps[level], roi, output_size, scales[level], sampling_ratio))
    return torch.cat(pooled)


@pytest.mark.parametrize(
    "names,output_size,sampling_ratio,canonical",
    [(["0", "1", "2", "3"], 7, 2, (224, 4)), (["1", "3"], (3, 5), -1, (56, 3)), (["2"], 4, 0, (224, 4))],
)
def test_matches_the_level_rule(rng, names, output_size, sampling_ratio, canonical):
    x = features(rng)
    boxes = per_image_boxes(rng, [13, 9])
    shapes = [(192, 256), (180, 250)]
    pooler = MultiScaleRoIAlign(
        names, output_size, sampling_ratio, canonical_scale=canonical[0], canonical_level=canonical[1]
    )
    out = pooler(x, boxes, shapes)
    size = output_size if isinstance(output_size, tuple) else (output_size, output_size)
    assert out.shape == (22, 3) + size
    expected = reference(x, names, boxes, shapes, size, sampling_ratio, *canonical)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(torch.jit.script(pooler)(x, boxes, shapes), out, rtol=0, atol=0)


def test_gradient_and_empty_boxes(rng):
    x = features(rng)
    x = OrderedDict((k, v.requires_grad_()) for k, v in x.items())
    pooler = MultiScaleRoIAlign(["0", "1", "2"], 2, 2)
    pooler(x, per_image_boxes(rng, [5, 0]), [(192, 256)] * 2).sum().backward()
    assert x["0"].grad is not None or x["1"].grad is not None
    assert pooler(x, per_image_boxes(rng, [0, 0]), [(192, 256)] * 2).shape == (0, 3, 2, 2)


def test_repr_and_bad_arguments():
    pooler = MultiScaleRoIAlign(["0", "1"], 7, 2)
    assert repr(pooler) == (
        "MultiScaleRoIAlign(featmap_names=['0', '1'], output_size=(7, 7), sampling_ratio=2, "
        "canonical_scale=224, canonical_level=4)"
    )
    with pytest.raises(ValueError, match="output_size"):
        MultiScaleRoIAlign(["0"], (1, 2, 3), 2)
    with pytest.raises(TypeError, match="featmap_names"):
        MultiScaleRoIAlign("0", 7, 2)
    with pytest.raises(ValueError, match="image_shapes"):
        pooler({"0": torch.zeros(1, 1, 4, 4), "1": torch.zeros(1, 1, 2, 2)}, [torch.zeros(0, 4)], [])


def test_equals_torchvision(rng):
    tv = pytest.importorskip("torchvision.ops")
    x = features(rng)
    boxes = per_image_boxes(rng, [20, 11])
    shapes = [(192, 256), (190, 240)]
    for names in (["0", "1", "2", "3"], ["1", "2"]):
        ours = MultiScaleRoIAlign(names, 7, 2)(x, boxes, shapes)
        theirs = tv.MultiScaleRoIAlign(names, 7, 2)(x, boxes, shapes)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


class _PoolsTwoLevels(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pooler = MultiScaleRoIAlign(["0", "1"], (2, 3), 2)

    def forward(self, fine, coarse, boxes):
        return self.pooler(OrderedDict([("0", fine), ("1", coarse)]), [boxes], [(190, 250)])


def test_fx_traces_the_module_once_its_scales_are_known(rng):
    x = features(rng)
    fine, coarse = x["0"][:1], x["1"][:1]
    boxes = per_image_boxes(rng, [9])[0]
    model = _PoolsTwoLevels()
    with pytest.raises(ValueError, match="first call"):
        torch.fx.symbolic_trace(model)
    expected = model(fine, coarse, boxes)  # the first call infers the scales
    traced = torch.fx.symbolic_trace(model)
    targets = [n.target for n in traced.graph.nodes if n.op == "call_function"]
    assert targets.count(roi_align) == 2  # one leaf per level
    torch.testing.assert_close(traced(fine, coarse, boxes), expected, rtol=0, atol=0)
    other = per_image_boxes(rng, [4])[0]
    torch.testing.assert_close(traced(fine, coarse, other), model(fine, coarse, other), rtol=0, atol=0)
