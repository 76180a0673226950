"""Export a child network to SavedModel / TFLite (float32, float16, dynamic_range, int8) / ONNX and check
each file against Keras on real images:

    python tools/export.py --arch=NSENet-27 --weights=nsenet27.weights.h5 --out_dir=exports/nsenet27
    python tools/export.py --arch=runs/fashion_mnist_quick/chosen/best.json --formats=float32,int8 --latency \\
        --out_dir=exports/best

Networks over 28x28x1 inputs with 10 classes are calibrated on Fashion-MNIST training images and checked on
test images; other input shapes fall back to uniform random 0-255 images (accuracies then n/a). Prints a
table and writes ``export_report.json`` in --out_dir. Bad flags end with one line naming the flag, exit 2.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.export.convert import FORMATS, TFLITE_FORMATS  # noqa: E402  (numpy only: TF loads on first use)
from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402
from nse_tf.utils.output_paths import output_error_line  # noqa: E402
from nse_tf.utils.run_lock import run_lock  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("arch", None, "Anything nse_tf.resolve_spec takes: a published name (NSENet-27, NSENet, "
                    "NSENet-GPU), a zoo name, a network JSON path or a finished search run directory.")
flags.DEFINE_string("weights", None, "Keras .weights.h5 file (default: random init, with a warning).")
flags.DEFINE_list("formats", list(FORMATS), f"Comma-separated export formats: {', '.join(FORMATS)}.")
flags.DEFINE_string("out_dir", None, "Directory for the exported files and export_report.json.")
flags.DEFINE_integer("num_calibration", 300, "Training images that calibrate the int8 file.")
flags.DEFINE_integer("num_verify", 1000, "Test images every file is checked on against Keras (0: no check).")
flags.DEFINE_boolean("latency", False, "Measure single-image LiteRT latency of each .tflite on this CPU.")
flags.DEFINE_integer("latency_runs", 100, "Timed invokes per .tflite for --latency.")
flags.DEFINE_integer("num_threads", 1, "LiteRT threads for --latency.")
flags.DEFINE_boolean("xnnpack", True, "Time with LiteRT's default XNNPACK delegate (--noxnnpack: builtin kernels).")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST IDX directory (default: the installed dataset).")
flags.DEFINE_integer("seed", 0, "Seed of the calibration subset (and of random fallback images).")
flags.DEFINE_bool("allow_large", False, "Build a network beyond the size limits of nse_tf.space.limits (refused "
                  "without this flag before anything is allocated).")

REPORT = "export_report.json"


@dataclasses.dataclass
class LoadedModel:
    """A model ready to export, with what it came from (for the report)."""

    model: Any
    spec: Any  # NetworkSpec
    name: str  # file-name stem of the artifacts
    source: str
    weights: str | None
    flip_average: bool = False  # a flip-averaged zoo entry: the two-pass model its files hold


@dataclasses.dataclass
class ExportData:
    """Calibration and verification images (raw 0-255 pixels); labels None when they mean nothing."""

    calibration: Any
    verify_images: Any
    verify_labels: Any
    description: str


def resolve_arch(arch: str | None, check_size: bool = True) -> Any:
    """The NetworkSpec of --arch (no TensorFlow needed), or a FlagError (beyond the size limits: unless
    ``check_size`` is False, saying --allow_large overrides)."""
    import nse_tf
    from nse_tf.space.limits import error_line

    if not arch:
        raise FlagError("arch", "is required (a published or zoo name, a network JSON or a search run directory)")
    try:
        return nse_tf.resolve_spec(arch, check_size=check_size)
    except (ValueError, OSError) as err:
        raise FlagError("arch", error_line(err)) from None


def check_weights(weights: str | None) -> None:
    if weights is None:
        return
    if not weights.endswith(".weights.h5"):
        raise FlagError("weights", f"expected a Keras '.weights.h5' file, got {weights!r}")
    if not os.path.isfile(weights):
        raise FlagError("weights", f"no such file {weights!r}")


def default_weights(arch: str) -> str | None:
    """The sha256-checked weights of a trained zoo entry, or those of a tools/train.py run directory."""
    from nse_tf.zoo import registry as zoo

    if zoo.is_entry(arch):
        entry = zoo.get_entry(arch)
        try:
            return entry.weights_file() if entry.has_weights else None
        except zoo.ZooError as err:
            raise FlagError("arch", str(err)) from None
    run_weights = os.path.join(arch, "model.weights.h5")
    return run_weights if os.path.isdir(arch) and os.path.isfile(run_weights) else None


def load_for_export(arch: str | None, weights: str | None, check_size: bool = True) -> LoadedModel:
    """Builds --arch and loads --weights into it; a zoo entry or a training run brings its own weights."""
    spec = resolve_arch(arch, check_size)
    if weights is None:
        weights = default_weights(arch)
    check_weights(weights)
    import nse_tf

    model = nse_tf.build_model(spec)
    if weights is not None:
        try:
            model.load_weights(weights)
        except (ValueError, OSError, KeyError) as err:
            raise FlagError("weights", f"cannot load {weights!r} into {spec.name}: {err}") from None
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.name).strip("._") or "model"
    from nse_tf.zoo import registry as zoo

    flipped = zoo.is_entry(arch) and zoo.get_entry(arch).flip_average
    if flipped:  # the entry is the two-pass model: its files and top-1 are that model's
        model, name = zoo.get_entry(arch).configure(model), f"{name}_flip_average"
    return LoadedModel(model=model, spec=spec, name=name, source=str(arch), weights=weights, flip_average=flipped)


def is_fashion_mnist(spec: Any) -> bool:
    space = spec.space
    return space.input_size == 28 and space.input_channels == 1 and space.num_classes == 10


def export_data(spec: Any, num_calibration: int, num_verify: int, data_dir: str | None, seed: int) -> ExportData:
    """Fashion-MNIST for 28x28x1 networks (calibration: a seeded subset of the training split;
    verification: the first test images); uniform random pixels for any other input shape."""
    import numpy as np

    if is_fashion_mnist(spec):
        from nse_tf.data import DataFileError, DataNotFoundError, load_fashion_mnist

        try:
            data = load_fashion_mnist(data_dir)
        except (DataNotFoundError, DataFileError) as err:
            raise FlagError("data_dir", str(err)) from None
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(data.x_train), size=min(num_calibration, len(data.x_train)), replace=False))
        n = min(num_verify, len(data.x_test))
        return ExportData(data.x_train[pick], data.x_test[:n], data.y_test[:n],
                          f"Fashion-MNIST: {len(pick)} calibration images (training split, seed {seed}), "
                          f"{n} verification images (test split)")
    space = spec.space
    shape = (space.input_size, space.input_size, space.input_channels)
    rng = np.random.default_rng(seed)
    return ExportData(rng.integers(0, 256, (num_calibration, *shape), dtype=np.uint8),
                      rng.integers(0, 256, (num_verify, *shape), dtype=np.uint8), None,
                      f"no dataset for {'x'.join(map(str, shape))} inputs: uniform random 0-255 images "
                      f"({num_calibration} calibration, {num_verify} verification); accuracies are n/a, "
                      "top-1 agreement with Keras still holds")


def check_flags() -> tuple[str, ...]:
    """Flag checks that need no TensorFlow, so a typo fails in a second; returns the formats."""
    from nse_tf.export.convert import check_formats
    from nse_tf.utils.output_paths import OutputError, check_dir

    if not F.out_dir:
        raise FlagError("out_dir", "is required")
    try:
        formats = check_formats(F.formats)
    except ValueError as err:
        raise FlagError("formats", str(err)) from None
    if F.num_calibration < (1 if "int8" in formats else 0):
        raise FlagError("num_calibration", f"must be >= 1 for int8, got {F.num_calibration}")
    if F.num_verify < 0:
        raise FlagError("num_verify", f"must be >= 0, got {F.num_verify}")
    if F.latency_runs < 1:
        raise FlagError("latency_runs", f"must be >= 1, got {F.latency_runs}")
    if F.num_threads < 1:
        raise FlagError("num_threads", f"must be >= 1, got {F.num_threads}")
    resolve_arch(F.arch, check_size=not F.allow_large)
    check_weights(F.weights)
    try:
        check_dir(F.out_dir, create=False)  # an existing file, a read-only mount: refused now, not after converting
    except OutputError as err:
        raise FlagError("out_dir", str(err)) from None
    return formats


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def print_table(results: list[Any]) -> None:
    print(f"{'format':<14} {'size':>10} {'export s':>9} {'max |diff|':>11} {'top-1':>8} {'keras':>8} "
          f"{'agree':>8} {'latency ms (median / p90)':>26}")
    for r in results:
        latency = "" if r.latency is None else f"{r.latency['median_ms']:.3f} / {r.latency['p90_ms']:.3f}"
        print(f"{r.format:<14} {r.size_bytes / 1024:>8.1f}KB {r.seconds:>9.1f} {_fmt(r.max_abs_diff, '.2e'):>11} "
              f"{_pct(r.top1):>8} {_pct(r.keras_top1):>8} {_pct(r.top1_agreement):>8} {latency:>26}")


def export_all(formats: tuple[str, ...]) -> dict[str, Any]:
    """Loads, exports, verifies, optionally times; writes and returns the report."""
    import keras

    from nse_tf.export.exporter import export_model
    from nse_tf.export.timing import tflite_latency_ms
    from nse_tf.utils.atomic import atomic_write_json

    loaded = load_for_export(F.arch, F.weights, check_size=not F.allow_large)
    if loaded.weights is None:
        print(f"warning: no --weights: exporting {loaded.spec.name} with random initial weights "
              "(accuracies are meaningless)", file=sys.stderr)
    data = export_data(loaded.spec, F.num_calibration, F.num_verify, F.data_dir, F.seed)
    print(f"{loaded.spec.name} ({loaded.source}) -> {F.out_dir}")
    print(f"data: {data.description}")
    results = export_model(loaded.model, F.out_dir, formats,
                           representative_images=data.calibration if "int8" in formats else None,
                           verify_images=data.verify_images if len(data.verify_images) else None,
                           verify_labels=data.verify_labels if len(data.verify_images) else None,
                           name=loaded.name)
    if F.latency:
        for result in results:
            if result.format in TFLITE_FORMATS:
                result.latency = tflite_latency_ms(result.path, runs=F.latency_runs, num_threads=F.num_threads,
                                                   xnnpack=F.xnnpack)
    print_table(results)
    if F.latency:
        print(f"latency: LiteRT on this CPU, one image, {F.num_threads} thread(s), "
              f"{'XNNPACK delegate' if F.xnnpack else 'builtin kernels (no XNNPACK)'}, {F.latency_runs} runs")
    report = {
        "arch": loaded.source, "name": loaded.spec.name, "weights": loaded.weights,
        "flip_average": loaded.flip_average,
        "random_init": loaded.weights is None, "data": data.description,
        "versions": {"keras": keras.__version__, "tensorflow": _version("tensorflow"),
                     "tf2onnx": _version("tf2onnx"), "onnxruntime": _version("onnxruntime"),
                     "ai_edge_litert": _version("ai-edge-litert")},
        "results": [r.to_dict() for r in results],
    }
    atomic_write_json(os.path.join(F.out_dir, REPORT), report)
    print(f"report: {os.path.join(F.out_dir, REPORT)}")
    return report


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"export.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)  # SavedModel / tf2onnx INFO chatter
    for noisy in ("tensorflow", "tf2onnx"):  # TF1-API deprecation notices from inside tf2onnx
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        formats = check_flags()
        with run_lock(F.out_dir, what="--out_dir"):  # one process per output directory
            export_all(formats)
    except FlagError as err:
        print(f"export.py: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # --out_dir in use by another process, or its disk full: one line (others are bugs)
        if (line := output_error_line(err, "out_dir", F.out_dir)) is None:
            raise
        print(f"export.py: error: {line}", file=sys.stderr)
        return 2
    return 0


def run() -> None:
    """The console script ``nse-export`` and ``python tools/export.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("export.py"))
