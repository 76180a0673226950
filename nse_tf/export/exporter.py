"""Export a Keras child network for deployment: SavedModel, TFLite (float32, float16, dynamic-range,
full-integer int8) and ONNX, each written atomically and checked against Keras on real images.

Why one SavedModel feeds every TFLite file: Keras 3's ``model.export(format="litert")`` writes a fresh
SavedModel per call and then runs ``TFLiteConverter.from_saved_model``; writing it once and converting it
four times is the same conversion at a fraction of the cost. TFLite files hold builtin ops only (no Flex
ops), so the plain LiteRT runtime of a phone runs them, and depthwise kernels over 5x5 are tiled into pieces
of at most 25 taps (``nse_tf.export.tiling``: XNNPACK runs larger kernels many times slower); the SavedModel and ONNX
files keep the trained layers as they are.

Why ONNX does not go through ``model.export(format="onnx")``: with TF 2.21 a tf.function lists the
captured constants of Keras's Normalization layer (mean, variance) among its inputs, and tf2onnx's
``from_function`` turns them into extra graph inputs the caller would have to feed. We freeze the same
concrete function with tf2onnx's loader, naming only the image as input. Grouped convs (``_g`` ops) are
traced as plain grouped Conv2D for ONNX, not as Keras's XLA-compiled call, which tf2onnx cannot convert.

Every artifact is written into a hidden staging directory beside its final name, checked there (loaded
and run on the verification images) and only then renamed into place, so a crash or a file that does not
load never replaces a good one.

Models take raw 0-255 pixels (preprocessing is their first layer), so the int8 file takes uint8 pixels
as they come from a camera or a PNG: the calibration range of the input is pinned to [0, 255], which
makes its quantization exactly scale 1, zero point 0.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from typing import Any, Sequence

import numpy as np

from nse_tf.export.convert import FORMATS, TFLITE_FORMATS, artifact_name, check_formats, convert_tflite, onnx_bytes
from nse_tf.export.runtimes import (
    keras_logits,
    onnx_logits,
    saved_model_logits,
    tflite_input_quantization,
    tflite_logits,
)
from nse_tf.export.tiling import tile_large_depthwise
from nse_tf.utils.atomic import staged, write_synced


@dataclasses.dataclass
class ExportResult:
    """One written artifact and how it compares with the Keras model on the verification images.

    ``max_abs_diff`` is the largest absolute logit difference from Keras (float32); ``top1`` and
    ``keras_top1`` are accuracies on the labelled verification images (None without labels);
    ``top1_agreement`` is the fraction of images whose top-1 class equals Keras's; ``seconds`` is the
    export time (conversion and writing, not verification). ``input_quantization`` is the
    (scale, zero_point) of a quantized input tensor.
    """

    format: str
    path: str
    size_bytes: int
    seconds: float
    max_abs_diff: float | None = None
    top1: float | None = None
    keras_top1: float | None = None
    top1_agreement: float | None = None
    num_verified: int = 0
    input_quantization: tuple[float, int] | None = None
    latency: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.input_quantization is not None:
            out["input_quantization"] = {"scale": self.input_quantization[0],
                                         "zero_point": self.input_quantization[1]}
        return out


def _size(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)
    return os.path.getsize(path)


def _compare(result: ExportResult, logits: np.ndarray, reference: np.ndarray, labels: np.ndarray | None) -> None:
    result.max_abs_diff = float(np.abs(logits - reference).max()) if len(reference) else None
    predicted, expected = logits.argmax(-1), reference.argmax(-1)
    result.top1_agreement = float(np.mean(predicted == expected)) if len(reference) else None
    result.num_verified = len(reference)
    if labels is not None and len(labels):
        result.top1 = float(np.mean(predicted == labels))
        result.keras_top1 = float(np.mean(expected == labels))


def export_model(model: Any, out_dir: str | os.PathLike, formats: Sequence[str] = FORMATS,
                 representative_images: np.ndarray | None = None, verify_images: np.ndarray | None = None,
                 verify_labels: np.ndarray | None = None, *, name: str = "model") -> list[ExportResult]:
    """Writes each format's artifact to ``out_dir`` (atomically) and, given ``verify_images`` (raw
    0-255 pixels, NHWC), compares each with the Keras model's logits; labels add top-1 accuracies.

    ``representative_images`` (a few hundred training images) calibrate the int8 file. Results come in
    the order of FORMATS.
    """
    requested = check_formats(formats)
    formats = tuple(f for f in FORMATS if f in requested)  # saved_model first: the TFLite files reuse it
    if "int8" in formats and (representative_images is None or len(representative_images) == 0):
        raise ValueError("int8 export needs representative_images (a few hundred training images)")
    if verify_labels is not None and (verify_images is None or len(verify_labels) != len(verify_images)):
        raise ValueError("verify_labels must come with verify_images, one label per image")
    out_dir = os.path.abspath(os.fspath(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    labels = None if verify_labels is None else np.asarray(verify_labels).reshape(-1)
    reference = None if verify_images is None else keras_logits(model, verify_images)

    results: list[ExportResult] = []
    scratch = None  # a SavedModel only as the TFLite source (saved_model not asked for, or kernels tiled)
    try:
        saved_model_dir = os.path.join(out_dir, artifact_name(name, "saved_model"))
        # TFLite's source: the requested SavedModel when it is already TFLite's form, else a scratch one of the
        # model with its large depthwise kernels tiled (export.tiling)
        wants_tflite = bool(set(formats) & set(TFLITE_FORMATS))
        deployable = tile_large_depthwise(model) if wants_tflite else model
        if wants_tflite and ("saved_model" not in formats or deployable is not model):
            scratch = tempfile.mkdtemp(prefix="nse-export-")
            saved_model_dir = os.path.join(scratch, "saved_model")
            deployable.export(saved_model_dir, format="tf_saved_model", verbose=False)
        for fmt in formats:
            path = os.path.join(out_dir, artifact_name(name, fmt))
            start = time.perf_counter()
            with staged(path) as temp:
                if fmt == "saved_model":
                    model.export(temp, format="tf_saved_model", verbose=False)
                elif fmt in TFLITE_FORMATS:
                    write_synced(temp, convert_tflite(saved_model_dir, fmt, representative_images))
                else:
                    write_synced(temp, onnx_bytes(model))
                result = ExportResult(fmt, path, _size(temp), time.perf_counter() - start)
                if fmt in TFLITE_FORMATS:
                    result.input_quantization = tflite_input_quantization(temp)
                if reference is not None:  # before the rename: a file that fails to load never appears
                    run = {"saved_model": saved_model_logits, "onnx": onnx_logits}.get(fmt, tflite_logits)
                    _compare(result, run(temp, verify_images), reference, labels)
            results.append(result)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return results
