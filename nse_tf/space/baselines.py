"""Hand-designed baselines in the same macro skeleton as the searched networks, matched in MACs.

A fair comparison changes only what the search chose: the baseline keeps the searched network's
stem, cell layout, strides and head, puts MobileNetV2's block (``mb_k3_t6``: 1x1 expand x6, 3x3
depthwise, 1x1 project) alone in every cell, and takes the widest width whose MACs do not exceed
the budget.
"""

from __future__ import annotations

import numpy as np

from nse_tf.space.analytic import network_cost
from nse_tf.space.architecture import Architecture, NetworkSpec
from nse_tf.space.macro import MacroSpace

MOBILENET_V2_OP = "mb_k3_t6"


def widened(space: MacroSpace, scale: float) -> MacroSpace:
    """Every channel count but the stem's times ``scale``, rounded to a multiple of 4 (finer MACs steps
    than the width multiplier's multiples of 8, so the budget can be matched closely)."""
    channels = space.scaled_channels
    return space.replace(scale=1.0, channels=(channels[0],) + tuple(max(4, 4 * round(c * scale / 4))
                                                                     for c in channels[1:]))


def single_op_network(space: MacroSpace, op: str, name: str) -> NetworkSpec:
    if op not in space.get_pool().names:
        space = space.replace(pool=tuple(space.get_pool().names) + (op,))
    return NetworkSpec(space, Architecture.from_cells([[op]] * len(space.cells()), space.get_pool()), name)


def mobilenet_v2_style(space: MacroSpace, max_macs: float, name: str = "MobileNetV2-style",
                       scales: np.ndarray | None = None) -> NetworkSpec:
    """The widest all-``mb_k3_t6`` network of ``space``'s skeleton with at most ``max_macs`` MACs."""
    best = None
    for scale in (np.arange(0.25, 4.0001, 0.01) if scales is None else scales):
        spec = single_op_network(widened(space, float(scale)), MOBILENET_V2_OP, name)
        macs = network_cost(spec).macs
        if macs <= max_macs and (best is None or macs > best[0]):
            best = (macs, spec)
    if best is None:
        raise ValueError(f"no width of {name} fits in {max_macs / 1e6:.2f} M MACs")
    return best[1]
