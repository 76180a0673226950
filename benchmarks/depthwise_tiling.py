"""Why large depthwise kernels are tiled for TFLite (``nse_tf.export.tiling``), measured on this CPU.

    python benchmarks/depthwise_tiling.py [--kernels=3,5,7,9,11] [--channels=96] [--models=...] [--rounds=3]
        [--runs=100] [--max_load=0.3]

One depthwise conv + BN + ReLU per kernel size, at stride 1 on 14x14 and stride 2 on 28x28 (``--channels``
channels, as the searched networks' expanded layers), converted plainly and tiled, each in float32 and int8
(calibrated on random inputs), all files timed back to back in this process (LiteRT, 1 thread, XNNPACK). Kernels
of 5 and less are not tiled: they show what int8 costs against float32 for the kernels XNNPACK runs fast. Needs
the machine to itself. Then each of ``--models`` (zoo entries), its whole network converted plainly and tiled
(``conversion.convert_network``, int8 calibrated on random pixels), timed back to back the same way. The last line of
stdout is JSON: per (kernel, stride, form) and per (model, form), the plain and tiled medians in ms.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402

KERNELS = flags.DEFINE_list("kernels", ["3", "5", "7", "9", "11"], "Depthwise kernel sizes.")
CHANNELS = flags.DEFINE_integer("channels", 96, "Channels of the depthwise conv.")
ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved timing rounds over all files.")
RUNS = flags.DEFINE_integer("runs", 100, "Invokes per file and round.")
MODELS = flags.DEFINE_list("models", ["mobilenetv2-style-fmnist", "nse-fmnist-6m", "nse-fmnist-7m",
                                      "nse-fmnist-latency-wide-s0", "random-fmnist-latency-s0"],
                            "Zoo entries whose whole networks are timed plain and tiled (empty: none).")
MAX_LOAD = flags.DEFINE_float("max_load", 0.3, "Refuse to time while other processes keep more cores busy.")
SHAPES = ((1, 14), (2, 28))  # (stride, input size)


def conv_bn_relu(kernel: int, stride: int, size: int, channels: int):
    import keras
    import numpy as np

    rng = np.random.default_rng(kernel)
    inputs = keras.Input((size, size, channels))
    conv = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False)
    bn = keras.layers.BatchNormalization()
    model = keras.Model(inputs, keras.layers.ReLU()(bn(conv(inputs))))
    conv.set_weights([rng.normal(scale=0.1, size=(kernel, kernel, channels, 1)).astype(np.float32)])
    bn.set_weights([rng.uniform(0.5, 2, channels), rng.normal(size=channels), rng.normal(size=channels),
                    rng.uniform(0.5, 2, channels)])
    return model


def checked_kernels() -> list[int]:
    """``--kernels`` as integers, after every flag of this script is checked (FlagError names the bad one)."""
    from nse_tf.zoo import registry as zoo

    try:
        kernels = [int(k) for k in KERNELS.value]
    except ValueError:
        kernels = []
    if not kernels or min(kernels) < 1:
        raise FlagError("kernels", f"need positive integers, got {','.join(KERNELS.value)}")
    for flag in (CHANNELS, ROUNDS, RUNS):
        if flag.value < 1:
            raise FlagError(flag.name, f"must be positive, got {flag.value}")
    for name in MODELS.value:
        try:
            if not zoo.get_entry(name).has_weights:
                raise zoo.ZooError(f"zoo entry {name} has no weights")
        except zoo.ZooError as err:
            raise FlagError("models", str(err)) from None
    return kernels


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"depthwise_tiling.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    try:
        kernels = checked_kernels()
    except FlagError as err:
        print(f"depthwise_tiling.py: error: {err}", file=sys.stderr)
        return 2
    from nse_tf.cost.conversion import convert_network, convert_piece_model
    from nse_tf.export.timing import interleaved_latency_ms, require_quiet_machine
    from nse_tf.export.tiling import tile_large_depthwise
    from nse_tf.zoo import registry as zoo

    require_quiet_machine(MAX_LOAD.value)
    files: dict[tuple[int, int, str, str], str] = {}
    with tempfile.TemporaryDirectory(prefix="nse-tiling-") as workdir:
        for kernel in kernels:
            for stride, size in SHAPES:
                plain = conv_bn_relu(kernel, stride, size, CHANNELS.value)
                tiled = tile_large_depthwise(plain)
                for fmt in ("float32", "int8"):
                    for form, model in (("plain", plain), ("tiled", tiled)):
                        if form == "tiled" and tiled is plain:
                            continue
                        path = os.path.join(workdir, f"k{kernel}_s{stride}_{form}_{fmt}.tflite")
                        with open(path, "wb") as f:
                            f.write(convert_piece_model(model, fmt, tile=form == "tiled"))
                        files[kernel, stride, fmt, form] = path
        for name in MODELS.value:
            model = zoo.load(name, weights="pretrained")
            for fmt in ("float32", "int8"):
                for form in ("plain", "tiled"):
                    path = os.path.join(workdir, f"{name}_{form}_{fmt}.tflite")
                    with open(path, "wb") as f:
                        f.write(convert_network(model, fmt, tile=form == "tiled"))
                    files[name, 0, fmt, form] = path
        times = interleaved_latency_ms(list(files.values()), ROUNDS.value, RUNS.value)
    out = {}
    print(f"{'kernel':>6} {'stride':>6} {'form':>7} {'plain ms':>9} {'tiled ms':>9}")
    for kernel in kernels:
        for stride, _ in SHAPES:
            for fmt in ("float32", "int8"):
                plain = times[files[kernel, stride, fmt, "plain"]]["median_ms"]
                tiled_path = files.get((kernel, stride, fmt, "tiled"))
                tiled = None if tiled_path is None else times[tiled_path]["median_ms"]
                out[f"k{kernel}_s{stride}_{fmt}"] = {"plain_ms": round(plain, 4),
                                                     "tiled_ms": None if tiled is None else round(tiled, 4)}
                print(f"{kernel:>6} {stride:>6} {fmt:>7} {plain:>9.4f} {'-' if tiled is None else f'{tiled:.4f}':>9}")
    print(f"{'model':>28} {'form':>7} {'plain ms':>9} {'tiled ms':>9}")
    for name in MODELS.value:
        for fmt in ("float32", "int8"):
            plain, tiled = (times[files[name, 0, fmt, form]]["median_ms"] for form in ("plain", "tiled"))
            out[f"{name}_{fmt}"] = {"plain_ms": round(plain, 4), "tiled_ms": round(tiled, 4)}
            print(f"{name:>28} {fmt:>7} {plain:>9.4f} {tiled:>9.4f}")
    print(json.dumps({"channels": CHANNELS.value, "rounds": ROUNDS.value, "runs": RUNS.value, "medians": out}))
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("depthwise_tiling.py"))
