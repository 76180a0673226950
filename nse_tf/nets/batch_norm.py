"""Re-estimating BN statistics as the mean over batches: shared by retraining (the EMA weights) and the
search's exact end-of-round evaluation.

Batch-by-batch recalibration at the layers' momentum (0.9) keeps 0.9^n of the statistics that were there
before; setting the momentum of batch i to i / (i + 1) instead makes the moving statistics the mean of the
batches' statistics, the previous values gone after the first batch (SWA's ``update_bn`` does the same).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable


def batch_norm_layers(model: Any) -> list[Any]:
    import keras

    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


def average_statistics(layers: list[Any], forward: Callable[[Any], Any], batches: Iterable[Any]) -> None:
    """Run ``forward`` (training mode, eagerly: the momentum is read at every call) on each batch so that every
    BN layer it reaches ends with the mean of the batches' statistics (the variance as the mean of the
    batches' variances: the spread between batch means is left out, as in SWA); momenta are restored."""
    momenta = [layer.momentum for layer in layers]
    try:
        for i, batch in enumerate(batches):
            for layer in layers:
                layer.momentum = i / (i + 1.0)
            forward(batch)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
