"""Cost: analytic MACs/params of cells and networks, and a generic counter over built Keras models.

MACs are multiply-accumulates of convolutions and dense layers:
H_out*W_out*C_out*(C_in/groups)*k_h*k_w per conv, C_in*C_out per dense layer. BN, activations,
element-wise adds and pooling count zero MACs (as in the paper). Params are trainable parameters.
"""

from __future__ import annotations

from typing import Sequence

from nse_tf.space.architecture import NetworkSpec
from nse_tf.space.macro import CellSpec, MacroSpace
from nse_tf.space.ops import Cost
from nse_tf.space.space_cost import cell_op_costs, fixed_cost


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
