"""Conversions of a Keras model: SavedModel, TFLite (float32, float16, dynamic range, int8) and ONNX."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from nse_tf.utils.atomic import staged

TFLITE_FORMATS = ("float32", "float16", "dynamic_range", "int8")
FORMATS = ("saved_model", *TFLITE_FORMATS, "onnx")


def check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """The requested formats without duplicates, in the order given; unknown ones raise ValueError."""
    out: list[str] = []
    for fmt in formats:
        fmt = fmt.strip()
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; valid formats: {', '.join(FORMATS)}")
        if fmt not in out:
            out.append(fmt)
    if not out:
        raise ValueError(f"no export format given; valid formats: {', '.join(FORMATS)}")
    return tuple(out)


def artifact_name(name: str, fmt: str) -> str:
    """File (or directory) name of one format's artifact."""
    if fmt == "saved_model":
        return f"{name}_saved_model"
    if fmt == "onnx":
        return f"{name}.onnx"
    return f"{name}_{fmt}.tflite"


def write_saved_model(model: Any, path: str) -> None:
    """Keras 3's SavedModel export (endpoint ``serve``, inference mode), atomically."""
    with staged(path) as temp:
        model.export(temp, format="tf_saved_model", verbose=False)


def anchored_pixels(images: np.ndarray) -> np.ndarray:
    """Calibration images whose pixel range is exactly [0, 255], so a uint8 input gets scale 1 and zero
    point 0 (raw pixels feed it as they are). Only one pixel of each bound is set when missing."""
    images = np.asarray(images, dtype=np.float32)
    if images.size and (images.min() > 0.0 or images.max() < 255.0):
        images = images.copy()
        images[0].flat[0] = 0.0
        images[0].flat[-1] = 255.0
    return images


def pixel_calibration(images: np.ndarray | None) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The representative dataset of a network's int8 file: ``images`` one at a time, their range anchored to
    0-255 (``anchored_pixels``), so the uint8 input takes raw pixels."""
    if images is None or len(images) == 0:
        raise ValueError("int8 export needs representative (calibration) images")
    calibration = anchored_pixels(images)

    def representative() -> Iterator[list[np.ndarray]]:
        for image in calibration:
            yield [image[None]]

    return representative


def configure(converter: Any, fmt: str, representative: Callable[[], Iterator[list[Any]]] | None = None,
              pixels_in: bool = True, logits_out: bool = True) -> None:
    """The one setting of each TFLite form, for every file this project writes or times: the exporter's, QAT's
    and pruning's files, the latency table's pieces and the benchmarks'. Builtin ops only. ``int8`` is full
    integer quantization calibrated on ``representative``: int8 builtins only, int8 tensors between operations,
    uint8 pixels in (``pixels_in``; else int8, as a piece inside a network) and float logits out (``logits_out``;
    else int8)."""
    import tensorflow as tf

    if fmt not in TFLITE_FORMATS:
        raise ValueError(f"unknown TFLite format {fmt!r}; valid: {', '.join(TFLITE_FORMATS)}")
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if fmt == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif fmt == "int8":
        if representative is None:
            raise ValueError("int8 conversion needs a representative dataset (calibration inputs)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8 if pixels_in else tf.int8
        converter.inference_output_type = tf.float32 if logits_out else tf.int8


def configure_int8(converter: Any, representative_images: np.ndarray | None) -> None:
    """The int8 setting (``configure``) of a network's file, post-training and QAT alike: uint8 pixels in (scale
    1, zero point 0: ``pixel_calibration`` calibrates the full 0-255 range), float logits out."""
    configure(converter, "int8", pixel_calibration(representative_images))


def convert_tflite(saved_model_dir: str, fmt: str, representative_images: np.ndarray | None = None) -> bytes:
    """One TFLite flatbuffer of ``fmt`` from a SavedModel (``configure``'s setting)."""
    import tensorflow as tf

    if fmt not in TFLITE_FORMATS:
        raise ValueError(f"unknown TFLite format {fmt!r}; valid: {', '.join(TFLITE_FORMATS)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    configure(converter, fmt, pixel_calibration(representative_images) if fmt == "int8" else None)
    return converter.convert()


@contextlib.contextmanager
def _grouped_convs_without_xla() -> Iterator[None]:
    """Keras 3 (TF backend) runs grouped convs inside a nested ``tf.function(jit_compile=True)``,
    because TF's CPU kernels refuse them; tf2onnx cannot convert that call (an XLA
    StatefulPartitionedCall). For tracing the ONNX graph, which TF never runs, emit the plain grouped
    Conv2D, which tf2onnx maps to an ONNX Conv with ``group``."""
    try:
        from keras.src import backend as keras_backend

        nn = keras_backend.nn
        original = nn.conv
    except (ImportError, AttributeError):  # another Keras layout: export as it comes
        yield
        return
    import tensorflow as tf

    def conv(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid", data_format: Any = None,
             dilation_rate: Any = 1) -> Any:
        channels_last = keras_backend.standardize_data_format(data_format) == "channels_last"
        if len(inputs.shape) == 4 and channels_last and inputs.shape[-1] != kernel.shape[-2]:
            return tf.nn.convolution(inputs, kernel, strides, padding.upper(), data_format="NHWC",
                                     dilations=dilation_rate)
        return original(inputs, kernel, strides=strides, padding=padding, data_format=data_format,
                        dilation_rate=dilation_rate)

    nn.conv = conv
    try:
        yield
    finally:
        nn.conv = original


def onnx_bytes(model: Any, opset: int | None = None) -> bytes:
    """The model's inference function as ONNX (input ``image`` NHWC float32, output ``logits``)."""
    import tensorflow as tf
    import tf2onnx
    from tf2onnx import tf_loader

    try:  # tf2onnx 1.17 still uses numpy names removed in numpy 2; Keras ships the patch it uses itself
        from keras.src.export.tf2onnx_lib import patch_tf2onnx

        with warnings.catch_warnings():  # its own probe of np.object warns
            warnings.simplefilter("ignore", FutureWarning)
            patch_tf2onnx()
    except ImportError:
        pass
    shape = (None, *model.input_shape[1:])
    signature = [tf.TensorSpec(shape, tf.float32, name="image")]
    function = tf.function(lambda x: model(x, training=False), input_signature=signature, autograph=False)
    with _grouped_convs_without_xla():
        concrete = function.get_concrete_function()
    # Only the image: the captured constants listed after it are frozen into the graph, not inputs.
    inputs = [t.name for t in concrete.inputs[:len(signature)]]
    outputs = [t.name for t in concrete.outputs]
    frozen = tf_loader.from_function(concrete, inputs, outputs)
    proto, _ = tf2onnx.convert.from_graph_def(
        frozen, name=model.name, input_names=inputs, output_names=outputs, opset=opset,
        tensors_to_rename={inputs[0]: "image", outputs[0]: "logits"})
    return proto.SerializeToString()
