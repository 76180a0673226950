"""Child networks: a NetworkSpec -> a plain functional Keras model with only the chosen branches.

Written with Keras layers only (no ``tf.*``), so the same model builds and trains under the
TensorFlow, JAX and PyTorch backends, and, through ``Namespace.tf_keras()``, as a tf_keras
model for quantization-aware training. Cells combine branches as in section 4 of the method:
an N cell averages its input with its branches ((x + sum) / (|B| + 1)) and is the identity when
empty; an R/E cell averages its branches.
"""

from __future__ import annotations

from typing import Any

from nse_tf.nets.layers import Namespace, head_layers, op_layers, stem_layers
from nse_tf.space.architecture import NetworkSpec
from nse_tf.space.macro import CellSpec, MacroSpace

PREPROCESS_LAYER = "preprocess"  # the normalisation layer's name (nse_tf.nets.flip_average mirrors after it)


def preprocessing_layer(ns: Namespace, space: MacroSpace) -> Any:
    """Raw pixels (0-255) in, normalised out: preprocessing travels inside the model."""
    mean = list(space.mean) * (space.input_channels // len(space.mean))
    std = list(space.std) * (space.input_channels // len(space.std))
    return ns.layers.Normalization(mean=mean, variance=[s * s for s in std], name=PREPROCESS_LAYER)


def entry_layers(ns: Namespace, space: MacroSpace, include_preprocessing: bool = True) -> list[Any]:
    """What every network of ``space`` runs before its cells: preprocessing (raw pixels in) and the stem. The
    child, the supernet and the latency table's fixed part all build it here."""
    first = [preprocessing_layer(ns, space)] if include_preprocessing else []
    return first + stem_layers(ns, space.scaled_channels[0], space.stem_stride, space.activation)


def exit_layers(ns: Namespace, space: MacroSpace, dropout: float = 0.0) -> list[Any]:
    """What every network of ``space`` runs after its cells: the head and the classifier (logits)."""
    return head_layers(ns, space.head_channels, space.num_classes, space.activation, dropout)


def apply_cell(ns: Namespace, x: Any, cell: CellSpec, op_names: list[str], space: MacroSpace) -> Any:
    pool = space.get_pool()
    branches = []
    for name in op_names:
        op = pool.ops[pool.index(name)]
        layers = op_layers(ns, op, cell.cin, cell.cout, cell.stride, f"{cell.name}_{name}", se=space.se,
                           activation=space.activation)
        branches.append(layers(x))
    if cell.kind == "N":
        if not branches:
            return x
        return ns.layers.Average(name=f"{cell.name}_combine")([x] + branches)
    if len(branches) == 1:
        return branches[0]
    return ns.layers.Average(name=f"{cell.name}_combine")(branches)


def build_child(spec: NetworkSpec, namespace: Namespace | None = None, include_preprocessing: bool = True,
                dropout: float = 0.0) -> Any:
    """Build the child network of ``spec`` as a functional model (Keras 3 unless a namespace says otherwise)."""
    ns = namespace or Namespace.keras3()
    space = spec.space
    inputs = ns.Input(shape=(space.input_size, space.input_size, space.input_channels), name="image")
    x = inputs
    for layer in entry_layers(ns, space, include_preprocessing):
        x = layer(x)
    names = spec.arch.names(space.get_pool())
    for cell, op_names in zip(space.cells(), names):
        x = apply_cell(ns, x, cell, op_names, space)
    for layer in exit_layers(ns, space, dropout):
        x = layer(x)
    return ns.Model(inputs, x, name=spec.name.replace("-", "_").replace(" ", "_"))
