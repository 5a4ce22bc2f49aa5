"""Run by test_ddp.py, alone or under torchrun: trains the stand-in detector a
few steps and evaluates it; writes the parameters and the metrics."""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))

from detcore.data import CocoDetection  # noqa: E402
from detcore.engine import TrainConfig, evaluate, train  # noqa: E402
from detcore.engine.distributed import get_rank, get_world_size, init_distributed  # noqa: E402
from stand_in import StandInDetector  # noqa: E402


def main(train_ann, val_ann, image_dir, out_dir):
    torch.set_num_threads(1)
    device = init_distributed("cpu")
    train_set = CocoDetection(train_ann, image_dir, remove_empty=True, skip_crowd=True)
    val_set = CocoDetection(val_ann, image_dir)
    torch.manual_seed(0)
    model = StandInDetector(train_set.num_classes)
    cfg = TrainConfig(max_iter=4, images_per_batch=2, base_lr=0.05, warmup_iters=1, log_period=1, jitter=0.2,
                      clip_grad_norm=5.0, tensorboard=False, weight_decay=1e-3)
    train(model, train_set, cfg, out_dir, device=device, show_progress=False)
    metrics = evaluate(model, val_set, device)
    rank = get_rank()
    with open(os.path.join(out_dir, f"metrics_rank{rank}.json"), "w") as f:
        json.dump({"world_size": get_world_size(), **metrics}, f)
    if rank == 0:
        torch.save(model.state_dict(), os.path.join(out_dir, "params.pt"))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:5])
