"""Cost: analytic MACs/params of cells and networks, and a generic counter over built Keras models.

MACs are multiply-accumulates of convolutions and dense layers:
H_out*W_out*C_out*(C_in/groups)*k_h*k_w per conv, C_in*C_out per dense layer. BN, activations,
element-wise adds and pooling count zero MACs (as in the paper). Params are trainable parameters.
"""

from __future__ import annotations

from typing import Sequence

from nse_tf.space.architecture import NetworkSpec
from nse_tf.space.macro import CellSpec, MacroSpace
from nse_tf.space.ops import Cost, conv_cost, op_cost, out_size


def cell_op_costs(space: MacroSpace) -> list[list[Cost]]:
    """Cost of every pool operation in every cell: the lookup table the search penalty uses."""
    pool = space.get_pool()
    return [[op_cost(op, *cell.input_hw, cell.cin, cell.cout, cell.stride, se=space.se) for op in pool.ops]
            for cell in space.cells()]


def fixed_cost(space: MacroSpace) -> Cost:
    """Stem, head and classifier: the part of the network that does not depend on the search."""
    s = space.stem_hw
    stem = conv_cost(s, s, space.input_channels, space.scaled_channels[0], 3, 3)
    last = space.cells()[-1] if space.cells() else None
    final = out_size(*last.input_hw[:1], last.stride) if last else s
    head = conv_cost(final, final, space.last_channels, space.head_channels, 1, 1, bias=True, bn=False)
    fc = Cost(space.head_channels * space.num_classes, (space.head_channels + 1) * space.num_classes)
    return stem + head + fc


def network_cost(spec: NetworkSpec) -> Cost:
    table = cell_op_costs(spec.space)
    total = fixed_cost(spec.space)
    for costs, ops in zip(table, spec.arch.cells):
        for i in ops:
            total += costs[i]
    return total


_POOLING = ("AveragePooling2D", "MaxPooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D")


def cell_cost(space_cell: CellSpec, space: MacroSpace, ops: Sequence[int]) -> Cost:
    table = cell_op_costs(space)[space_cell.index]
    total = Cost()
    for i in ops:
        total += table[i]
    return total
