"""Print the published NSE architectures with their MACs and parameters, built as Keras models.

    python tools/list_models.py [--input_size=224] [--num_classes=1000] [--allow_large]

Bad flags end with one line naming the flag and exit code 2, as in the other tools.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

import nse_tf  # noqa: E402
from nse_tf.space.analytic import network_cost  # noqa: E402
from nse_tf.space.architecture import NetworkSpec  # noqa: E402
from nse_tf.space.limits import error_line  # noqa: E402
from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402

FLAGS = flags.DEFINE_integer("input_size", 224, "Input resolution the networks are built at.")
NUM_CLASSES = flags.DEFINE_integer("num_classes", 1000, "Classifier width.")
ALLOW_LARGE = flags.DEFINE_bool("allow_large", False, "Build networks beyond the size limits of nse_tf.space.limits "
                                "(refused without this flag before anything is allocated).")


def resolved(name: str) -> NetworkSpec:
    """``name`` at --num_classes, then at --input_size, each checked (its type, range and the size limits) before
    anything is built, so that a refusal names the flag that caused it (--allow_large: the size limits are not
    checked)."""
    for flag, overrides in (("num_classes", {"num_classes": NUM_CLASSES.value}),
                            ("input_size", {"num_classes": NUM_CLASSES.value, "input_size": FLAGS.value})):
        try:
            spec = nse_tf.resolve_spec(name, check_size=not ALLOW_LARGE.value, **overrides)
            if not ALLOW_LARGE.value:
                spec.check_size()
        except ValueError as err:
            raise FlagError(flag, error_line(err)) from None
    return spec


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"list_models.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    try:
        specs = {name: resolved(name) for name in nse_tf.published_names()}
    except FlagError as err:
        print(f"list_models.py: error: {err}", file=sys.stderr)
        return 2
    print(f"{'network':<12} {'pool':<6} {'cells':>5} {'MACs (analytic)':>16} {'MACs (counted)':>15} {'params':>9}")
    for name, spec in specs.items():
        model = nse_tf.build_model(spec)
        analytic = network_cost(spec)
        print(f"{name:<12} {spec.space.pool:<6} {len(spec.arch.cells):>5} {analytic.macs / 1e6:>15.1f}M "
              f"{nse_tf.count_macs(model) / 1e6:>14.1f}M {nse_tf.count_params(model) / 1e6:>8.2f}M")
    return 0


def run() -> None:
    """``python tools/list_models.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("list_models.py"))
