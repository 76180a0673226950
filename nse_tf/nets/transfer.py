"""Trained weights in a network rebuilt for another task, as timm and Keras Applications users expect.

timm's ``create_model(name, pretrained=True, num_classes=N, in_chans=C)`` loads every weight but the classifier
and adapts the first convolution to another channel count (``adapt_input_conv``); Keras Applications'
``include_top=False, pooling="avg"`` gives the backbone. Here: ``retarget`` rebuilds a spec for the new task
(the normalisation's mean/std adapted with the channels), ``transfer_weights`` copies what fits by layer name
(the weight keys of every build, ``nets.layers``), ``backbone`` cuts the head. The checks refuse floats where
whole numbers belong rather than cut them, naming the argument.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

from nse_tf.space.architecture import NetworkSpec

STEM_CONV = "stem_conv"  # the first convolution, the one layer whose kernel sees the input channels
CLASSIFIER = "classifier"  # the last Dense layer (nets.layers.head_layers)
BACKBONE_END = "head_act"  # the backbone's output: the head's 1x1 conv and activation, as Keras Applications keep
POOLINGS = (None, "avg", "max")


def check_whole(argument: str, value: Any) -> int:
    """``value`` if it is an int (numpy's too), else a TypeError naming ``argument``: 2.7 is refused, not cut."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argument} must be a whole number (int), got {value!r} ({type(value).__name__})")
    return int(value)


def check_num_classes(num_classes: Any) -> int | None:
    return None if num_classes is None else check_whole("num_classes", num_classes)


def check_input_shape(input_shape: Any) -> tuple[int, int, int] | None:
    """``(height, width, channels)`` of ints, square (the networks are built at one input size)."""
    if input_shape is None:
        return None
    values = () if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__iter__") else \
        tuple(input_shape)
    if len(values) != 3 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values):
        raise TypeError(f"input_shape must be (height, width, channels) of whole numbers (ints), got {input_shape!r}")
    h, w, c = (int(v) for v in values)
    if min(h, w, c) < 1:
        raise ValueError(f"input_shape must be positive, got {tuple(input_shape)}")
    if h != w:
        raise ValueError(f"input_shape must be square (height = width): the networks are built at one input size, "
                         f"got {tuple(input_shape)}")
    return h, w, c


def check_head(include_top: Any, pooling: Any, num_classes: int | None) -> None:
    if not isinstance(include_top, bool):
        raise TypeError(f"include_top must be True or False, got {include_top!r}")
    if not (pooling is None or isinstance(pooling, str)) or pooling not in POOLINGS:
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if include_top and pooling is not None:
        raise ValueError(f"pooling={pooling!r} applies with include_top=False only (the full network pools itself)")
    if not include_top and num_classes is not None:
        raise ValueError(f"num_classes={num_classes} needs include_top=True: the backbone has no classifier")


def adapt_statistic(values: Sequence[float], channels: int) -> tuple[float, ...]:
    """A per-channel normalisation mean (or std) for ``channels`` input channels: one value stays one (the
    layer repeats it for every channel), ``channels == 1`` takes the average of the values (a grey image is
    the average of its colours), else the values are repeated in turn (timm's order for the kernel)."""
    values = tuple(float(v) for v in values)
    if len(values) in (1, channels):
        return values
    if channels == 1:
        return (sum(values) / len(values),)
    return tuple(values[i % len(values)] for i in range(channels))


def adapt_input_kernel(kernel: np.ndarray, channels: int) -> np.ndarray:
    """A stem kernel (height, width, in, out) trained on ``in`` channels for ``channels`` channels, as timm's
    ``adapt_input_conv``: to 1 channel the sum over the input channels; to C channels the kernel's input
    channels repeated in turn up to C and scaled by in/C (1 -> 3: each copy divided by 3). Either way an image
    whose channels are all equal gives the trained network's response to that single channel."""
    kernel = np.asarray(kernel)
    trained = kernel.shape[2]
    if channels == trained:
        return kernel
    if channels == 1:
        return kernel.sum(axis=2, keepdims=True)
    repeats = math.ceil(channels / trained)
    return np.concatenate([kernel] * repeats, axis=2)[:, :, :channels, :] * (trained / channels)


def retarget(spec: NetworkSpec, num_classes: int | None = None,
             input_shape: tuple[int, int, int] | None = None) -> NetworkSpec:
    """``spec`` rebuilt for ``num_classes`` and a square ``input_shape`` (both checked); another channel
    count adapts the normalisation's mean/std (``adapt_statistic``)."""
    num_classes, input_shape = check_num_classes(num_classes), check_input_shape(input_shape)
    space = spec.space
    if num_classes is not None and num_classes != space.num_classes:
        try:
            spec = spec.replace_space(num_classes=num_classes)
        except ValueError as err:
            raise ValueError(f"num_classes={num_classes}: {err}") from None
    if input_shape is not None:
        size, _, channels = input_shape
        overrides: dict[str, Any] = {"input_size": size}
        if channels != space.input_channels:
            overrides.update(input_channels=channels, mean=adapt_statistic(space.mean, channels),
                             std=adapt_statistic(space.std, channels))
        try:
            spec = spec.replace_space(**overrides)
        except ValueError as err:
            raise ValueError(f"input_shape={input_shape}: {err}") from None
    return spec


def transfer_weights(source: Any, target: Any) -> list[str]:
    """Copy ``source``'s weights into ``target`` layer by layer name where the shapes agree, the stem kernel
    adapted to another channel count (``adapt_input_kernel``); the names of ``target``'s layers with weights
    left as they were built (no layer of that name, or another shape: the classifier for other classes)."""
    trained = {layer.name: layer for layer in source.layers if layer.weights}
    left = []
    for layer in target.layers:
        if not layer.weights:
            continue
        other = trained.get(layer.name)
        values = other.get_weights() if other is not None and len(other.weights) == len(layer.weights) else None
        if values is not None and layer.name == STEM_CONV:
            values = [adapt_input_kernel(values[0], int(layer.weights[0].shape[2])), *values[1:]]
        if values is None or any(tuple(v.shape) != tuple(w.shape) for v, w in zip(values, layer.weights)):
            left.append(layer.name)
            continue
        layer.set_weights(values)
    return left


def backbone(model: Any, pooling: str | None = None) -> Any:
    """``model`` up to its head's activation (the features before global pooling, as Keras Applications'
    ``include_top=False``), then ``pooling``: None (a 4-D feature map), ``"avg"`` or ``"max"`` (global)."""
    import keras

    from nse_tf.nets.image_model import ImageModel

    x = model.get_layer(BACKBONE_END).output
    if pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return ImageModel(model.input, x, name=f"{model.name}_backbone")
