"""Running exported files on images: LiteRT, ONNX Runtime, SavedModel, and Keras itself."""

from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np

_BATCH = 32  # images per interpreter / Keras call during verification


def _batches(images: np.ndarray, size: int = _BATCH) -> Iterator[np.ndarray]:
    for start in range(0, len(images), size):
        yield np.asarray(images[start:start + size], dtype=np.float32)


def keras_logits(model: Any, images: np.ndarray) -> np.ndarray:
    """Keras float32 logits in inference mode, in small batches (images may be uint8)."""
    return np.concatenate([np.asarray(model(x, training=False)) for x in _batches(images)]).astype(np.float32)


def quantize_input(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if dtype.kind == "f":
        return x.astype(dtype)
    if scale == 0.0:
        raise ValueError(f"input tensor {detail['name']} is {dtype} without quantization parameters")
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32)
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


def litert_interpreter(path: str, num_threads: int | None = None, xnnpack: bool = True) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(model_path=os.fspath(path), num_threads=num_threads, experimental_op_resolver_type=resolver)


def tflite_input_quantization(path: str) -> tuple[float, int] | None:
    """(scale, zero_point) of the input tensor when it is quantized, else None."""
    detail = litert_interpreter(path).get_input_details()[0]
    if np.dtype(detail["dtype"]).kind == "f":
        return None
    scale, zero_point = detail["quantization"]
    return float(scale), int(zero_point)


def tflite_logits(path: str, images: np.ndarray) -> np.ndarray:
    """Float32 logits of a .tflite file: inputs quantized and outputs dequantized with the file's own
    parameters, the batch dimension resized per chunk, on every core (XNNPACK splits a layer's outputs
    between threads, so the logits do not depend on the thread count)."""
    interpreter = litert_interpreter(path, num_threads=os.cpu_count())
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    current, results = None, []
    for x in _batches(images):
        if x.shape != current:
            interpreter.resize_tensor_input(inp["index"], list(x.shape))
            interpreter.allocate_tensors()
            current = x.shape
        interpreter.set_tensor(inp["index"], quantize_input(x, inp))
        interpreter.invoke()
        results.append(dequantize_output(interpreter.get_tensor(out["index"]), out))
    return np.concatenate(results)


def onnx_logits(path: str, images: np.ndarray) -> np.ndarray:
    """Float32 logits of an ONNX file under onnxruntime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x})[0] for x in _batches(images)]).astype(np.float32)


def saved_model_logits(path: str, images: np.ndarray) -> np.ndarray:
    """Float32 logits of the SavedModel's ``serve`` endpoint, reloaded from disk."""
    import tensorflow as tf

    loaded = tf.saved_model.load(os.fspath(path))
    return np.concatenate([np.asarray(loaded.serve(tf.constant(x))) for x in _batches(images)]).astype(np.float32)
