"""Numpy augmentation of training batches (flip, padded crop, random erasing) and the keras.utils.PyDataset that feeds them, so retraining runs under any Keras backend."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nse_tf.train.config import TrainConfig


def augment_batch(images: np.ndarray, config: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """Random horizontal flip, random crop from a zero-padded image, optional random erasing."""
    x = images.astype(np.float32)
    n, h, w, _ = x.shape
    if config.flip:
        flip = rng.random(n) < 0.5
        x[flip] = x[flip, :, ::-1]
    if config.crop_padding:
        p = config.crop_padding
        padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        dy, dx = rng.integers(0, 2 * p + 1, size=(2, n))
        rows = dy[:, None] + np.arange(h)[None, :]
        cols = dx[:, None] + np.arange(w)[None, :]
        x = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    if config.erase_probability > 0:
        for i in np.flatnonzero(rng.random(n) < config.erase_probability):
            area = rng.uniform(0.02, 0.25) * h * w
            ratio = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
            eh, ew = min(h, int(round(math.sqrt(area * ratio)))), min(w, int(round(math.sqrt(area / ratio))))
            y0, x0 = rng.integers(0, h - eh + 1), rng.integers(0, w - ew + 1)
            x[i, y0:y0 + eh, x0:x0 + ew] = rng.uniform(0, 255, size=(eh, ew, x.shape[3]))
    return x


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


def make_training_dataset(images: np.ndarray, labels: np.ndarray, num_classes: int, config: TrainConfig,
                          start_epoch: int = 0) -> Any:
    """An endless PyDataset whose item ``i`` is batch ``i % steps`` of epoch ``start_epoch + i // steps``.

    Keras reads an endless PyDataset with one generator across epochs (``fit(steps_per_epoch=...)``),
    so the item index is the only state: batch contents depend on (seed, epoch, batch) alone and a
    resumed run sees the same data as an uninterrupted one. (A finite PyDataset gets its batches
    shuffled by Python's global RNG and ``on_epoch_end`` calls that do not line up with epochs.)
    """
    import keras

    steps = len(images) // config.batch_size  # drop the remainder: fixed batch shape, one trace

    class ShuffledAugmented(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False, max_queue_size=4)
            self._orders: dict[int, np.ndarray] = {}

        @property
        def num_batches(self) -> None:
            return None

        def steps_per_epoch(self) -> int:
            return steps

        def order(self, epoch: int) -> np.ndarray:
            if epoch not in self._orders:
                self._orders = {epoch: np.random.default_rng([config.seed, epoch]).permutation(len(images))}
            return self._orders[epoch]

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            epoch, batch = start_epoch + index // steps, index % steps
            take = self.order(epoch)[batch * config.batch_size:(batch + 1) * config.batch_size]
            rng = np.random.default_rng([config.seed, epoch, batch, 1])
            return augment_batch(images[take], config, rng), one_hot(labels[take], num_classes)

    return ShuffledAugmented()
