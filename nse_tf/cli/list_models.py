"""Print the published NSE architectures with their MACs and parameters, built as Keras models.

    python tools/list_models.py [--input_size=224] [--num_classes=1000]
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

import nse_tf  # noqa: E402
from nse_tf.space.analytic import network_cost  # noqa: E402

FLAGS = flags.DEFINE_integer("input_size", 224, "Input resolution the networks are built at.")
NUM_CLASSES = flags.DEFINE_integer("num_classes", 1000, "Classifier width.")


def main(argv: list[str]) -> None:
    del argv
    print(f"{'network':<12} {'pool':<6} {'cells':>5} {'MACs (analytic)':>16} {'MACs (counted)':>15} {'params':>9}")
    for name in nse_tf.published_names():
        spec = nse_tf.resolve_spec(name, input_size=FLAGS.value, num_classes=NUM_CLASSES.value)
        model = nse_tf.build_model(spec)
        analytic = network_cost(spec)
        print(f"{name:<12} {spec.space.pool:<6} {len(spec.arch.cells):>5} {analytic.macs / 1e6:>15.1f}M "
              f"{nse_tf.count_macs(model) / 1e6:>14.1f}M {nse_tf.count_params(model) / 1e6:>8.2f}M")


def run() -> None:
    """``python tools/list_models.py``."""
    app.run(main)
