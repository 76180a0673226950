"""Write the MobileNetV2-style baseline matched to a searched network:
``python tools/make_baseline.py --like=<network JSON> --out=<baseline JSON>``.

The baseline keeps the searched network's macro skeleton (stem, cells, strides, head) and puts
MobileNetV2's block alone in every cell, at the widest width whose MACs do not exceed the searched
network's (or --max_macs).
"""

from __future__ import annotations

import json
import os
import sys


from absl import app, flags  # noqa: E402

from nse_tf.utils.cli import flags_parser  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("like", None, "Network JSON (or search run directory) whose skeleton and MACs to match.")
flags.DEFINE_string("space_of", None, "Instead of --like: a search run directory whose space gives the skeleton "
                    "(needs --max_macs).")
flags.DEFINE_float("max_macs", None, "MACs budget in M (default: the --like network's MACs).")
flags.DEFINE_string("out", None, "Where to write the baseline's network JSON.")
flags.DEFINE_bool("allow_large", False, "Read a --like network or --space_of space beyond the size limits of "
                  "nse_tf.space.limits (refused without this flag).")
flags.DEFINE_string("name", "MobileNetV2-style", "Name recorded in the JSON.")
flags.DEFINE_float("alpha", None, "Instead of matching MACs: the --like network's skeleton at this width multiplier "
                   "(MobileNetV2's alpha; channels after the stem times alpha, rounded to a multiple of 4; stem "
                   "and head kept, as MobileNetV2 keeps its last layer for alpha <= 1).")


def main(argv: list[str]) -> int:
    from nse_tf import resolve_spec
    from nse_tf.space.analytic import network_cost
    from nse_tf.space.baselines import MOBILENET_V2_OP, mobilenet_v2_style, single_op_network, widened
    from nse_tf.space.limits import SizeLimitError, error_line
    from nse_tf.space.macro import MacroSpace
    from nse_tf.utils.output_paths import OutputError, check_file, output_error_line

    def fail(flag: str, message: str) -> int:
        print(f"make_baseline.py: error: --{flag}: {message}", file=sys.stderr)
        return 2

    if not F.out:
        return fail("out", "is required")
    try:  # a directory, a read-only mount: refused now
        check_file(F.out)
    except OutputError as err:
        return fail("out", str(err))
    if bool(F.like) == bool(F.space_of):
        return fail("like", "give exactly one of --like or --space_of")
    if F.alpha is not None:
        if not F.like or F.max_macs:
            return fail("alpha", "goes with --like and without --max_macs")
        if not 0.05 <= F.alpha <= 4.0:
            return fail("alpha", f"must be in [0.05, 4], got {F.alpha}")
    if F.space_of:
        if not F.max_macs:
            return fail("max_macs", "is required with --space_of")
        try:
            with open(os.path.join(F.space_of, "config.json"), encoding="utf-8") as f:
                space = MacroSpace.from_dict(json.load(f)["space"], check_size=not F.allow_large)
        except SizeLimitError as err:
            return fail("space_of", f"{F.space_of}: {error_line(err)}")
        except (OSError, ValueError, KeyError) as err:
            return fail("space_of", f"{F.space_of} is not a search run directory ({err})")
        budget = F.max_macs * 1e6
    else:
        try:
            like = resolve_spec(F.like, check_size=not F.allow_large)
        except ValueError as err:
            return fail("like", error_line(err))
        space = like.space
        budget = F.max_macs * 1e6 if F.max_macs else network_cost(like).macs
    if F.alpha is not None:
        try:
            baseline = single_op_network(widened(space, F.alpha), MOBILENET_V2_OP, F.name)
        except ValueError as err:
            return fail("alpha", str(err))
        budget = network_cost(baseline).macs
    else:
        try:
            baseline = mobilenet_v2_style(space, budget, name=F.name)
        except ValueError as err:
            return fail("max_macs", str(err))
    try:
        baseline.save(F.out)
    except Exception as err:  # the disk filled: one line
        if (line := output_error_line(err, "out", F.out)) is None:
            raise
        print(f"make_baseline.py: error: {line}", file=sys.stderr)
        return 2
    cost = network_cost(baseline)
    print(f"{F.out}: {baseline.name} with channels {baseline.space.channels}, {cost.macs / 1e6:.2f} M MACs "
          f"(budget {budget / 1e6:.2f}), {cost.params:,} params")
    return 0


def run() -> None:
    """``python tools/make_baseline.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("make_baseline.py"))
