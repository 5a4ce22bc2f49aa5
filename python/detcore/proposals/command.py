"""The proposals part of the ``detcore`` command: ``detcore proposals`` (write a
proposal file) and the ``--proposals`` option of train / eval / predict."""

from __future__ import annotations

import os
import time
from typing import Callable, Optional

import numpy as np

from .files import FORMATS, ProposalError, ProposalSet, format_of, write_proposals
from .selective import clip_to_image
from .source import SPEC_HELP, FileSource, SelectiveSearchSource, attach_proposals, parse_source

Log = Callable[[str], None]


def add_proposal_arguments(parser) -> None:
    """``--proposals`` and ``--proposal-cache`` for train / eval / predict."""
    parser.add_argument("--proposals", default=None, metavar="SPEC",
                        help=f"external proposals for detectors that take them (fast_rcnn_vgg16): {SPEC_HELP}")
    parser.add_argument("--proposal-cache", default=None, metavar="DIR",
                        help="where selective search caches its boxes (default: a .detcore_proposals folder "
                             "beside the images)")


def add_command_arguments(parser) -> None:
    """The arguments of ``detcore proposals``."""
    parser.add_argument("--data", required=True, help="dataset spec")
    parser.add_argument("-o", "--output", required=True, help="the proposal file to write (.pkl or .npz)")
    parser.add_argument("--method", choices=("selective_search", "rpn"), default="selective_search")
    parser.add_argument("--strategy", choices=("fast", "quality"), default="fast", help="selective search mode")
    parser.add_argument("--max-proposals", type=int, default=None,
                        help="proposals per image (selective search: 2000; rpn: its post-NMS top-n, e.g. 2000)")
    parser.add_argument("--checkpoint", default=None, help="rpn: a detcore checkpoint of a detector with an RPN")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="detectron2 (pickle) or npz (default: from the extension of --output)")
    parser.add_argument("--train", action="store_true",
                        help="the images of the spec's training split, as `detcore train --data` reads them "
                             "(default: as `detcore eval` reads them)")
    parser.add_argument("--proposal-cache", default=None, metavar="DIR",
                        help="selective search's cache folder (default: beside the images)")
    parser.add_argument("--workers", type=int, default=1,
                        help="selective search: processes searching images at once (the cache they fill is the "
                             "one `--proposals selective_search` reads)")
    parser.add_argument("--device", default="cpu", help="rpn: cpu, cuda, ...")


def _source(spec: str, cache_dir: Optional[str]):
    try:
        return parse_source(spec, cache_dir)
    except ImportError as e:  # OpenCV's contrib module missing: one line with the install hint
        raise ProposalError(str(e)) from None
    except ValueError as e:
        raise ProposalError(f"--proposals: {e}") from None


def takes_proposals(model, model_name: str, spec: Optional[str]) -> bool:
    """Whether to give ``model`` external proposals; a one-line error when it
    needs them and ``spec`` is empty, or makes its own and ``spec`` is given."""
    if not getattr(model, "needs_proposals", False):
        if spec:
            raise ProposalError(f"--proposals: {model_name} makes its own proposals; drop --proposals")
        return False
    if not spec:
        raise ProposalError(f"{model_name} takes external proposals: pass --proposals selective_search"
                            f"[:fast|quality[:MAX_BOXES]] (computed once per image, cached beside the images) "
                            f"or --proposals FILE (a .pkl/.npz proposal file, e.g. from `detcore proposals`)")
    return True


def attach_for_model(model, model_name: str, dataset, spec: Optional[str], cache_dir: Optional[str], log: Log,
                     what: str = "--data", limit: Optional[int] = None):
    """Attaches ``--proposals`` to ``dataset`` when the model takes proposals
    (running selective search over it, or its first ``limit`` images, once:
    training then reads the cache)."""
    if not takes_proposals(model, model_name, spec):
        return None
    source = _source(spec, cache_dir)
    if isinstance(source, SelectiveSearchSource) and len(dataset):
        count = len(dataset) if limit is None else min(limit, len(dataset))
        log(f"selective search ({source.strategy}, up to {source.max_boxes} boxes) on the {count} images of "
            f"{what}, cached in {source.cache.folder_for(dataset.image_path(0))}")
        source.check(dataset)
        t0 = time.perf_counter()
        source.precompute(dataset, log, limit)
        log(f"selective search: {source.cache.misses} images searched, {source.cache.hits} read from the cache, "
            f"{time.perf_counter() - t0:.1f} s")
    source = attach_proposals(dataset, source)
    if isinstance(source, FileSource):
        log(f"proposals of {what}: {source.path} ({len(source.proposals)} images in the file)")
    return source


