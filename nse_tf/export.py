"""Export a Keras child network for deployment: SavedModel, TFLite (float32, float16, dynamic-range,
full-integer int8) and ONNX, each written atomically and checked against Keras on real images.

Why one SavedModel feeds every TFLite file: Keras 3's ``model.export(format="litert")`` writes a fresh
SavedModel per call and then runs ``TFLiteConverter.from_saved_model``; writing it once and converting it
four times is the same conversion at a fraction of the cost. TFLite files hold builtin ops only (no Flex
ops), so the plain LiteRT runtime of a phone runs them.

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

import contextlib
import dataclasses
import os
import shutil
import statistics
import tempfile
import time
import warnings
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

TFLITE_FORMATS = ("float32", "float16", "dynamic_range", "int8")
FORMATS = ("saved_model", *TFLITE_FORMATS, "onnx")
_BATCH = 32  # images per interpreter / Keras call during verification


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


# ------------------------------------------------------------------------------------------ writing


def _replace_dir(staged: str, final: str) -> None:
    """Moves a finished directory into place; an older one is renamed away first (a directory cannot be
    replaced by os.replace), so ``final`` is at every moment either the old or the new, complete tree."""
    old = None
    if os.path.lexists(final):
        old = tempfile.mkdtemp(dir=os.path.dirname(final), prefix=".old-")
        os.rmdir(old)
        os.rename(final, old)
    os.rename(staged, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged(path: str) -> Iterator[str]:
    """A temp path in a hidden staging directory beside ``path``; on a clean exit whatever was written
    there (a file or a directory) replaces ``path`` in one rename, otherwise it is deleted. Callers check
    the artifact inside the block, so only artifacts that load and run ever appear under their name."""
    path = os.path.abspath(os.fspath(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    staging = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        temp = os.path.join(staging, os.path.basename(path))
        yield temp
        if os.path.isdir(temp):
            _replace_dir(temp, path)
        else:
            os.replace(temp, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_synced(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_saved_model(model: Any, path: str) -> None:
    """Keras 3's SavedModel export (endpoint ``serve``, inference mode), atomically."""
    with staged(path) as temp:
        model.export(temp, format="tf_saved_model", verbose=False)


def _anchored(images: np.ndarray) -> np.ndarray:
    """Calibration images whose pixel range is exactly [0, 255], so a uint8 input gets scale 1 and zero
    point 0 (raw pixels feed it as they are). Only one pixel of each bound is set when missing."""
    images = np.asarray(images, dtype=np.float32)
    if images.size and (images.min() > 0.0 or images.max() < 255.0):
        images = images.copy()
        images[0].flat[0] = 0.0
        images[0].flat[-1] = 255.0
    return images


