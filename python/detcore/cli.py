"""The ``detcore`` command: demo, train, eval, predict, bench.

    detcore demo [-o OUT]                        synthetic data -> Mask R-CNN -> COCO AP
    detcore train --model NAME --data SPEC -o OUT [--val-data SPEC] [--config FILE] [key=value ...]
    detcore train -o OUT --resume [key=value ...]
    detcore train [--model NAME] --list-settings
    detcore eval --weights CKPT --data SPEC [-o OUT] [--voc]
    detcore predict --weights CKPT IMAGE|FOLDER|GLOB... -o OUT
    detcore bench [--only nms,roi_align]
    detcore bench detectors [--preset cpu|vgg16] [--json PATH]   test-time table: R-CNN .. Faster R-CNN
    detcore proposals --data SPEC -o FILE [--method selective_search|rpn --checkpoint CKPT]
    detcore reproduce NAME|all [--preset quick|small|paper] [--data SPEC] -o DIR   (--list: the experiments)

Detectors that take external proposals (fast_rcnn_vgg16) need ``--proposals
selective_search[:fast|quality[:MAX_BOXES]]`` or ``--proposals FILE`` in train, eval and predict.

Dataset specs: ``synthetic[:TRAIN[:VAL]]``, ``synthetic-hard[:TRAIN[:VAL]]``, ``coco:ANNOTATIONS.json:IMAGE_DIR``,
``voc:ROOT[:SPLIT][:classes=A,B,...]``. Settings: ``key=value`` (see
``detcore train --list-settings``); ``model.key=value`` goes to the model
builder; options and settings may come in any order. Threads: every command
runs torch and detcore on ``--threads`` CPU threads per process (default 1).
Multi-GPU / multi-machine: ``torchrun --nproc_per_node=G [--nnodes ...] -m detcore.cli train ...``.

This module is argument plumbing only: each command's work lives in
``detcore.engine.<command>_cmd``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from .errors import UsageError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

THREADS_HELP = ("torch and detcore CPU threads per process (default 1: on a shared machine more threads spin "
                "against other work and can be several times slower; raise it on an idle machine; "
                "0: the libraries' defaults)")
# the optional modules a command may need, and what to install for them
_EXTRAS = {"torch": "PyTorch", "pycocotools": "pycocotools", "PIL": "Pillow", "matplotlib": "matplotlib",
           "yaml": "PyYAML"}


def _add_common(p, output_required=False):
    p.add_argument("-o", "--output", required=output_required, default=None,
                   help="output folder (checkpoints, metrics, pictures)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help=THREADS_HELP)


def _add_check_data(p):
    p.add_argument("--check-data", action="store_true",
                   help="read every image's header when the dataset is opened (every file's existence is "
                        "always checked)")


def build_parser() -> argparse.ArgumentParser:
    from detcore import __version__
    from detcore.proposals.command import add_command_arguments, add_proposal_arguments

    parser = argparse.ArgumentParser(prog="detcore", description="detcore: train, evaluate and run detectors.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--version", action="version", version=f"detcore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", help="make the synthetic dataset, train a small Mask R-CNN, evaluate, plot")
    _add_common(p)
    p.add_argument("--num-train", type=int, default=600, help="synthetic training images")
    p.add_argument("--num-val", type=int, default=60, help="synthetic validation images")
    p.add_argument("--model", default="mask_rcnn_r50_fpn", help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="training settings, model.key=value")

    p = sub.add_parser("train", help="train a detector")
    _add_common(p)
    p.add_argument("--model", default=None,
                   help="a detcore.models name (mask_rcnn_r50_fpn, ...; see detcore.models.available()) "
                        "or module:function")
    p.add_argument("--data", default=None, help="training dataset spec")
    p.add_argument("--val-data", default=None, help="validation dataset spec (evaluated every eval_period "
                                                     "iterations and at the end)")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="settings from a JSON or YAML file (a run's config.json works); the command line wins")
    p.add_argument("--weights", default=None,
                   help="initial weights: a detcore checkpoint or a torchvision one (COCO detection, ImageNet "
                        "backbone); layers sized by the class count are skipped when it differs")
    p.add_argument("--resume", action="store_true",
                   help="continue the run of the output folder from its latest checkpoint, with its settings")
    p.add_argument("--resume-from", default=None, metavar="CKPT", help="continue from this checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start a new run in a non-empty output folder "
                                                            "(deletes the old run's checkpoints and metrics)")
    p.add_argument("--voc", action="store_true", help="also report VOC07 mAP")
    p.add_argument("--list-settings", action="store_true",
                   help="list the training settings (and with --model, the model's) with defaults and exit")
    _add_check_data(p)
    add_proposal_arguments(p)
    p.add_argument("--val-proposals", default=None, metavar="SPEC", help="proposals of --val-data (default: --proposals)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="training settings, model.key=value")

    p = sub.add_parser("eval", help="evaluate a checkpoint with the COCO metrics")
    _add_common(p)
    p.add_argument("--weights", required=True, help="a detcore checkpoint")
    p.add_argument("--data", required=True, help="dataset spec")
    p.add_argument("--model", default=None, help="model name (default: the checkpoint's)")
    p.add_argument("--voc", action="store_true", help="also report VOC07 mAP")
    p.add_argument("--max-images", type=int, default=None, help="evaluate the first N images only")
    _add_check_data(p)
    add_proposal_arguments(p)
    p.add_argument("overrides", nargs="*", metavar="model.key=value", help="model builder overrides")

    p = sub.add_parser("predict", help="detect objects in images; write pictures and JSON")
    _add_common(p, output_required=True)
    p.add_argument("--weights", default=None, help="a detcore checkpoint (or --onnx)")
    p.add_argument("--onnx", default=None, help="an ONNX file of `detcore export`, run in onnxruntime instead")
    p.add_argument("images", nargs="+", help="image files, folders of images, or glob patterns ('photos/*.jpg'); "
                                             "model.key=value items override model settings")
    p.add_argument("--score-threshold", type=float, default=0.5)
    p.add_argument("--max-detections", type=int, default=None, metavar="N",
                   help="keep the N highest-scoring detections per image")
    p.add_argument("--model", default=None, help="model name (default: the checkpoint's)")
    add_proposal_arguments(p)

    p = sub.add_parser("proposals", help="write a proposal file: selective search, or a trained detector's RPN")
    add_command_arguments(p)
    p.add_argument("--threads", type=int, default=None, metavar="N", help=THREADS_HELP)

    p = sub.add_parser("export", help="export a checkpoint's detector to ONNX (standard operators)")
    p.add_argument("--model", required=True, help="model name")
    p.add_argument("--checkpoint", required=True, help="a detcore checkpoint of that model")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="example input size traced (H and W stay dynamic in the graph)")
    p.add_argument("--no-fuse", action="store_true", help="keep the batch norms unfolded")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--threads", type=int, default=None, metavar="N", help=THREADS_HELP)

    p = sub.add_parser("reproduce", help="re-run an experiment of the line's papers; results beside the published")
    p.add_argument("name", nargs="?", default=None, metavar="NAME", help="an experiment (see --list), or 'all'")
    p.add_argument("--list", action="store_true", help="list the experiments and presets, and exit")
    p.add_argument("--preset", default="small", help="quick, small (default) or paper")
    p.add_argument("--data", default=None, help="dataset spec, as `detcore train --data` takes "
                                                "(default: the preset's synthetic dataset)")
    p.add_argument("--val-data", default=None, help="validation dataset spec (default: the test split of a VOC "
                                                    "spec, the validation split of a synthetic one)")
    p.add_argument("--weights", default=None, help="initial weights of the trained detectors (e.g. an ImageNet "
                                                   "backbone in torchvision's format, for the paper preset)")
    p.add_argument("--dry-run", action="store_true", help="print each experiment's plan (JSON) without running it")
    _add_common(p)

    p = sub.add_parser("bench", help="the op benchmark table (benchmarks/bench_ops.py); `bench detectors`: the "
                                     "detectors' test-time table; `bench models`: whole detectors against torchvision")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments of benchmarks/bench_ops.py")
    return parser


def parse_args(argv: List[str]) -> argparse.Namespace:
    """Options, ``key=value`` settings (and predict's images) in any order."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    rest = "images" if args.command == "predict" else "overrides"
    unknown = [a for a in extra if a.startswith("-") or not hasattr(args, rest)]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        setattr(args, rest, list(getattr(args, rest) or []) + extra)
    return args


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench" and not {"-h", "--help"} & set(argv[1:2]):
        from detcore import bench  # its arguments belong to benchmarks/bench_ops.py

        try:
            return bench.main(argv[1:])
        except FileNotFoundError as e:
            print(f"detcore bench: error: {e}", file=sys.stderr)
            return EXIT_USAGE
    args = parse_args(argv)
    try:
        return _COMMANDS[args.command](args) or 0
    except KeyboardInterrupt:
        _error(args.command, "interrupted")
        return EXIT_INTERRUPTED
    except ModuleNotFoundError as e:
        if e.name not in _EXTRAS:
            raise
        _error(args.command, f"{_EXTRAS[e.name]} is not installed; install the training extras: "
                             f"pip install 'detcore[train]' (the README's Install section says how to get "
                             f"the CPU-only PyTorch first)")
        return EXIT_USAGE
    except Exception as e:
        if _is_user_error(e):
            _error(args.command, str(e))
            return EXIT_USAGE
        raise  # a bug, not a user mistake: keep the traceback


def _is_user_error(e: Exception) -> bool:
    if isinstance(e, (UsageError, FileNotFoundError)):
        return True
    user_errors = [("detcore.data", "DatasetError"), ("detcore.engine.checkpoint", "CheckpointError"),
                   ("detcore.engine.trainer", "TrainingSetupError"), ("detcore.proposals", "ProposalError"),
                   ("detcore.engine.reproduce.base", "ReproduceError")]
    return any(isinstance(e, getattr(sys.modules[module], name)) for module, name in user_errors
               if module in sys.modules)


def _error(command: str, message: str) -> None:
    """One line on stderr, from the first process only under torchrun."""
    if os.environ.get("RANK", "0") == "0":
        print(f"detcore {command}: error: {message}", file=sys.stderr)


def _prepare(args) -> None:
    """What every command but bench does first: PyTorch present, the thread rule."""
    import torch  # noqa: F401 (a missing PyTorch is reported by main)

    from detcore.engine.cli_support import set_threads

    set_threads(args.threads)


def cmd_train(args):
    _prepare(args)
    from detcore.engine import train_cmd

    return train_cmd.run(args)


def cmd_eval(args):
    _prepare(args)
    from detcore.engine import eval_cmd

    return eval_cmd.run(args)


def cmd_predict(args):
    _prepare(args)
    from detcore.engine import predict_cmd

    return predict_cmd.run(args)


def cmd_demo(args):
    _prepare(args)
    from detcore.engine import demo_cmd

    return demo_cmd.run(args)


def cmd_bench(args):
    from detcore import bench

    return bench.main(args.bench_args)


# The helpers under their former names, for code written against them; the
# work is in detcore.engine.cli_support.
def _log(*parts):
    from detcore.engine.cli_support import log

    log(*parts)


def _split_overrides(items):
    from detcore.engine.cli_support import split_overrides

    return split_overrides(items)


def _settings(base, items):
    from detcore.engine.cli_support import settings_from

    return settings_from(base, items)


def _build(name, num_classes, overrides):
    from detcore.engine.cli_support import build_detector

    return build_detector(name, num_classes, overrides)


def _load_checkpoint_model(weights, model_name, extra_overrides, device):
    from detcore.engine.cli_support import load_checkpoint_model

    return load_checkpoint_model(weights, model_name, extra_overrides, device)


def _write_json(path, payload):
    from detcore.engine.cli_support import write_json

    write_json(path, payload)


def _evaluate_and_report(model, dataset, device, output, **kwargs):
    from detcore.engine.cli_support import evaluate_and_report

    return evaluate_and_report(model, dataset, device, output, **kwargs)


def cmd_proposals(args):
    _prepare(args)
    from detcore.engine.cli_support import log
    from detcore.proposals.command import run

    return run(args, log)


def cmd_export(args):
    _prepare(args)
    from detcore.export.command import ExportUsageError, export_checkpoint

    try:
        path = export_checkpoint(args.model, args.checkpoint, args.output, args.image_size, fuse=not args.no_fuse)
    except ExportUsageError as e:
        raise UsageError(str(e)) from None
    print(f"wrote {path}")
    return 0


def cmd_reproduce(args):
    if not args.list and not args.dry_run:
        _prepare(args)
    from detcore.engine.reproduce.command import run

    return run(args)


_COMMANDS = {"demo": cmd_demo, "train": cmd_train, "eval": cmd_eval, "predict": cmd_predict, "bench": cmd_bench,
             "proposals": cmd_proposals, "export": cmd_export, "reproduce": cmd_reproduce}


if __name__ == "__main__":
    sys.exit(main())
