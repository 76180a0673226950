"""Image arrays in memory for retraining (any backend): Fashion-MNIST IDX or an .npz, and the held-out split
carved from the training images."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from nse_tf.data.idx import DatasetError
from nse_tf.data.names import ARRAY_KINDS, parse_dataset


@dataclasses.dataclass(frozen=True)
class ImageArrays:
    """A labelled image classification dataset in memory: uint8 NHWC images, int labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def load_arrays(dataset: str = "fashion_mnist", data_dir: str | None = None) -> ImageArrays:
    """``fashion_mnist`` (the Debian IDX files) or ``npz:<path>`` with x_train/y_train/x_test/y_test."""
    name = parse_dataset(dataset, ARRAY_KINDS, "retraining")
    if name.kind == "npz":
        return _load_npz(name.argument)
    from nse_tf.data.idx import load_fashion_mnist

    data = load_fashion_mnist(data_dir)
    return ImageArrays(data.x_train, data.y_train, data.x_test, data.y_test, "fashion_mnist")


def _load_npz(path: str) -> ImageArrays:
    import zipfile

    if not os.path.exists(path):
        raise DatasetError(f"dataset file {path} does not exist")
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in keys if k in f}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DatasetError(f"{path}: not a readable .npz file ({err})") from None
    except (AttributeError, TypeError):  # np.load returned an array: a .npy file, not an archive
        raise DatasetError(f"{path}: not an .npz archive of x_train, y_train, x_test, y_test") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DatasetError(f"{path} lacks arrays {missing}")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim == 3:
            x = arrays[f"x_{split}"] = x[..., None]
        if x.ndim != 4 or min(x.shape, default=0) < 1:
            raise DatasetError(f"{path}: x_{split} must be (N, H, W[, C]) images, got shape {x.shape}")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise DatasetError(f"{path}: y_{split} must be a vector of integer labels, got {y.dtype} {y.shape}")
        if len(x) != len(y):
            raise DatasetError(f"{path}: x_{split} has {len(x)} images but y_{split} has {len(y)} labels")
        if y.size and y.min() < 0:
            raise DatasetError(f"{path}: y_{split} holds a negative label ({int(y.min())})")
    return ImageArrays(name=f"npz:{os.path.basename(path)}", **arrays)


def heldout_arrays(data: ImageArrays, heldout: int, seed: int) -> ImageArrays:
    """The training images split as a search splits them (``heldout_split``): train on the rest, and the
    held-out images take the test split's place, so a run never sees the test set (ranking, selection).

    A search's round r carves its held-out split with data seed + 1000 r (``SearchRun.round_splits``)."""
    from nse_tf.data.idx import heldout_split

    try:
        train_idx, heldout_idx = heldout_split(len(data.x_train), heldout, seed)
    except ValueError as err:
        raise DatasetError(f"heldout_examples: {err}") from None
    if heldout == 0:
        raise DatasetError("heldout_examples must be positive to evaluate on a held-out split")
    return ImageArrays(data.x_train[train_idx], data.y_train[train_idx], data.x_train[heldout_idx],
                       data.y_train[heldout_idx], heldout_name(data.name, heldout, seed))


def heldout_name(dataset: str, heldout: int, seed: int) -> str:
    """The dataset name a held-out retraining records (and a rerun must match)."""
    return f"{dataset}:heldout={heldout},seed={seed}"
