"""Keras layers of one operation branch, built from an OpSpec in any layer namespace.

The same code builds Keras 3 layers (any backend) and ``tf_keras`` (Keras 2) layers for
quantization-aware training: a ``Namespace`` says which. Layer names are derived from a
prefix (``cell03_mb_k3_t6_expand_conv``), so weights move by name between the supernet,
a child network and its exports.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import keras

from nse_tf.nets.depthwise_tiles import MAX_TAPS, TiledGeometry, needs_tiling
from nse_tf.space.ops import OpSpec, se_channels, subsample_start

BN_MOMENTUM = 0.9  # PyTorch's momentum 0.1, as in the reference code
BN_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class Namespace:
    """Which Keras to build with: ``layers``, ``Input`` and ``Model`` of Keras 3 or tf_keras, and the
    BatchNormalization class (the supernet swaps in a fused one; the variables are the same). With
    ``tiled_depthwise_taps``, a depthwise conv of more taps is built as ``TiledDepthwise``, its BN folded in."""

    layers: Any
    Input: Callable[..., Any]
    Model: Callable[..., Any]
    initializers: Any
    name: str
    batch_norm: Any = None
    tiled_depthwise_taps: int = 0

    @staticmethod
    def keras3() -> "Namespace":
        from nse_tf.nets.image_model import ImageModel

        return Namespace(keras.layers, keras.Input, ImageModel, keras.initializers, "keras",
                         keras.layers.BatchNormalization)

    @staticmethod
    def tf_keras(tile_large_depthwise: bool = False) -> "Namespace":
        """tf_keras (for tfmot); ``tile_large_depthwise``: the form of the TFLite exports, so that quantization-aware
        training sees the tiles the int8 file runs."""
        import tf_keras

        return Namespace(tf_keras.layers, tf_keras.Input, tf_keras.Model, tf_keras.initializers, "tf_keras",
                         tf_keras.layers.BatchNormalization, MAX_TAPS if tile_large_depthwise else 0)

    @staticmethod
    def supernet() -> "Namespace":
        """Keras 3 on TensorFlow with fused BN: the supernet's graphs get far fewer ops to trace."""
        return dataclasses.replace(Namespace.keras3(), batch_norm=FusedBatchNormalization)


