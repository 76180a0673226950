"""Test-time flip averaging: one network run on an image and on its mirror image, logits averaged.

Models trained with random horizontal flips see both orientations as the same class, so averaging
the two predictions removes part of the error of either one at twice the MACs (two passes) and no
new weights. The wrapper stacks each image and its mirror into one batch for a single call of the
trained network, then averages the two halves of its logits. One call, not two, because the int8
converter calibrates every call separately: with two calls it gave the mirror its own input scale
(1.29 instead of 1) and the first call's logits the scale of their sum, and the e60 baseline's int8
file lost 0.64 points of top-1; stacked (mirrored after normalisation, below) it is 0.01 points above
the float model. ``count_macs`` counts the network
once per stacked image (``examples_per_example``), so the MACs are those of two passes.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="nse_tf")
class MirrorStack(keras.layers.Layer):
    """A batch of N NHWC images -> 2N: the images, then their left-right mirrors."""

    examples_per_example = 2.0

    def call(self, images: Any) -> Any:
        return keras.ops.concatenate([images, keras.ops.flip(images, axis=2)], axis=0)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (None if input_shape[0] is None else 2 * input_shape[0], *input_shape[1:])


@keras.saving.register_keras_serializable(package="nse_tf")
class MeanOfHalves(keras.layers.Layer):
    """A batch of 2N rows -> N: row i is the mean of rows i and N + i."""

    examples_per_example = 0.5

    def call(self, rows: Any) -> Any:
        half = keras.ops.shape(rows)[0] // 2
        return (rows[:half] + rows[half:]) * 0.5

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (None if input_shape[0] is None else input_shape[0] // 2, *input_shape[1:])


def flip_average(model: Any) -> Any:
    """A model returning the mean of ``model``'s logits on the image and on its horizontal mirror.

    The mirror is taken after ``model``'s own ``preprocess`` layer (the zoo networks' normalisation)
    where it has one: the int8 converter gives a mirrored tensor and its source one scale, and on the
    raw pixels that scale also had to cover the normalised range, so the uint8 input lost its scale of
    1 (raw pixels no longer fed as they are: scale 1.29, zero point 57).
    """
    # imported here: the module holds Keras classes only (nse_tf.nets.saving imports it while Keras loads)
    from nse_tf.nets.child import PREPROCESS_LAYER
    from nse_tf.nets.image_model import ImageModel

    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    if any(layer.name == PREPROCESS_LAYER for layer in model.layers):
        preprocess = model.get_layer(PREPROCESS_LAYER)
        body = keras.Model(preprocess.output, model.output, name=f"{model.name}_body")
        stacked = MirrorStack(name="mirror_stack")(preprocess(inputs))
    else:
        body, stacked = model, MirrorStack(name="mirror_stack")(inputs)
    logits = MeanOfHalves(name="flip_average")(body(stacked))
    return ImageModel(inputs, logits, name=f"{model.name}_flip_average")
