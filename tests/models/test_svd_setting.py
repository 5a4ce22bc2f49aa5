"""The ``svd_ranks`` model setting: fc6/fc7 as truncated SVDs at test time
(Fast R-CNN, section 3.1), the full layers in training and in checkpoints."""

import numpy as np
import pytest
import torch

from detcore import models
from detcore.models.roi_heads.box_head import TwoFCHead
from tiny_models import TINY, batch, proposals_for


def rank_k(weight: torch.Tensor, k: int) -> torch.Tensor:
    """The best rank-k approximation of ``weight``, from numpy's float64 SVD."""
    u, s, vt = np.linalg.svd(weight.detach().double().numpy(), full_matrices=False)
    return torch.from_numpy((u[:, :k] * s[:k]) @ vt[:k])


def test_eval_runs_the_rank_k_layers_and_training_the_full_ones(rng):
    head = TwoFCHead(40, 24, svd_ranks=(6, 3))
    x = torch.tensor(rng.normal(size=(5, 40)), dtype=torch.float32)
    w6, w7 = rank_k(head.fc6.weight, 6), rank_k(head.fc7.weight, 3)
    h = torch.relu(x.double() @ w6.T + head.fc6.bias.double())
    expected = torch.relu(h @ w7.T + head.fc7.bias.double())
    with torch.no_grad():
        torch.testing.assert_close(head.eval()(x).double(), expected, atol=1e-4, rtol=1e-4)
        full = torch.relu(head.fc7(torch.relu(head.fc6(x))))
        torch.testing.assert_close(head.train()(x), full)
    assert set(head.state_dict()) == {"fc6.weight", "fc6.bias", "fc7.weight", "fc7.bias"}


def test_new_weights_are_factorised_again(rng):
    head = TwoFCHead(12, 10, svd_ranks=(10, 0)).eval()  # full rank fc6: the same function
    x = torch.tensor(rng.normal(size=(3, 12)), dtype=torch.float32)
    with torch.no_grad():
        head.fc6.weight.mul_(2.0)  # after the factors were made
        torch.testing.assert_close(head(x), torch.relu(head.fc7(torch.relu(head.fc6(x)))), atol=1e-4, rtol=1e-4)


def test_the_setting_matches_compress_fc_svd_on_a_checkpointed_detector(rng, tmp_path):
    trained = models.build("fast_rcnn_vgg16", 4, **TINY["fast_rcnn_vgg16"])
    compressed = models.build("fast_rcnn_vgg16", 4, **TINY["fast_rcnn_vgg16"], svd_ranks=[8, 4])
    compressed.load_state_dict(trained.state_dict())  # the full checkpoint loads as is
    reference = models.compress_fc_svd(trained, {"fc6": 8, "fc7": 4}).eval()
    compressed.eval()
    images, targets = batch(rng)
    proposals = proposals_for(targets, rng)
    with torch.no_grad():
        for a, b in zip(reference(images, proposals=proposals), compressed(images, proposals=proposals)):
            torch.testing.assert_close(a["boxes"], b["boxes"], atol=1e-3, rtol=1e-4)
            torch.testing.assert_close(a["scores"], b["scores"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("ranks", [(1,), (0, 33), (-1, 2), (2.5, 2), "12", (True, 1)])
def test_bad_ranks_name_the_setting(ranks):
    with pytest.raises(ValueError, match="svd_ranks: expected"):
        TwoFCHead(40, 32, svd_ranks=ranks)
    with pytest.raises(ValueError, match="svd_ranks"):
        models.build("fast_rcnn_vgg16", 4, **TINY["fast_rcnn_vgg16"], svd_ranks=ranks)