@keras.saving.register_keras_serializable(package="nse_tf")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization that trains with TensorFlow's fused kernel (one op forward, one backward).

    Same variables as Keras's layer, so weights move to child networks by name. In training mode the
    moving variance is updated with the unbiased batch variance, as PyTorch (and the reference code) do.
    TensorFlow backend only; inference falls back to Keras's implementation.
    """

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        if not (training and self.trainable) or mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        # The kernel blends the moving statistics itself (exponential_avg_factor = 1 - momentum): two
        # assignments instead of a dozen small ops per layer, which a supernet's many branches all pay.
        y, moving_mean, moving_variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta),
            mean=tf.convert_to_tensor(self.moving_mean), variance=tf.convert_to_tensor(self.moving_variance),
            epsilon=self.epsilon, data_format="NHWC", is_training=True, exponential_avg_factor=1.0 - self.momentum)
        self.moving_mean.assign(moving_mean)
        self.moving_variance.assign(moving_variance)
        return y


# What new zoo entries record about their initial weights (train_config.json, then the metadata).
INITIALIZATION = "he_normal_fan_out_torch: depthwise fan_out = channels x k x k, as PyTorch's kaiming_normal_"
LEGACY_INITIALIZATION = "he_normal_fan_out_keras: depthwise fan_out = k x k (Keras), sqrt(channels) too large"


def conv_initializer(ns: Namespace) -> Any:
    """He-normal with fan_out, as the reference code initialises convolutions."""
    return ns.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def depthwise_initializer(ns: Namespace, channels: int) -> Any:
    """He-normal fan_out as PyTorch counts it for a depthwise kernel (channels x k x k).

    Keras's fan_out of a (k, k, C, 1) kernel is k x k, so the plain ``conv_initializer`` would start
    depthwise weights sqrt(C) too large (and, with BN after them, train about C times slower).
    """
    return ns.initializers.VarianceScaling(scale=2.0 / channels, mode="fan_out", distribution="untruncated_normal")


@keras.saving.register_keras_serializable(package="nse_tf")
class StridedDilatedDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """A depthwise conv with stride > 1 *and* dilation > 1, which TF's kernels refuse.

    Computes the dilated conv at stride 1 and keeps every ``stride``-th output, aligned like
    a strided 'same' conv would be, so the result is exactly the strided dilated conv; the
    output shape is the strided one, so MAC counters see the nominal cost.
    """

    def __init__(self, kernel_size: int, strides: int = 2, dilation_rate: int = 2, **kwargs: Any):
        kwargs.pop("padding", None)
        super().__init__(kernel_size, strides=1, dilation_rate=dilation_rate, padding="same", **kwargs)
        self.subsample = int(strides[0] if isinstance(strides, (tuple, list)) else strides)

    def _offsets(self, shape: Any) -> tuple[int, int]:
        extent = (self.kernel_size[0] - 1) * self.dilation_rate[0] + 1
        return (subsample_start(int(shape[1]), self.subsample, extent),
                subsample_start(int(shape[2]), self.subsample, extent))

    def call(self, inputs: Any) -> Any:
        dense = super().call(inputs)
        oh, ow = self._offsets(inputs.shape)
        return dense[:, oh::self.subsample, ow::self.subsample, :]

    def compute_output_shape(self, input_shape: Any) -> tuple:
        b, h, w, c = input_shape
        s = self.subsample
        return (b, None if h is None else math.ceil(h / s), None if w is None else math.ceil(w / s),
                c * self.depth_multiplier)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(strides=self.subsample)
        config.pop("padding", None)
        return config


class TiledDepthwise:
    """A large 'same' depthwise conv made of layers that tfmot quantizes and XNNPACK runs fast:
    ``ZeroPadding2D``, then per live tile (``depthwise_tiles.TiledGeometry``) a ``Cropping2D`` and a 'valid'
    ``DepthwiseConv2D``, then ``Add``, the form of the TFLite exports (``export.tiling``). The first live tile has a
    bias, where the folded BN's shift goes. Its layers are made on the first call, since the live tiles depend on
    the input's size; they are named ``{name}_pad``, ``{name}_tile{i}_crop``, ``{name}_tile{i}`` (``i``: the tile's
    place in ``kernel_tiles``) and ``{name}_sum``."""

    def __init__(self, ns: Namespace, name: str, kernel: int, stride: int, max_taps: int):
        self.ns, self.name, self.kernel, self.stride, self.max_taps = ns, name, int(kernel), int(stride), max_taps
        self.called = False

    def __call__(self, x: Any) -> Any:
        if self.called:  # a second call would make a second set of layers under the same names
            raise RuntimeError(f"{self.name} is applied once")
        self.called = True
        L = self.ns.layers
        height, width, channels = (int(d) for d in x.shape[1:])
        geometry = TiledGeometry.of(height, width, self.kernel, self.stride, self.max_taps)
        padded = L.ZeroPadding2D((geometry.pad_h, geometry.pad_w), name=f"{self.name}_pad")(x)
        padded_h, padded_w = height + sum(geometry.pad_h), width + sum(geometry.pad_w)
        parts = []
        for window in geometry.windows:
            (r0, r1), (c0, c1) = window.rows, window.cols
            crop = L.Cropping2D(((r0, padded_h - r0 - window.height), (c0, padded_w - c0 - window.width)),
                                name=f"{self.name}_tile{window.index}_crop")(padded)
            conv = L.DepthwiseConv2D((r1 - r0, c1 - c0), strides=self.stride, padding="valid", use_bias=not parts,
                                     depthwise_initializer=depthwise_initializer(self.ns, channels),
                                     name=f"{self.name}_tile{window.index}")
            parts.append(conv(crop))
        return parts[0] if len(parts) == 1 else L.Add(name=f"{self.name}_sum")(parts)


@dataclasses.dataclass
class OpLayers:
    """The layers of one branch: a chain, an optional squeeze-excitation, and the projection."""

    body: list[Any]
    se: list[Any] | None
    se_multiply: Any | None
    project: list[Any]

    def __call__(self, x: Any, training: Any = None) -> Any:
        for layer in self.body:
            x = apply_layer(layer, x, training)
        if self.se is not None:
            s = x
            for layer in self.se:
                s = apply_layer(layer, s, training)
            x = self.se_multiply([x, s])
        for layer in self.project:
            x = apply_layer(layer, x, training)
        return x

    def all_layers(self) -> list[Any]:
        return self.body + (self.se or []) + ([self.se_multiply] if self.se_multiply is not None else []) + self.project


def apply_layer(layer: Any, x: Any, training: Any) -> Any:
    """Call ``layer``, passing ``training`` to the layers that take it (BN), set by ``conv_bn``."""
    if training is not None and getattr(layer, "_nse_uses_training", False):
        return layer(x, training=training)
    return layer(x)


def conv_bn(ns: Namespace, prefix: str, filters: int, kernel: tuple[int, int] | int, strides: Any = 1, *,
            groups: int = 1, dilation: int = 1, depthwise: bool = False, activation: str | None = None) -> list[Any]:
    """conv (no bias) -> BN -> optional activation, named ``{prefix}_conv/_bn/_act``."""
    L = ns.layers
    init = depthwise_initializer(ns, filters) if depthwise else conv_initializer(ns)
    stride_value = strides if isinstance(strides, int) else max(strides)
    if depthwise and dilation > 1 and stride_value > 1:
        if ns.name == "tf_keras":
            # tf_keras has no such layer: the dilated conv at stride 1, BN and activation (pointwise, so they
            # commute with the subsampling), then every s-th output; conv-BN-activation stays the pattern
            # that tfmot folds and quantizes
            from nse_tf.nets.tf_keras_layers import Subsample

            conv = L.DepthwiseConv2D(kernel, strides=1, padding="same", dilation_rate=dilation, use_bias=False,
                                     depthwise_initializer=init, name=f"{prefix}_conv")
            bn = ns.batch_norm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{prefix}_bn")
            bn._nse_uses_training = True
            extent = ((kernel if isinstance(kernel, int) else kernel[0]) - 1) * dilation + 1
            act = [L.Activation(activation, name=f"{prefix}_act")] if activation is not None else []
            return [conv, bn, *act, Subsample(stride_value, extent, name=f"{prefix}_subsample")]
        conv = StridedDilatedDepthwiseConv2D(kernel, strides=stride_value, dilation_rate=dilation, use_bias=False,
                                            depthwise_initializer=init, name=f"{prefix}_conv")
    elif depthwise and ns.tiled_depthwise_taps and dilation == 1 and needs_tiling(kernel, ns.tiled_depthwise_taps):
        # no BN layer: its statistics fold into the tiles when the trained weights are copied (qat.tf_keras_copy),
        # as the exporter folds them, since a BN after the sum would be an op of its own in the int8 file
        kernel_size = kernel if isinstance(kernel, int) else kernel[0]
        act = [L.Activation(activation, name=f"{prefix}_act")] if activation is not None else []
        return [TiledDepthwise(ns, f"{prefix}_conv", kernel_size, stride_value, ns.tiled_depthwise_taps), *act]
    elif depthwise:
        conv = L.DepthwiseConv2D(kernel, strides=strides, padding="same", dilation_rate=dilation, use_bias=False,
                                 depthwise_initializer=init, name=f"{prefix}_conv")
    else:
        conv = L.Conv2D(filters, kernel, strides=strides, padding="same", groups=groups, dilation_rate=dilation,
                        use_bias=False, kernel_initializer=init, name=f"{prefix}_conv")
    bn = ns.batch_norm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{prefix}_bn")
    bn._nse_uses_training = True
    out = [conv, bn]
    if activation is not None:
        out.append(L.Activation(activation, name=f"{prefix}_act"))
    return out


def op_layers(ns: Namespace, op: OpSpec, cin: int, cout: int, stride: int, prefix: str, *,
              se: bool = False, activation: str = "relu") -> OpLayers:
    """Layers of one branch (section 3): 1x1 expand, the op's spatial convs, optional SE, 1x1 project."""
    mid = op.mid_channels(cin)
    k = op.kernel
    body = conv_bn(ns, f"{prefix}_expand", mid, 1, groups=op.groups[0], activation=activation)
    if op.kind == "mb":
        body += conv_bn(ns, f"{prefix}_dw", mid, k, strides=stride, dilation=op.dilation, depthwise=True,
                        activation=activation)
    elif op.kind == "rec":
        body += conv_bn(ns, f"{prefix}_1xk", mid, (1, k), strides=(1, stride), activation=activation)
        body += conv_bn(ns, f"{prefix}_kx1", mid, (k, 1), strides=(stride, 1), activation=activation)
    elif op.kind == "normal":
        body += conv_bn(ns, f"{prefix}_kxk", mid, k, strides=stride, activation=activation)
    elif op.kind == "dual":
        body += conv_bn(ns, f"{prefix}_kxk1", mid, k, strides=1, activation=activation)
        body += conv_bn(ns, f"{prefix}_kxk2", mid, k, strides=stride, activation=activation)
    se_layers, se_multiply = None, None
    if se:
        L = ns.layers
        r = se_channels(mid)
        se_layers = [
            L.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}_se_pool"),
            L.Conv2D(r, 1, activation=activation, name=f"{prefix}_se_reduce"),
            L.Conv2D(mid, 1, activation="sigmoid", name=f"{prefix}_se_expand"),
        ]
        se_multiply = L.Multiply(name=f"{prefix}_se_scale")
    project = conv_bn(ns, f"{prefix}_project", cout, 1, groups=op.groups[1])
    return OpLayers(body, se_layers, se_multiply, project)


def stem_layers(ns: Namespace, filters: int, stride: int, activation: str) -> list[Any]:
    return conv_bn(ns, "stem", filters, 3, strides=stride, activation=activation)


def head_layers(ns: Namespace, head_channels: int, num_classes: int, activation: str,
                dropout: float = 0.0) -> list[Any]:
    """1x1 conv to head_channels + activation (no BN), global average pool, (dropout), classifier."""
    L = ns.layers
    layers = [
        L.Conv2D(head_channels, 1, use_bias=True, kernel_initializer=conv_initializer(ns), name="head_conv"),
        L.Activation(activation, name="head_act"),
        L.GlobalAveragePooling2D(name="head_pool"),
    ]
    if dropout > 0:
        layers.append(L.Dropout(dropout, name="head_dropout"))
    layers.append(L.Dense(num_classes, name="classifier"))
    return layers
