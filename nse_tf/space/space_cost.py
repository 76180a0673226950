"""A space's costs before any architecture is chosen: every pool operation's in every cell (the table the
search penalty uses) and the fixed part (stem, head, classifier), with which ``architecture`` sizes a network."""

from __future__ import annotations

from nse_tf.space.macro import MacroSpace
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
