"""MACs and parameters counted on a built Keras model (conv and dense layers), as opposed to the analytic count of a NetworkSpec (nse_tf.space.analytic)."""

from __future__ import annotations

import math
from typing import Any

from nse_tf.space.analytic import _POOLING


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
