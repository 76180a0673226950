"""BN statistics for the EMA weights: re-estimated before each validation and for the saved model."""

from __future__ import annotations

from typing import Any

import numpy as np

from nse_tf.nets.batch_norm import average_statistics, batch_norm_layers
from nse_tf.train.checkpoints import seed_generators
from nse_tf.train.config import BN_RECALIBRATION_BATCHES, TrainConfig


def recalibration_images(images: np.ndarray, config: TrainConfig) -> np.ndarray:
    """The fixed, unaugmented training images over which BN statistics are re-estimated."""
    count = min(len(images), BN_RECALIBRATION_BATCHES * config.batch_size)
    take = np.sort(np.random.default_rng([config.seed, 7]).permutation(len(images))[:count])
    return images[take].astype(np.float32)


def recalibrate_batch_norm(model: Any, images: np.ndarray, batch_size: int) -> None:
    """Re-estimate every BN layer's moving mean and variance for the model's current weights: the
    cumulative average over ``images`` in batches, in training mode (as SWA's ``update_bn`` does).

    An EMA of the weights needs it. BN's moving statistics follow the raw weights, not their average:
    at epoch 3 of the 6 M-MAC baseline, the EMA weights scored 9.9% top-1 with the moving statistics
    and 86.7% with recalibrated ones (raw weights: 88.4%). The dropout RNG states are left as they were,
    so recalibrating does not change the rest of a run.
    """
    generators = seed_generators(model)
    states = [np.asarray(g.state.value) for g in generators]
    try:
        average_statistics(batch_norm_layers(model), lambda batch: model(batch, training=True),
                           (images[start:start + batch_size]
                            for start in range(0, len(images) - batch_size + 1, batch_size)))
    finally:
        for generator, state in zip(generators, states):
            generator.state.assign(state)


def ema_validation_callback(images: np.ndarray, batch_size: int) -> Any:
    """Keras's ``SwapEMAWeights`` that also re-estimates BN statistics for the EMA weights before
    validating, and puts the training ones back afterwards (training goes on exactly as without it)."""
    import keras

    class EMAValidation(keras.callbacks.SwapEMAWeights):
        def on_test_begin(self, logs: dict | None = None) -> None:
            super().on_test_begin(logs)
            self._moving = [(v, keras.ops.convert_to_numpy(v)) for layer in batch_norm_layers(self.model)
                            for v in (layer.moving_mean, layer.moving_variance)]
            recalibrate_batch_norm(self.model, images, batch_size)

        def on_test_end(self, logs: dict | None = None) -> None:
            for variable, value in getattr(self, "_moving", []):
                variable.assign(value)
            self._moving = []
            super().on_test_end(logs)

    return EMAValidation(swap_on_epoch=False)
