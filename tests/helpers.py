"""Input makers shared by the op tests (the references stay in each test)."""

import numpy as np


def random_boxes(rng, n, size=100.0, max_wh=40.0, dtype=np.float64):
    """(n, 4) valid boxes x1 < x2, y1 < y2 inside roughly [0, size]."""
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, max_wh, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


def edge_case_boxes(dtype=np.float64):
    """Degenerate, inverted, out-of-image, huge and non-finite boxes."""
    return np.array(
        [
            [10, 10, 10, 10],  # a point
            [10, 10, 20, 10],  # zero height
            [30, 30, 20, 20],  # inverted
            [-50, -50, -10, -10],  # outside the image
            [-5, -5, 1e6, 1e6],  # huge
            [0, 0, 1e30, 1e30],  # huge enough to overflow float32 areas
            [np.nan, 0, 10, 10],
            [0, 0, np.inf, 10],
        ],
        dtype=dtype,
    )


def integer_boxes(rng, n, size=128, max_wh=128, dtype=np.float32):
    """(n, 4) valid boxes with integer coordinates below 256: exact in every
    float dtype (bfloat16 included), with exact areas and intersections, so an
    IoU computed in float32 rounds the same exact fraction as in float64."""
    xy = rng.integers(0, size, (n, 2))
    wh = rng.integers(1, max_wh + 1, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


class DLPackArray:
    """Another framework's array (JAX, CuPy, ...), seen only through the
    DLPack protocol; counts how often it was exported."""

    def __init__(self, array):
        self.array = array
        self.exports = 0

    def __dlpack__(self, **kwargs):
        self.exports += 1
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


# float16 / bfloat16 on the CPU: the ops compute in float and round once, so
# a half result equals the float32 result of the same (half) inputs rounded
# to half, and is within one rounding of a float64 reference.
HALF_DTYPES = ("float16", "bfloat16")
HALF_EPS = {"float16": 2.0**-11, "bfloat16": 2.0**-8}  # unit roundoff


def to_half(array, dtype: str):
    """A torch tensor of `dtype` holding `array` rounded to it."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(getattr(torch, dtype))


def assert_half_result(got, float32_result, reference, dtype: str, scale: float = 1.0):
    """`got` (a half tensor) is `float32_result` (the op on the float32 copies
    of the same inputs) rounded to `dtype`, bit for bit, and within about two
    roundings of the float64 `reference` (values near 0 measured against
    `scale`, the magnitude of the result)."""
    import torch

    assert str(got.dtype) == f"torch.{dtype}"
    torch.testing.assert_close(got, float32_result.to(got.dtype), rtol=0, atol=0, equal_nan=True)
    eps = 2 * HALF_EPS[dtype]
    got = got.double().numpy()
    with np.errstate(invalid="ignore"):
        close = np.abs(got - reference) <= eps * (np.abs(reference) + scale)
    close |= np.isnan(got) & np.isnan(reference)
    close |= got == reference  # infinities
    assert close.all(), f"{np.count_nonzero(~close)} values off, e.g. {got[~close][:5]} vs {reference[~close][:5]}"
