import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # proposal_images.py


@pytest.fixture
def image(rng):
    from proposal_images import painted_image

    return painted_image(rng)
