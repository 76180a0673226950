"""Image arrays in memory for retraining, evaluation and zoo entries: every dataset kind the search reads
(Fashion-MNIST IDX, ``folder:``, ``tfds:``) and ``npz:``, and the held-out split carved from the training images
as the search carves it.

Fashion-MNIST, ``npz:`` and ``folder:`` need no TensorFlow (retraining also runs under JAX): a folder is listed
by ``folders`` (the search's own listing) and decoded by ``images`` (Pillow and numpy, the pipeline's size
handling). ``tfds:`` is read through the search's tf.data pipeline itself, so it needs TensorFlow."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from nse_tf.data.checks import check_classes, check_pixels, check_same_images
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
    class_names: tuple[str, ...] = ()  # where the dataset names them (folders: its class folders)
    heldout_first: bool = False  # the search holds out the first training images (tfds), not a seeded sample

    @property
    def num_classes(self) -> int:
        if self.class_names:
            return len(self.class_names)
        return int(max(self.y_train.max(), self.y_test.max(initial=0))) + 1


def load_arrays(dataset: str = "fashion_mnist", data_dir: str | None = None,
                image_size: int | None = None, *, allow_0_1_pixels: bool = False) -> ImageArrays:
    """``fashion_mnist`` (the Debian IDX files), ``npz:<path>`` with x_train/y_train/x_test/y_test,
    ``folder:<path>`` (as the search reads it) or ``tfds:<name>`` (TensorFlow Datasets, through the search's
    pipeline; ``data_dir`` is its data_dir there). ``image_size`` resizes the images to that square size as the
    search's ``--image_size`` does (None: their native size; a folder's then is its first image's).

    npz arrays are checked (``checks``): NaN, infinite, complex or out-of-range pixels, images of two sizes and
    classes without training images are refused; so are float pixels that all lie in [0, 1] (the networks expect
    0-255), unless ``allow_0_1_pixels`` says that scale is meant. The other kinds decode to uint8 0-255."""
    name = parse_dataset(dataset, ARRAY_KINDS, "retraining")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer))
                                   or image_size < 1):
        raise DatasetError(f"image_size must be a positive whole number or None, got {image_size!r}")
    if not isinstance(allow_0_1_pixels, bool):
        raise TypeError(f"allow_0_1_pixels must be True or False, got {allow_0_1_pixels!r}")
    if name.kind == "folder":
        from nse_tf.data.folder_arrays import read_folder

        f = read_folder(name.argument, dataset, image_size)
        return ImageArrays(f.x_train, f.y_train, f.x_test, f.y_test, dataset, f.class_names)
    if name.kind == "tfds":
        return _load_tfds(dataset, data_dir, image_size)
    if name.kind == "npz":
        data = _load_npz(name.argument, allow_0_1_pixels)
    else:
        from nse_tf.data.idx import load_fashion_mnist

        fmnist = load_fashion_mnist(data_dir)
        data = ImageArrays(fmnist.x_train, fmnist.y_train, fmnist.x_test, fmnist.y_test, "fashion_mnist",
                           fmnist.class_names)
    return data if image_size is None else resized(data, image_size)


def resized(data: ImageArrays, image_size: int) -> ImageArrays:
    """Every image brought to ``image_size`` squared by the pipeline's evaluation transform."""
    from nse_tf.data.images import SMALL_IMAGE_MAX, evaluation_image

    out_hw = (image_size, image_size)
    if data.x_train.shape[1:3] == out_hw and image_size <= SMALL_IMAGE_MAX:
        return data

    def fit(x: np.ndarray) -> np.ndarray:
        shape = (len(x), *out_hw, x.shape[3])
        return np.stack([evaluation_image(i, out_hw, image_size <= SMALL_IMAGE_MAX) for i in x]) if len(x) else \
            np.zeros(shape, np.uint8)

    return dataclasses.replace(data, x_train=fit(data.x_train), x_test=fit(data.x_test))


def _load_tfds(dataset: str, data_dir: str | None, image_size: int | None) -> ImageArrays:
    """A TFDS dataset through the search's own pipeline (its decoding, size handling and splits), evaluation
    transform applied: the whole 'train' split in its order, and its test (or validation) split."""
    try:
        from nse_tf.data.pipeline import DataConfig, load_splits
    except ImportError as err:
        raise DatasetError(f"dataset {dataset!r} needs TensorFlow and tensorflow-datasets ({err})") from None
    # The pipeline holds out train[:n]; with n = 1, held-out then training images are the split in order.
    splits = load_splits(DataConfig(dataset, data_dir, image_size, heldout_examples=1, batch_size=256,
                                    augment=False))

    def gather(*datasets) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for ds in datasets:
            for x, y in ds.as_numpy_iterator():
                xs.append(np.round(np.clip(x, 0, 255)).astype(np.uint8))
                ys.append(y.astype(np.int64))
        shape = (0, *splits.input_shape)
        return (np.concatenate(xs) if xs else np.zeros(shape, np.uint8),
                np.concatenate(ys) if ys else np.zeros(0, np.int64))

    x_train, y_train = gather(splits.heldout, splits.train_plain)
    x_test, y_test = gather(splits.test)
    return ImageArrays(x_train, y_train, x_test, y_test, dataset, tuple(splits.class_names), heldout_first=True)


def _load_npz(path: str, allow_0_1_pixels: bool = False) -> ImageArrays:
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
    for split in ("train", "test"):
        check_pixels(arrays[f"x_{split}"], f"{path}: x_{split}", allow_0_1_pixels)
    check_same_images(arrays["x_train"], arrays["x_test"], path)
    check_classes(arrays["y_train"], arrays["y_test"], path)
    return ImageArrays(name=f"npz:{os.path.basename(path)}", **arrays)  # type: ignore[arg-type]


def heldout_arrays(data: ImageArrays, heldout: int, seed: int) -> ImageArrays:
    """The training images split as a search splits them (``heldout_split``, or the first ``heldout`` images of a
    tfds dataset, whatever the seed): train on the rest, and the held-out images take the test split's place,
    so a run never sees the test set (ranking, selection).

    A search's round r carves its held-out split with data seed + 1000 r (``SearchRun.round_splits``)."""
    from nse_tf.data.idx import heldout_split

    try:
        train_idx, heldout_idx = heldout_split(len(data.x_train), heldout, seed)
    except ValueError as err:
        raise DatasetError(f"heldout_examples: {err}") from None
    if heldout == 0:
        raise DatasetError("heldout_examples must be positive to evaluate on a held-out split")
    if data.heldout_first:
        train_idx, heldout_idx = np.arange(heldout, len(data.x_train)), np.arange(heldout)
    return ImageArrays(data.x_train[train_idx], data.y_train[train_idx], data.x_train[heldout_idx],
                       data.y_train[heldout_idx], heldout_name(data.name, heldout, seed), data.class_names)


def heldout_name(dataset: str, heldout: int, seed: int) -> str:
    """The dataset name a held-out retraining records (and a rerun must match)."""
    return f"{dataset}:heldout={heldout},seed={seed}"
