"""tf_keras (Keras 2) layers of the quantization-aware build, where Keras 3 has a layer of its own.

TensorFlow's kernels refuse a depthwise conv that is both strided and dilated; Keras 3 builds it as one layer
(``StridedDilatedDepthwiseConv2D``). tfmot quantizes tf_keras models only, so there the same conv is a dilated
stride-1 ``DepthwiseConv2D`` followed by ``Subsample``, which keeps every s-th output aligned as a strided
'same' conv would: the same numbers, and weights that move by layer name between the two builds.
"""

from __future__ import annotations

import math
from typing import Any

import tf_keras

from nse_tf.space.ops import subsample_start


class Subsample(tf_keras.layers.Layer):
    """Every ``stride``-th row and column of a stride-1 'same' conv's output, offset like the strided conv."""

    def __init__(self, stride: int, kernel_extent: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.stride, self.kernel_extent = int(stride), int(kernel_extent)

    def call(self, inputs: Any) -> Any:
        oh = subsample_start(int(inputs.shape[1]), self.stride, self.kernel_extent)
        ow = subsample_start(int(inputs.shape[2]), self.stride, self.kernel_extent)
        return inputs[:, oh::self.stride, ow::self.stride, :]

    def compute_output_shape(self, input_shape: Any) -> tuple:
        b, h, w, c = input_shape
        return (b, None if h is None else math.ceil(h / self.stride), None if w is None else math.ceil(w / self.stride),
                c)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "stride": self.stride, "kernel_extent": self.kernel_extent}
