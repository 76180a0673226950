"""Cost: analytic MACs/params of cells and networks, and a generic counter over built Keras models.

MACs are multiply-accumulates of convolutions and dense layers:
H_out*W_out*C_out*(C_in/groups)*k_h*k_w per conv, C_in*C_out per dense layer. BN, activations,
element-wise adds and pooling count zero MACs (as in the paper). Params are trainable parameters.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from nse_tf.architecture import NetworkSpec
from nse_tf.ops import Cost, conv_cost, op_cost, out_size
from nse_tf.space import CellSpec, MacroSpace


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


# ------------------------------------------------------------------ generic counter

_POOLING = ("AveragePooling2D", "MaxPooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D")


def _class_names(layer: Any) -> list[str]:
    return [cls.__name__ for cls in type(layer).__mro__]


def _shape(tensor_or_shape: Any) -> tuple:
    shape = getattr(tensor_or_shape, "shape", tensor_or_shape)
    return tuple(None if d is None else int(d) for d in shape)


def layer_macs(layer: Any) -> int:
    """MACs of one layer from its configuration and its built input/output shapes."""
    names = _class_names(layer)
    if "DepthwiseConv2D" in names:
        out = _shape(layer.output)
        kh, kw = layer.kernel_size
        return out[1] * out[2] * out[3] * kh * kw
    if "Conv2D" in names:
        out, cin = _shape(layer.output), _shape(layer.input)[-1]
        kh, kw = layer.kernel_size
        return out[1] * out[2] * out[3] * (cin // getattr(layer, "groups", 1)) * kh * kw
    if "Dense" in names:
        cin, out = _shape(layer.input)[-1], _shape(layer.output)
        return math.prod(d for d in out[1:-1] if d) * cin * out[-1]
    if any(p in names for p in _POOLING):
        return 0
    return 0


def _examples_through(model: Any) -> dict[int, float]:
    """Per input example, how many examples each layer of ``model`` processes in one forward pass.

    Once per call of the layer in the graph (a shared layer or nested model runs per call), times what
    the layers upstream did to the batch: a layer with ``examples_per_example`` (the flip-averaging
    wrapper's ``MirrorStack``: 2) multiplies it for everything downstream.
    """
    nodes = getattr(model, "_nodes_by_depth", None) or {}
    out_examples: dict[int, float] = {}
    runs: dict[int, float] = {}
    for depth in sorted(nodes, reverse=True):  # inputs have the greatest depth
        for node in nodes[depth]:
            layer = getattr(node, "operation", None) or getattr(node, "layer", None)
            examples = max((out_examples.get(id(parent), 1.0) for parent in node.parent_nodes), default=1.0)
            runs[id(layer)] = runs.get(id(layer), 0.0) + examples
            out_examples[id(node)] = examples * getattr(layer, "examples_per_example", 1.0)
    return runs


def count_macs(model: Any) -> int:
    """Multiply-accumulates of one forward pass of a built functional Keras 3 or tf_keras model, per
    input example."""
    runs = _examples_through(model)
    total = 0.0
    for layer in model.layers:
        nested = hasattr(layer, "layers") and layer.layers and layer is not model
        total += runs.get(id(layer), 1.0) * (count_macs(layer) if nested else layer_macs(layer))
    return int(round(total))


def count_params(model: Any) -> int:
    """Trainable parameters of a Keras 3 or tf_keras model."""
    return int(sum(math.prod(_shape(w)) for w in model.trainable_weights))


def cell_cost(space_cell: CellSpec, space: MacroSpace, ops: Sequence[int]) -> Cost:
    table = cell_op_costs(space)[space_cell.index]
    total = Cost()
    for i in ops:
        total += table[i]
    return total
