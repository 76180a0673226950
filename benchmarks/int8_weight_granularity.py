"""Does per-tensor int8 weight quantization put XNNPACK's int8 depthwise convs on a faster path? (issue 18)

    python benchmarks/int8_weight_granularity.py [--kernels=3,5,7,9,11] [--channels=96] [--models=...]
        [--rounds=3] [--runs=100] [--max_load=0.3]

(``benchmarks/depthwise_tiling.py``'s flags, defaults and pieces.)

The converter quantizes conv weights per output channel by default; with its per-channel switch off
(``_experimental_disable_per_channel``) they share one scale per tensor, and XNNPACK takes other int8 kernels.
For one depthwise conv + BN + ReLU per kernel size (stride 1 on 14x14, stride 2 on 28x28; int8 in and out, as the
latency table's pieces) and for each of ``--models`` (zoo entries, their own weights, int8 calibrated on 500
training images, uint8 pixels in, as the zoo's files), this converts float32, int8 per-channel and int8
per-tensor files (large kernels tiled, as the exporter does) and times them all back to back in this process
(LiteRT, 1 thread, XNNPACK, interleaved rounds). Needs the machine to itself. The last line of stdout is JSON:
per piece or model, the three medians in ms. Accuracy is not measured here.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402

import depthwise_tiling as tiling_bench  # noqa: E402  (its flags and pieces: this script runs from benchmarks/)
from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402

SHAPES = tiling_bench.SHAPES
FORMS = ("float32", "int8_per_channel", "int8_per_tensor")


def tflite_bytes(model, form: str, images, pixels_in: bool) -> bytes:
    """``model`` (large kernels tiled) in one of ``FORMS``, int8 calibrated on ``images``: a zoo network as the
    zoo's int8 files are (uint8 pixels in, float logits out), a piece as the latency table's (int8 in and out)."""
    import tensorflow as tf

    from nse_tf.export.convert import configure, pixel_calibration
    from nse_tf.export.tiling import tile_large_depthwise

    def activations():
        for x in images:
            yield [x[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(tile_large_depthwise(model))
    if form == "float32":
        configure(converter, "float32")
    else:  # the project's one int8 setting (export.convert.configure), the weights' granularity aside
        configure(converter, "int8", pixel_calibration(images) if pixels_in else activations,
                  pixels_in=pixels_in, logits_out=pixels_in)
        converter._experimental_disable_per_channel = form == "int8_per_tensor"
    return converter.convert()


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"int8_weight_granularity.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    try:
        kernels = tiling_bench.checked_kernels()
    except FlagError as err:
        print(f"int8_weight_granularity.py: error: {err}", file=sys.stderr)
        return 2
    import numpy as np

    from nse_tf.data.arrays import load_arrays
    from nse_tf.export.timing import interleaved_latency_ms, require_quiet_machine
    from nse_tf.zoo import registry as zoo

    require_quiet_machine(tiling_bench.MAX_LOAD.value)
    cases = {}
    rng = np.random.default_rng(0)
    for kernel in kernels:
        for stride, size in SHAPES:
            cases[f"dw_k{kernel}_s{stride}_{size}x{size}"] = (
                tiling_bench.conv_bn_relu(kernel, stride, size, tiling_bench.CHANNELS.value),
                rng.normal(size=(32, size, size, tiling_bench.CHANNELS.value)).astype(np.float32), False)
    for name in tiling_bench.MODELS.value:
        data = load_arrays(zoo.get_entry(name).config.dataset)
        pixels = data.x_train[np.random.default_rng(0).permutation(len(data.x_train))[:500]]
        cases[name] = (zoo.load(name, weights="pretrained"), pixels, True)
    with tempfile.TemporaryDirectory(prefix="nse-int8-granularity-") as workdir:
        files = {}
        for case, (model, images, pixels_in) in cases.items():
            for form in FORMS:
                files[case, form] = os.path.join(workdir, f"{case}.{form}.tflite")
                with open(files[case, form], "wb") as f:
                    f.write(tflite_bytes(model, form, images, pixels_in))
        times = interleaved_latency_ms(list(files.values()), tiling_bench.ROUNDS.value, tiling_bench.RUNS.value)
    out = {}
    print(f"{'piece or model':>42} " + " ".join(f"{form:>17}" for form in FORMS))
    for case in cases:
        medians = [times[files[case, form]]["median_ms"] for form in FORMS]
        out[case] = {form: round(ms, 4) for form, ms in zip(FORMS, medians)}
        print(f"{case:>42} " + " ".join(f"{ms:>9.4f} ({ms / medians[0]:.2f}x)" for ms in medians))
    print(json.dumps({"channels": tiling_bench.CHANNELS.value, "rounds": tiling_bench.ROUNDS.value,
                      "runs": tiling_bench.RUNS.value, "medians_ms": out}))
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("int8_weight_granularity.py"))
