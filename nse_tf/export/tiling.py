"""Large depthwise kernels in the form LiteRT runs fast: a sum of depthwise convs of at most 25 taps each.

XNNPACK, LiteRT's default CPU delegate, has fast depthwise kernels up to 25 taps (5x5); a 7x7 to 11x11 kernel
takes a generic path, several times slower than the tiled form in float32 and tens of times in int8 on this
project's CPU (``benchmarks/README.md``, ``depthwise_tiling``). So, for TFLite only, each such conv becomes: one zero
padding ('same', as TensorFlow pads), then one 'valid' depthwise conv per tile of the kernel on a slice of the
padded input, summed. The sum is the same conv, to float rounding; int8 files quantize each tile's output on
its own, which the zoo's whole-test-split top-1 of each re-exported file measures.

The BatchNormalization that follows a tiled conv is folded into its kernels and bias (the converter folds a BN
into one conv, not into a sum of them). Training, checkpoints and the SavedModel and ONNX exports keep the
plain layers; ``tile_large_depthwise`` makes a new model that shares every other layer with the original. The
tiles' geometry is ``nets.depthwise_tiles``, which the quantization-aware tf_keras build
(``nets.layers.TiledDepthwise``) shares, so QAT and pruned files run the same tiles.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from nse_tf.nets.depthwise_tiles import MAX_TAPS, TiledGeometry, kernel_tiles, needs_tiling

__all__ = ["MAX_TAPS", "TiledDepthwiseConv2D", "FoldedBatchNorm", "folded_kernel_and_bias", "kernel_tiles",
           "tile_large_depthwise"]


@keras.saving.register_keras_serializable(package="nse_tf")
class TiledDepthwiseConv2D(keras.layers.Layer):
    """A 'same' depthwise conv (depth multiplier 1, no dilation) computed as a sum of tiles of its kernel.

    Same ``kernel`` variable shape as Keras's DepthwiseConv2D, (k, k, C, 1); ``bias`` holds a folded BN's shift.
    """

    def __init__(self, kernel_size: int, strides: int = 1, use_bias: bool = True, max_taps: int = MAX_TAPS,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.use_bias = bool(use_bias)
        self.max_taps = int(max_taps)
        self.tiles = kernel_tiles(self.kernel_size, self.max_taps)

    def build(self, input_shape: Any) -> None:
        channels = int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, self.kernel_size, channels, 1),
                                      initializer="zeros")
        self.bias = self.add_weight(name="bias", shape=(channels,), initializer="zeros") if self.use_bias else None

    def call(self, inputs: Any) -> Any:
        geometry = TiledGeometry.of(int(inputs.shape[1]), int(inputs.shape[2]), self.kernel_size, self.strides,
                                    self.max_taps)
        padded = keras.ops.pad(inputs, [(0, 0), geometry.pad_h, geometry.pad_w, (0, 0)])
        total = None
        for window in geometry.windows:
            (r0, r1), (c0, c1) = window.rows, window.cols
            part = keras.ops.depthwise_conv(padded[:, r0:r0 + window.height, c0:c0 + window.width, :],
                                            self.kernel[r0:r1, c0:c1], strides=self.strides, padding="valid")
            total = part if total is None else total + part
        return total if self.bias is None else total + self.bias

    def compute_output_shape(self, input_shape: Any) -> tuple:
        b, h, w, c = input_shape
        s = self.strides
        return (b, None if h is None else math.ceil(h / s), None if w is None else math.ceil(w / s), c)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
                "use_bias": self.use_bias, "max_taps": self.max_taps}


@keras.saving.register_keras_serializable(package="nse_tf")
class FoldedBatchNorm(keras.layers.Layer):
    """Where a BN folded into the tiled conv before it was: passes its input on (and takes BN's arguments)."""

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape


def _needs_tiling(layer: Any, max_taps: int) -> bool:
    """A Keras DepthwiseConv2D that XNNPACK runs slowly and the tiled form can replace exactly."""
    if type(layer) is not keras.layers.DepthwiseConv2D:  # subclasses (the strided dilated conv) compute otherwise
        return False
    if len(layer._inbound_nodes) != 1 or None in tuple(layer.input.shape)[1:3]:  # one call, static height/width
        return False
    return (needs_tiling(tuple(layer.kernel_size), max_taps) and tuple(layer.dilation_rate) == (1, 1)
            and layer.depth_multiplier == 1
            and layer.padding == "same" and layer.data_format == "channels_last"
            and layer.strides[0] == layer.strides[1] and layer.activation is keras.activations.linear)


def _only_consumer(layer: Any) -> Any:
    """The one layer that reads ``layer``'s output, or None when it has none or several."""
    nodes = getattr(layer, "_outbound_nodes", [])
    return nodes[0].operation if len(nodes) == 1 else None


def _all_layers(model: Any) -> list[Any]:
    """Every layer of ``model``, nested models' layers included."""
    out = []
    for layer in model.layers:
        out.append(layer)
        if isinstance(layer, keras.Model):
            out.extend(_all_layers(layer))
    return out


def folded_kernel_and_bias(conv: Any, bn: Any | None) -> tuple[np.ndarray, np.ndarray]:
    """``conv``'s kernel with ``bn`` (inference mode) folded in, and the bias that leaves; the Keras 3 and the
    tf_keras layers both expose these attributes."""
    kernel = np.asarray(conv.kernel.numpy() if hasattr(conv.kernel, "numpy") else conv.kernel, dtype=np.float32)
    channels = kernel.shape[2]
    bias = np.asarray(conv.bias, dtype=np.float32) if conv.use_bias else np.zeros(channels, np.float32)
    if bn is None:
        return kernel, bias
    gamma = np.asarray(bn.gamma, np.float32) if bn.scale else np.ones(channels, np.float32)
    beta = np.asarray(bn.beta, np.float32) if bn.center else np.zeros(channels, np.float32)
    scale = gamma / np.sqrt(np.asarray(bn.moving_variance, np.float32) + bn.epsilon)
    return kernel * scale[None, None, :, None], beta + (bias - np.asarray(bn.moving_mean, np.float32)) * scale


def tile_large_depthwise(model: Any, max_taps: int = MAX_TAPS) -> Any:
    """``model`` itself when it has no depthwise conv over ``max_taps`` taps; else a new functional model
    computing the same function (inference mode) with each such conv tiled and its BN folded in."""
    layers = _all_layers(model)
    tiled = [layer for layer in layers if _needs_tiling(layer, max_taps)]
    if not tiled:
        return model
    members = {id(layer) for layer in layers}
    outputs = [t for m in [model, *[layer for layer in layers if isinstance(layer, keras.Model)]] for t in m.outputs]
    folds = {}
    for conv in tiled:
        bn = _only_consumer(conv)
        # fold only a BN of this model that alone reads the conv, which is not itself an output
        if (isinstance(bn, keras.layers.BatchNormalization) and id(bn) in members and bn.axis in (-1, 3)
                and len(bn._inbound_nodes) == 1 and not any(conv.output is t for t in outputs)):
            folds[id(conv)] = bn
    folded_bns = {id(bn) for bn in folds.values()}
    replace = {id(conv) for conv in tiled}

    def clone(layer: Any) -> Any:
        if id(layer) in replace:
            kernel, bias = folded_kernel_and_bias(layer, folds.get(id(layer)))
            new = TiledDepthwiseConv2D(layer.kernel_size[0], layer.strides[0], max_taps=max_taps, name=layer.name)
            new.build(tuple(layer.input.shape))
            new.set_weights([kernel, bias])
            return new
        if id(layer) in folded_bns:
            return FoldedBatchNorm(name=layer.name)
        return layer

    return keras.models.clone_model(model, clone_function=clone, recursive=True)
