"""Magnitude pruning (tfmot) of a trained child network: what it gives a phone user in file size and accuracy.

The network is rebuilt with tf_keras layers (``qat.tf_keras_copy``, as for QAT), its 1x1 and full convolutions and
its classifier wrapped in ``prune_low_magnitude`` (depthwise kernels are few weights and tfmot does not prune
them), and fine-tuned with the same resumable loop as QAT while the sparsity ramps from 0 to the target over the
first three quarters of the steps. ``strip`` leaves a plain tf_keras model whose zeros make the ``.tflite``
compress (LiteRT's XNNPACK runs it as a dense network: the gain is in the download, not in the time).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from nse_tf.train.qat import QatConfig
from nse_tf.utils.settings import between, setting

RAMP_FRACTION = 0.75  # the sparsity reaches its target here, then the masked network trains on


@dataclasses.dataclass(frozen=True)
class PruneConfig(QatConfig):
    """The QAT fine-tuning recipe, plus the fraction of each pruned kernel's weights set to zero."""

    sparsity: float = setting(0.5, "Fraction of each pruned kernel's weights set to zero (1x1 and full convolutions, "
                              "the classifier); it ramps up from 0 over the first three quarters of the fine-tuning.",
                              check=between(0, 1, low_open=True, high_open=True))


def pruned_kinds() -> tuple[type, ...]:
    """The tf_keras layer types whose kernels are pruned (exact types: DepthwiseConv2D is not among them)."""
    import tf_keras

    return tf_keras.layers.Conv2D, tf_keras.layers.Dense


def prunable(model: Any, config: PruneConfig, steps_per_epoch: int) -> Any:
    """``model`` (a tf_keras child network) with its convolutions and classifier wrapped for pruning."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    sparsity = tfmot.sparsity.keras
    end = max(1, int(RAMP_FRACTION * config.epochs * steps_per_epoch))
    schedule = sparsity.PolynomialDecay(initial_sparsity=0.0, final_sparsity=config.sparsity, begin_step=0,
                                        end_step=end, frequency=max(1, min(100, end // 10)))
    kinds = pruned_kinds()

    def wrap(layer: Any) -> Any:
        return sparsity.prune_low_magnitude(layer, pruning_schedule=schedule) if type(layer) in kinds else layer

    # clone_model wraps the original layer objects, so the pruned model starts from their trained weights
    return tf_keras.models.clone_model(model, clone_function=wrap)


def step_callbacks() -> list[Any]:
    """What advances the pruning schedule and applies the masks during ``qat.fine_tune``."""
    import tensorflow_model_optimization as tfmot

    return [tfmot.sparsity.keras.UpdatePruningStep()]


def strip(model: Any) -> Any:
    """The plain tf_keras network of a fine-tuned ``prunable`` model (masked weights left at zero)."""
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras.strip_pruning(model)


def kernel_sparsity(model: Any) -> float:
    """Fraction of zeros over the kernels of the pruned layer types of a stripped model."""
    kinds = pruned_kinds()
    kernels = [np.asarray(layer.kernel) for layer in model.layers if type(layer) in kinds]
    if not kernels:
        raise ValueError("the network has no prunable layers")
    return float(sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels))
