"""The retraining recipe (TrainConfig), its errors, and the names of a run directory's files."""

from __future__ import annotations

import dataclasses
from typing import Any

TRAIN_FORMAT = "nse_tf.train_config"
TRAIN_VERSION = 1
WEIGHTS_NAME = "model.weights.h5"
NETWORK_NAME = "network.json"
RESULT_NAME = "result.json"
CONFIG_NAME = "train_config.json"
CHECKPOINT_STATE_NAME = "checkpoint.json"
HISTORY_NAME = "history.csv"
# Training batches (unaugmented, a fixed sample of the training split) over which BN statistics are
# re-estimated for the EMA weights before each validation and for the saved model.
BN_RECALIBRATION_BATCHES = 20


class TrainError(ValueError):
    """A training setting, dataset or run directory is unusable; the message names it."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The whole retraining recipe; saved beside the weights so a zoo entry says how it was trained."""

    epochs: int = 60
    batch_size: int = 128
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum) or "adamw"
    lr: float = 0.1
    warmup_epochs: float = 2.0
    min_lr_fraction: float = 0.0  # the cosine ends at lr * this
    momentum: float = 0.9
    weight_decay: float = 5e-5  # Keras's decoupled decay (var -= lr * wd * var), kernels only
    label_smoothing: float = 0.1
    ema_momentum: float | None = 0.999  # None: no EMA; else the evaluated/saved weights are the EMA
    flip: bool = True
    crop_padding: int = 2
    erase_probability: float = 0.0  # random erasing (cutout-style) of one rectangle per image
    dropout: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}
        for name, value in positive.items():
            if not value > 0:
                raise TrainError(f"{name} must be positive, got {value}")
        if self.optimizer not in ("sgd", "adamw"):
            raise TrainError(f"optimizer must be sgd or adamw, got {self.optimizer!r}")
        ranges = {"warmup_epochs": (self.warmup_epochs, 0.0, float(self.epochs)),
                  "min_lr_fraction": (self.min_lr_fraction, 0.0, 1.0), "momentum": (self.momentum, 0.0, 1.0),
                  "label_smoothing": (self.label_smoothing, 0.0, 1.0),
                  "erase_probability": (self.erase_probability, 0.0, 1.0), "dropout": (self.dropout, 0.0, 0.99)}
        for name, (value, low, high) in ranges.items():
            if not low <= value <= high:
                raise TrainError(f"{name} must be in [{low:g}, {high:g}], got {value}")
        if self.weight_decay < 0:
            raise TrainError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.ema_momentum is not None and not 0.0 < self.ema_momentum < 1.0:
            raise TrainError(f"ema_momentum must be in (0, 1) or None, got {self.ema_momentum}")
        if not 0 <= self.crop_padding <= 8:
            raise TrainError(f"crop_padding must be in [0, 8], got {self.crop_padding}")

    def to_dict(self) -> dict[str, Any]:
        return {"format": TRAIN_FORMAT, "version": TRAIN_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "train config") -> "TrainConfig":
        if data.get("format") != TRAIN_FORMAT or data.get("version") != TRAIN_VERSION:
            raise TrainError(f"{source}: not an nse_tf train config v{TRAIN_VERSION}")
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})
