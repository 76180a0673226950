"""The learning-rate schedule of the search and of retraining alike: linear warm-up, then cosine down to a floor
(zero in the search, ``min_lr_fraction`` of the peak in retraining)."""

from __future__ import annotations

import math
from typing import Any

import keras


@keras.saving.register_keras_serializable(package="nse_tf")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """lr goes linearly from ``warmup_lr`` to ``base_lr`` over ``warmup_steps``, then cosine to
    ``base_lr * min_lr_fraction`` at ``total_steps`` (Keras's CosineDecay with ``alpha``, warm-up included)."""

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int = 0, warmup_lr: float = 0.0,
                 min_lr_fraction: float = 0.0):
        if base_lr < 0 or warmup_lr < 0:
            raise ValueError(f"learning rates must be >= 0, got base_lr={base_lr}, warmup_lr={warmup_lr}")
        if not 0.0 <= min_lr_fraction <= 1.0:
            raise ValueError(f"min_lr_fraction must be in [0, 1], got {min_lr_fraction}")
        if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps}), total >= 1")
        self.base_lr, self.total_steps = float(base_lr), int(total_steps)
        self.warmup_steps, self.warmup_lr = int(warmup_steps), float(warmup_lr)
        self.min_lr_fraction = float(min_lr_fraction)

    def __call__(self, step: Any) -> Any:
        step = keras.ops.cast(step, "float32")
        warm = self.warmup_lr + (self.base_lr - self.warmup_lr) * step / max(self.warmup_steps, 1)
        progress = (step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1)
        progress = keras.ops.clip(progress, 0.0, 1.0)
        cosine = 0.5 * (1.0 + keras.ops.cos(math.pi * progress))
        if self.min_lr_fraction:
            cosine = (1.0 - self.min_lr_fraction) * cosine + self.min_lr_fraction
        cosine = self.base_lr * cosine
        return keras.ops.where(step < self.warmup_steps, warm, cosine)

    def get_config(self) -> dict[str, Any]:
        return {"base_lr": self.base_lr, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "warmup_lr": self.warmup_lr, "min_lr_fraction": self.min_lr_fraction}
