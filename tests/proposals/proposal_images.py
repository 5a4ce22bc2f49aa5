"""Small images for the selective-search tests."""

import numpy as np


def painted_image(rng, height=48, width=64, shapes=3):
    """Noise with a few flat rectangles: something for selective search to group."""
    image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    for _ in range(shapes):
        x1, y1 = int(rng.integers(0, width - 12)), int(rng.integers(0, height - 12))
        x2, y2 = x1 + int(rng.integers(8, width - x1)), y1 + int(rng.integers(8, height - y1))
        image[y1:y2, x1:x2] = rng.integers(80, 256, 3, dtype=np.uint8)
    return image
