"""Training, evaluation, checkpoints and distributed helpers."""

from .build import build_model
from .checkpoint import (CheckpointError, latest_checkpoint, load_model_state, read_checkpoint,
                         save_checkpoint)
from .config import TrainConfig, apply_overrides
from .evaluation import (coco_evaluate, coco_results, evaluate, format_ap_table, run_inference, voc07_ap,
                         voc07_map)
from .schedule import LRFactor, build_optimizer, build_scheduler
from .trainer import FINAL_CHECKPOINT, METRICS_FILE, train

__all__ = [
    "build_model", "CheckpointError", "latest_checkpoint", "load_model_state", "read_checkpoint",
    "save_checkpoint", "TrainConfig", "apply_overrides", "coco_evaluate", "coco_results", "evaluate",
    "format_ap_table", "run_inference", "voc07_ap", "voc07_map", "LRFactor", "build_optimizer",
    "build_scheduler", "FINAL_CHECKPOINT", "METRICS_FILE", "train",
]