def image_proposals(model, model_name: str, spec: Optional[str], cache_dir: Optional[str]):
    """``detcore predict``: a function ``(path, height, width) -> model keyword
    arguments`` that gives the model an image file's proposals (from a proposal
    file: see :meth:`ProposalSet.id_for_file`)."""
    if not takes_proposals(model, model_name, spec):
        return lambda path, height, width: {}
    import torch

    source = _source(spec, cache_dir)
    device = next(model.parameters()).device

    def for_image(path: str, height: int, width: int) -> dict:
        if isinstance(source, FileSource):
            found = source.proposals.id_for_file(path)
            if found is None:
                raise ProposalError(f"{source.path} has no proposals for image {path}: predict looks an image up "
                                    f"by its file name (recorded by `detcore proposals`) or name stem (000005.jpg -> "
                                    f"id 000005 or 5)")
            boxes = clip_to_image(source.proposals.get(found)[0], height, width)[0]
        else:
            boxes = source.boxes_for_file(path)
        return {"proposals": [torch.from_numpy(np.ascontiguousarray(boxes)).to(device)]}

    return for_image


def run(args, log: Log = print) -> int:
    """``detcore proposals``: write a proposal file for a dataset."""
    from ..data import build_dataset

    fmt = args.format
    if fmt is None:
        try:
            fmt = format_of(args.output)
        except ValueError as e:
            raise ProposalError(f"-o {args.output}: {e}") from None
    if args.workers <= 0:
        raise ProposalError(f"--workers: expected a positive int, got {args.workers}")
    if args.max_proposals is not None and args.max_proposals <= 0:
        raise ProposalError(f"--max-proposals: expected a positive int, got {args.max_proposals}")
    dataset = build_dataset(args.data, train=args.train,
                            cache_dir=os.path.dirname(os.path.abspath(args.output)))
    t0 = time.perf_counter()
    if args.method == "selective_search":
        if args.checkpoint:
            raise ProposalError("--checkpoint is for --method rpn")
        spec = f"selective_search:{args.strategy}" + (f":{args.max_proposals}" if args.max_proposals else "")
        source = _source(spec, args.proposal_cache)
        source.check(dataset)
        source.precompute(dataset, log, workers=args.workers)
        ids = [dataset.proposal_id(i) for i in range(len(dataset))]
        boxes = [source.boxes_for_file(dataset.image_path(i)) for i in range(len(dataset))]
        proposals = ProposalSet(ids, boxes, None, args.output, _file_names(dataset))
    else:
        proposals = _rpn_proposal_set(args, dataset, log)
    write_proposals(args.output, proposals, fmt)
    count = sum(len(b) for b in proposals.boxes)
    log(f"wrote {args.output} ({fmt}): {count} proposals for {len(proposals)} images "
        f"({count / max(len(proposals), 1):.0f} per image), {time.perf_counter() - t0:.1f} s")
    return 0


def _rpn_proposal_set(args, dataset, log: Log) -> ProposalSet:
    import torch

    from ..engine import build_model, load_model_state, read_checkpoint
    from .rpn import has_rpn, rpn_proposals

    if not args.checkpoint:
        raise ProposalError("--method rpn needs --checkpoint CKPT (a trained detector with an RPN, "
                            "e.g. faster_rcnn_vgg16)")
    payload = read_checkpoint(args.checkpoint)
    meta = payload.get("meta", {})
    if not meta.get("model") or not meta.get("num_classes"):
        raise ProposalError(f"{args.checkpoint} does not record its model and num_classes")
    try:
        model = build_model(meta["model"], meta["num_classes"], **meta.get("model_overrides", {}))
    except (ValueError, TypeError) as e:
        raise ProposalError(f"{args.checkpoint}: cannot build {meta['model']!r}: {e}") from None
    if not has_rpn(model):
        raise ProposalError(f"{args.checkpoint}: {meta['model']} has no RPN; --method rpn needs a detector "
                            f"with one (faster_rcnn_*, mask_rcnn_*, ...)")
    load_model_state(model, payload, args.checkpoint)
    device = torch.device(args.device)
    model.to(device).eval()
    ids, boxes, logits = [], [], []
    for index in range(len(dataset)):
        image, _ = dataset[index]
        (b, lg), = rpn_proposals(model, [image.to(device)], args.max_proposals)
        ids.append(dataset.proposal_id(index))
        boxes.append(b.cpu().numpy())
        logits.append(lg.cpu().numpy())
        if (index + 1) % 100 == 0:
            log(f"rpn: {index + 1}/{len(dataset)} images")
    return ProposalSet(ids, boxes, logits, args.output, _file_names(dataset))


def _file_names(dataset):
    return [os.path.basename(dataset.image_path(i)) for i in range(len(dataset))]
