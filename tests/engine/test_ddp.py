"""Two gloo processes under torchrun reach the parameters of one process with
the same global batch, and the sharded evaluation gathers every image."""

import json
import os
import subprocess
import sys

import torch

WORKER = os.path.join(os.path.dirname(__file__), "ddp_worker.py")


def _run(args, env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")])
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_two_processes_equal_one(tiny_synthetic, tmp_path):
    train_set, val_set = tiny_synthetic
    data = [train_set.annotation_file, val_set.annotation_file, train_set.image_dir]
    _run([sys.executable, WORKER, *data, str(tmp_path / "single")])
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", WORKER, *data,
          str(tmp_path / "ddp")])
    single = torch.load(tmp_path / "single/params.pt")
    ddp = torch.load(tmp_path / "ddp/params.pt")
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-5, atol=1e-6)
    # the run moved the parameters (so the comparison means something)
    torch.manual_seed(0)
    from stand_in import StandInDetector

    initial = StandInDetector(train_set.num_classes).state_dict()
    assert any(not torch.allclose(initial[k], single[k]) for k in single)

    metrics = [json.load(open(tmp_path / f"ddp/metrics_rank{r}.json")) for r in range(2)]
    reference = json.load(open(tmp_path / "single/metrics_rank0.json"))
    assert metrics[0]["world_size"] == 2 and metrics[0]["num_images"] == len(val_set)
    for kind in ("bbox",):
        assert metrics[0][kind] == metrics[1][kind]  # every process gets the gathered result
        for key, value in reference[kind].items():
            assert abs(metrics[0][kind][key] - value) < 1e-3
    single_losses = [json.loads(line)["loss"] for line in open(tmp_path / "single/train_metrics.jsonl")]
    ddp_losses = [json.loads(line)["loss"] for line in open(tmp_path / "ddp/train_metrics.jsonl")]
    assert len(single_losses) == len(ddp_losses) == 4
    for a, b in zip(single_losses, ddp_losses):
        assert abs(a - b) < 1e-5
