"""Logits and top-k accuracy of a Keras model over numpy arrays, in batches."""

from __future__ import annotations

from typing import Any

import numpy as np


def evaluate_arrays(model: Any, images: np.ndarray, labels: np.ndarray, batch_size: int = 500) -> dict[str, float]:
    """Top-1/top-5 of logits on raw uint8 images (the model normalises inside), deterministic batching."""
    from nse_tf.utils.metrics import top_k_accuracies

    return {**top_k_accuracies(predict_logits(model, images, batch_size), labels), "examples": int(len(labels))}


def predict_logits(model: Any, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    import keras

    outputs = [keras.ops.convert_to_numpy(model(images[i:i + batch_size].astype(np.float32), training=False))
               for i in range(0, len(images), batch_size)]
    return np.concatenate(outputs).astype(np.float32)
