"""`detcore export`: a checkpoint's detector into an ONNX file. Bad input
(an unknown model, a checkpoint of another model, an image size the model
cannot take) is one clear line."""

from __future__ import annotations

import json


class ExportUsageError(ValueError):
    """A user mistake, reported as one line by the command."""


def export_checkpoint(model_name: str, checkpoint: str, output: str, image_size=None, fuse: bool = True) -> str:
    from ..engine import load_model_state, read_checkpoint
    from ..models import available, build
    from . import check_image_size, to_onnx
    from .runtime import META_KEY, export_metadata

    if model_name not in available():
        raise ExportUsageError(f"--model: expected one of {', '.join(available())}, got {model_name!r}")
    payload = read_checkpoint(checkpoint)
    meta = payload.get("meta", {})
    if meta.get("model") and meta["model"] != model_name:
        raise ExportUsageError(f"--checkpoint: {checkpoint} holds a {meta['model']}, not a {model_name}")
    num_classes = meta.get("num_classes")
    if not num_classes:
        raise ExportUsageError(f"--checkpoint: {checkpoint} does not record num_classes")
    try:
        model = build(model_name, num_classes, **meta.get("model_overrides", {}))
    except ValueError as e:
        raise ExportUsageError(f"--model: {e}") from None
    load_model_state(model, payload, checkpoint)
    model.eval()
    if image_size is not None:
        try:
            image_size = check_image_size(model, image_size)
        except ValueError as e:
            raise ExportUsageError(f"--image-size: {e}") from None
    try:
        path = to_onnx(model, output, image_size=image_size, fuse=fuse)
    except ValueError as e:  # e.g. a model the exporter refuses, with its reason
        raise ExportUsageError(str(e)) from None
    _add_metadata(path, META_KEY, json.dumps(export_metadata(model, model_name, meta.get("class_names"))))
    return path


def _add_metadata(path: str, key: str, value: str) -> None:
    import onnx

    proto = onnx.load(path)
    entry = proto.metadata_props.add()
    entry.key, entry.value = key, value
    onnx.save(proto, path)


def load_onnx_detector(path: str):
    """(OnnxDetector, meta) for `detcore predict --onnx`; meta as a checkpoint's."""
    import os

    from .runtime import OnnxDetector

    if not os.path.isfile(path):
        raise FileNotFoundError(f"--onnx: file not found: {path}")
    try:
        detector = OnnxDetector(path)
    except ImportError as e:
        raise ExportUsageError(f"--onnx needs onnxruntime (pip install 'detcore[export]'): {e}") from None
    except Exception as e:  # noqa: BLE001  (onnxruntime raises its own kinds for a bad file)
        raise ExportUsageError(f"--onnx: cannot load {path}: {str(e).splitlines()[0][:200]}") from None
    return detector, detector.meta
