"""DataConfig: what a search reads and how it feeds it, declared as settings (``nse_tf.utils.settings``). Kept
apart from the tf.data pipeline so that flags, saved configs and the stand-alone tools build it without
TensorFlow."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from nse_tf.data.idx import DatasetError
from nse_tf.data.names import PIPELINE_KINDS, parse_dataset
from nse_tf.utils.settings import check_fields, setting


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _dataset(value: object) -> str | None:
    try:
        parse_dataset(value, PIPELINE_KINDS, "the tf.data pipeline (search)")
    except DatasetError as err:
        return str(err)
    return None


def _path(value: object) -> str | None:
    return None if value is None or isinstance(value, (str, os.PathLike)) else \
        f"must be a path string or None, got {value!r}"


def _size(value: object) -> str | None:
    return None if value is None or (_is_int(value) and value > 0) else \
        f"must be a positive int or None, got {value!r}"


def _count(value: object) -> str | None:
    return None if _is_int(value) and value > 0 else f"must be positive, got {value!r}"


def _seed(value: object) -> str | None:
    return None if _is_int(value) and value >= 0 else f"must be a non-negative int, got {value!r}"


def _bool(value: object) -> str | None:
    return None if isinstance(value, bool) else f"must be a bool, got {value!r}"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What data to read and how to feed it.

    ``data_dir`` is the IDX directory for fashion_mnist, the tfds data_dir
    for tfds sources, except for datasets that need a manual download
    (imagenet2012) where it is the tfds manual_dir holding the tar files
    (prepared records then go to the default tfds data_dir). Unused for
    folders. ``image_size`` None keeps the native size.
    """

    dataset: str = setting("fashion_mnist", "fashion_mnist, tfds:<name> or folder:<path>.", check=_dataset,
                           label="")
    data_dir: str | None = setting(None, "IDX directory, tfds data_dir, or imagenet2012 manual_dir.", "string",
                                   check=_path)
    image_size: int | None = setting(None, "Resize images to this size (default: native).", "integer", check=_size)
    heldout_examples: int = setting(5000, "Held-out examples carved from the training split.", check=_count)
    batch_size: int = setting(128, "Global batch size (split across replicas).", check=_count)
    augment: bool = setting(True, "Standard augmentation of training batches.", check=_bool)
    seed: int = setting(0, "Seed of the data order and augmentation.", flags=(), same_as="seed", check=_seed)
    shuffle_buffer: int = setting(10000, "Training examples the shuffle draws from.", flags=(), check=_count)

    def __post_init__(self) -> None:
        check_fields(self)