def convert_tflite(saved_model_dir: str, fmt: str, representative_images: np.ndarray | None = None) -> bytes:
    """One TFLite flatbuffer of ``fmt`` from a SavedModel, builtin ops only."""
    import tensorflow as tf

    if fmt not in TFLITE_FORMATS:
        raise ValueError(f"unknown TFLite format {fmt!r}; valid: {', '.join(TFLITE_FORMATS)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if fmt == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif fmt == "int8":
        if representative_images is None or len(representative_images) == 0:
            raise ValueError("int8 export needs representative (calibration) images")
        calibration = _anchored(representative_images)

        def representative() -> Iterator[list[np.ndarray]]:
            for image in calibration:
                yield [image[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
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


# ---------------------------------------------------------------------------------------- running


def _batches(images: np.ndarray, size: int = _BATCH) -> Iterator[np.ndarray]:
    for start in range(0, len(images), size):
        yield np.asarray(images[start:start + size], dtype=np.float32)


def keras_logits(model: Any, images: np.ndarray) -> np.ndarray:
    """Keras float32 logits in inference mode, in small batches (images may be uint8)."""
    return np.concatenate([np.asarray(model(x, training=False)) for x in _batches(images)]).astype(np.float32)


def _quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if dtype.kind == "f":
        return x.astype(dtype)
    if scale == 0.0:
        raise ValueError(f"input tensor {detail['name']} is {dtype} without quantization parameters")
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32)
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


def _interpreter(path: str, num_threads: int | None = None, xnnpack: bool = True) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(model_path=os.fspath(path), num_threads=num_threads, experimental_op_resolver_type=resolver)


def tflite_input_quantization(path: str) -> tuple[float, int] | None:
    """(scale, zero_point) of the input tensor when it is quantized, else None."""
    detail = _interpreter(path).get_input_details()[0]
    if np.dtype(detail["dtype"]).kind == "f":
        return None
    scale, zero_point = detail["quantization"]
    return float(scale), int(zero_point)


def tflite_logits(path: str, images: np.ndarray) -> np.ndarray:
    """Float32 logits of a .tflite file: inputs quantized and outputs dequantized with the file's own
    parameters, the batch dimension resized per chunk, on every core (XNNPACK splits a layer's outputs
    between threads, so the logits do not depend on the thread count)."""
    interpreter = _interpreter(path, num_threads=os.cpu_count())
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    current, results = None, []
    for x in _batches(images):
        if x.shape != current:
            interpreter.resize_tensor_input(inp["index"], list(x.shape))
            interpreter.allocate_tensors()
            current = x.shape
        interpreter.set_tensor(inp["index"], _quantize(x, inp))
        interpreter.invoke()
        results.append(_dequantize(interpreter.get_tensor(out["index"]), out))
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


def tflite_latency_ms(path: str, runs: int = 100, warmup: int = 10, num_threads: int = 1,
                      xnnpack: bool = True) -> dict[str, Any]:
    """Single-image invoke time of a .tflite on this CPU, in milliseconds. ``xnnpack`` keeps LiteRT's
    default delegate (as phones run it); False measures the builtin kernels alone, which on x86 can be
    faster for int8 files."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    interpreter = _interpreter(path, num_threads=num_threads, xnnpack=xnnpack)
    inp = interpreter.get_input_details()[0]
    shape = [1, *[int(d) for d in inp["shape"][1:]]]
    interpreter.resize_tensor_input(inp["index"], shape)
    interpreter.allocate_tensors()
    pixels = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    interpreter.set_tensor(inp["index"], _quantize(pixels, inp))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times),
            "p90_ms": times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))], "min_ms": times[0],
            "runs": runs, "num_threads": num_threads, "xnnpack": xnnpack}


class BusyMachineError(RuntimeError):
    """Other work is running: LiteRT times taken now would not compare with anything."""


def other_cpu_load(seconds: float = 1.0) -> float:
    """Cores kept busy by other processes during the next ``seconds`` (Linux ``/proc/stat`` minus this
    process's own CPU time); elsewhere the 1-minute load average, which lags a minute behind."""

    def busy_ticks() -> int:
        with open("/proc/stat", encoding="ascii") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)  # minus idle and iowait

    try:
        start, own, wall = busy_ticks(), time.process_time(), time.perf_counter()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0]
    time.sleep(seconds)
    busy = (busy_ticks() - start) / os.sysconf("SC_CLK_TCK") - (time.process_time() - own)
    return max(0.0, busy) / (time.perf_counter() - wall)


def require_quiet_machine(max_load: float) -> None:
    """Refuse to time while other work keeps the CPU busy (the zoo's figures were once 3x too high because
    training runs shared the cores)."""
    load = other_cpu_load()
    if load > max_load:
        raise BusyMachineError(f"other processes keep {load:.2f} cores busy (over {max_load:g}): times taken "
                               "beside them mislead; stop them and rerun")


def interleaved_latency_ms(paths: Sequence[str], rounds: int, runs: int) -> dict[str, dict[str, Any]]:
    """Each file's median invoke time (1 thread, XNNPACK), timed back to back in this process: ``rounds``
    interleaved rounds of ``runs`` invokes over all files, so a change of load hits every file alike; the
    median of the rounds' medians, with the rounds' own."""
    if rounds < 1 or runs < 1:
        raise ValueError(f"need rounds >= 1 and runs >= 1, got {rounds} and {runs}")
    per_round: dict[str, list[float]] = {p: [] for p in paths}
    for _ in range(rounds):
        for path in paths:
            per_round[path].append(tflite_latency_ms(path, runs=runs)["median_ms"])
    return {p: {"median_ms": statistics.median(v), "round_medians_ms": v, "rounds": rounds, "runs": runs,
                "num_threads": 1, "xnnpack": True} for p, v in per_round.items()}


# ------------------------------------------------------------------------------------------ export


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
                 verify_labels: np.ndarray | None = None, name: str = "model") -> list[ExportResult]:
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
    scratch = None  # a SavedModel only as the TFLite source, when saved_model itself was not asked for
    try:
        saved_model_dir = os.path.join(out_dir, artifact_name(name, "saved_model"))
        if "saved_model" not in formats and set(formats) & set(TFLITE_FORMATS):
            scratch = tempfile.mkdtemp(prefix="nse-export-")
            saved_model_dir = os.path.join(scratch, "saved_model")
            model.export(saved_model_dir, format="tf_saved_model", verbose=False)
        for fmt in formats:
            path = os.path.join(out_dir, artifact_name(name, fmt))
            start = time.perf_counter()
            with staged(path) as temp:
                if fmt == "saved_model":
                    model.export(temp, format="tf_saved_model", verbose=False)
                elif fmt in TFLITE_FORMATS:
                    _write_synced(temp, convert_tflite(saved_model_dir, fmt, representative_images))
                else:
                    _write_synced(temp, onnx_bytes(model))
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
