"""The retraining recipe (TrainConfig), its errors, and the names of a run directory's files."""

from __future__ import annotations

import dataclasses
from typing import Any

from nse_tf.utils.settings import SettingError, at_least, between, check_fields, one_of, positive, setting

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


class RunMismatchError(TrainError):
    """A run directory holds a run of another network, dataset or recipe (a rerun with changed settings)."""


class TrainSettingError(SettingError, TrainError):
    """A recipe setting out of range; ``field`` names it (a command line's flag of the same name)."""


def _ema(value: float | None) -> str | None:
    return None if value is None or 0.0 < value < 1.0 else f"must be in (0, 1) or None, got {value}"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The whole retraining recipe; saved beside the weights so a zoo entry says how it was trained. Each field is
    the tools/train.py flag of its name."""

    epochs: int = setting(60, "Training epochs.", check=positive)
    batch_size: int = setting(128, "Batch size.", check=positive)
    optimizer: str = setting("sgd", "sgd (Nesterov momentum) or adamw.", choices=("sgd", "adamw"),
                             check=one_of("sgd", "adamw", quote=False))
    lr: float = setting(0.1, "Peak learning rate (linear warm-up, then cosine).",
                        check=positive)
    warmup_epochs: float = setting(2.0, "Warm-up epochs.")  # in [0, epochs]: checked with epochs
    min_lr_fraction: float = setting(0.0, "The cosine ends at lr times this.", check=between(0, 1))
    momentum: float = setting(0.9, "SGD Nesterov momentum.", check=between(0, 1))
    weight_decay: float = setting(5e-5, "Decoupled weight decay of conv/dense kernels.",  # var -= lr * wd * var
                                  check=at_least(0))
    label_smoothing: float = setting(0.1, "Label smoothing of the cross-entropy.", check=between(0, 1))
    ema_momentum: float | None = setting(  # None: no EMA; else the evaluated/saved weights are the EMA
        0.999, "EMA of the weights (0 turns it off); the EMA is what is saved.", "float", check=_ema,
        parse=lambda value: value or None)
    flip: bool = setting(True, "Random horizontal flips.")
    crop_padding: int = setting(2, "Random crops from images zero-padded by this many pixels (0: off).",
                                check=between(0, 8))
    erase_probability: float = setting(0.0, "Probability of random erasing per image.",  # one rectangle per image
                                       check=between(0, 1))
    dropout: float = setting(0.1, "Dropout before the classifier.", check=between(0, 0.99))
    seed: int = setting(0, "Seed of weight init, data order and augmentation.")

    def __post_init__(self) -> None:
        check_fields(self, TrainSettingError)
        if not 0.0 <= self.warmup_epochs <= float(self.epochs):
            raise TrainSettingError("warmup_epochs", f"warmup_epochs must be in [0, {float(self.epochs):g}], got "
                                                     f"{self.warmup_epochs}")

    def to_dict(self) -> dict[str, Any]:
        return {"format": TRAIN_FORMAT, "version": TRAIN_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "train config") -> "TrainConfig":
        if data.get("format") != TRAIN_FORMAT or data.get("version") != TRAIN_VERSION:
            raise TrainError(f"{source}: not an nse_tf train config v{TRAIN_VERSION}")
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})
