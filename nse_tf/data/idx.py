"""Fashion-MNIST from the original IDX files, with numpy only.

This module must not import TensorFlow: child-network retraining also runs
under the JAX backend of Keras 3, where TensorFlow is not installed, and it
still needs the embedded default dataset, the held-out split and the
normalisation statistics.

IDX format (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number
``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32 sizes,
then the data in C order, big-endian.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import struct

import numpy as np

DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

FASHION_MNIST_CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

INSTALL_HINT = (
    "install it with `apt-get update && apt-get install -y dataset-fashion-mnist` "
    "(it puts the IDX files in " + DEFAULT_FASHION_MNIST_DIR + "), "
    "or pass --data_dir pointing to a directory that holds them"
)

# IDX dtype code -> numpy dtype (big-endian where it matters).
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_FILE_STEMS = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


class DataNotFoundError(FileNotFoundError):
    """A dataset file is missing; the message says how to get it."""


class DataFileError(ValueError):
    """A dataset file is there but unusable (corrupt, truncated, wrong shape or type); the message names it."""


class DatasetError(ValueError):
    """A dataset name, split or setting that cannot be used (unknown dataset, no classes, a held-out split too
    large, a size that does not fit the network); the message names the setting."""


@dataclasses.dataclass(frozen=True)
class FashionMnistArrays:
    """The whole dataset in memory (about 55 MB), as numpy arrays.

    Images are uint8 with shape (N, 28, 28, 1) so they already look like
    channels-last image batches; labels are int64 in [0, 10).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] = FASHION_MNIST_CLASS_NAMES

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _open_bytes(path: str) -> bytes:
    """Reads a file, gunzipping when it is gzip (by magic, not by name)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataFileError(f"{path}: cannot read it ({e.strerror})") from e
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:  # truncated or corrupt gzip stream
            raise DataFileError(f"{path}: corrupt or truncated gzip data ({e})") from e
    return raw


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parses IDX bytes into a numpy array in native byte order.

    Raises DataFileError naming ``name`` on a bad magic number, an unknown dtype
    code, or a size that disagrees with the header.
    """
    if len(data) < 4:
        raise DataFileError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise DataFileError(
            f"{name}: bad IDX magic number 0x{data[:4].hex()} "
            "(expected 0x0000 followed by a dtype code in "
            f"{sorted(hex(c) for c in _IDX_DTYPES)} and ndim >= 1)"
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataFileError(
            f"{name}: truncated IDX header ({len(data)} bytes, need {header_len})"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    body = len(data) - header_len
    if body != expected:
        kind = "truncated" if body < expected else "has trailing data"
        raise DataFileError(
            f"{name}: IDX file {kind}: header says shape {tuple(shape)} "
            f"({expected} bytes of {dtype}), found {body} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str) -> np.ndarray:
    """Reads one IDX file (gzipped or not) from ``path``."""
    return parse_idx(_open_bytes(path), name=path)


def find_idx_file(data_dir: str, stem: str) -> str | None:
    """Returns the path of ``stem.gz`` or ``stem`` in ``data_dir``, or None."""
    for candidate in (stem + ".gz", stem):
        path = os.path.join(data_dir, candidate)
        if os.path.isfile(path):
            return path
    return None


def _missing_error(data_dir: str, missing: list[str]) -> DataNotFoundError:
    if not os.path.isdir(data_dir):
        what = f"Fashion-MNIST directory {data_dir!r} does not exist (needs {', '.join(missing)})"
    else:
        what = f"Fashion-MNIST file(s) {', '.join(missing)} not found in directory {data_dir!r}"
    return DataNotFoundError(f"{what}; {INSTALL_HINT}.")


def load_fashion_mnist(data_dir: str | None = None) -> FashionMnistArrays:
    """Loads the four Fashion-MNIST IDX files from ``data_dir``.

    ``None`` means DEFAULT_FASHION_MNIST_DIR (the Debian package location).
    All four files are looked up before any is read, so one error names
    every missing file (as ``<stem>.gz``; un-gzipped names work too).
    """
    data_dir = DEFAULT_FASHION_MNIST_DIR if data_dir is None else os.fspath(data_dir)
    found = {key: find_idx_file(data_dir, stem) for key, stem in _FILE_STEMS.items()}
    missing = [_FILE_STEMS[key] + ".gz" for key, path in found.items() if path is None]
    if missing:
        raise _missing_error(data_dir, missing)
    paths: dict[str, str] = {key: path for key, path in found.items() if path is not None}
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        xp, yp = paths[f"x_{split}"], paths[f"y_{split}"]
        if x.ndim != 3 or x.dtype != np.uint8:
            raise DataFileError(
                f"{xp}: expected uint8 images of rank 3 (N, rows, cols), "
                f"got {x.dtype} with shape {x.shape}"
            )
        if y.ndim != 1 or y.dtype != np.uint8:
            raise DataFileError(
                f"{yp}: expected uint8 labels of rank 1, got {y.dtype} with shape {y.shape}"
            )
        if x.shape[0] != y.shape[0]:
            raise DataFileError(
                f"{xp} has {x.shape[0]} images but {yp} has {y.shape[0]} labels"
            )
        if y.size and int(y.max()) >= len(FASHION_MNIST_CLASS_NAMES):
            raise DataFileError(
                f"{yp}: label {int(y.max())} out of range "
                f"[0, {len(FASHION_MNIST_CLASS_NAMES)})"
            )
    return FashionMnistArrays(
        x_train=arrays["x_train"][..., None],
        y_train=arrays["y_train"].astype(np.int64),
        x_test=arrays["x_test"][..., None],
        y_test=arrays["y_test"].astype(np.int64),
    )


def heldout_split(num_train: int, heldout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Splits range(num_train) into (train_idx, heldout_idx), seeded.

    The held-out set is carved from the training data so search never sees
    the test set. Both index arrays are sorted (deterministic iteration
    order) and disjoint, and together cover range(num_train).
    """
    if num_train <= 0:
        raise ValueError(f"num_train must be positive, got {num_train}")
    if not 0 <= heldout < num_train:
        raise ValueError(
            f"heldout must be in [0, num_train={num_train}), got {heldout}"
        )
    perm = np.random.default_rng(seed).permutation(num_train)
    return np.sort(perm[heldout:]), np.sort(perm[:heldout])


# Per-channel statistics in 0-255 pixel units, for models that normalise
# their inputs inside themselves. Kept here (TensorFlow-free) so that the
# JAX-backend retraining path can use them without TensorFlow.
#
# fashion_mnist: computed once from train-images-idx3-ubyte.gz (all 60000
# training images, 47,040,000 pixels) as x.astype(float64).mean() and
# .std() (population std, ddof=0): 72.94035223214286, 90.02118235130526.
_MEAN_STD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "fashion_mnist": ((72.9404,), (90.0212,)),
    "cifar10": ((125.3, 123.0, 113.9), (63.0, 62.1, 66.7)),
    "imagenet": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
}
_ALIASES = {"imagenet2012": "imagenet", "imagenette": "imagenet", "imagenet_v2": "imagenet"}


def mean_std(
    dataset_name: str, channels: int = 3
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Returns (mean, std) per channel, in 0-255 units, for a dataset name.

    Accepts the DataConfig.dataset forms ("fashion_mnist", "tfds:cifar10",
    "tfds:imagenette/320px-v2", ...). Unknown datasets get the ImageNet
    statistics when ``channels`` is 3 and (127.5,), (127.5,) when it is 1.
    """
    name = dataset_name.strip().lower()
    if name.startswith("tfds:"):
        name = name[len("tfds:"):]
    name = name.split("/")[0].split(":")[0]
    name = _ALIASES.get(name, name)
    if name in _MEAN_STD:
        return _MEAN_STD[name]
    if channels == 1:
        return (127.5,), (127.5,)
    if channels == 3:
        return _MEAN_STD["imagenet"]
    return (127.5,) * channels, (127.5,) * channels
