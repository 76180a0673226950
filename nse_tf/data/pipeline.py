"""tf.data input pipelines with one interface for every data source.

A source ("fashion_mnist", "tfds:<name>", "folder:<path>") only has to give
three finite, deterministically ordered datasets of raw (uint8 image, int32
label) pairs -- train, held-out, test -- plus a little metadata. Everything
after that (shuffling, augmentation, resizing, batching) is shared, so the
search and retraining code never cares where the images came from.

Images leave the pipeline as float32 raw pixel values in [0, 255], shape
(H, W, C); the models normalise inside themselves (see ``mean_std``), which
keeps exported TFLite models self-contained.

Augmentation is deterministic for a given ``DataConfig.seed``: each training
element gets its own stateless seed ``(seed, position in the stream)``, so
parallel ``map`` calls cannot change the result.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from nse_tf.data import folders, idx, images
from nse_tf.data.config import DataConfig  # re-exported: TF-free, lives in config.py
from nse_tf.data.idx import DatasetError, mean_std  # re-exported: TF-free, lives in idx.py
from nse_tf.data.names import PIPELINE_KINDS, parse_dataset

__all__ = ["DataConfig", "DataSplits", "load_splits", "mean_std", "SMALL_IMAGE_MAX"]

# Images at most this many pixels on a side use the small-image recipe
# (pad-and-crop translation); larger ones use Inception-style crops. (Kept in
# nse_tf.data.images with the evaluation transform that retraining repeats in numpy.)
SMALL_IMAGE_MAX = images.SMALL_IMAGE_MAX
# Translation amplitude of the small-image recipe, in pixels.
_PAD = 4
# Evaluation of large images: resize the shorter side to size / 0.875, then
# centre-crop (the usual ImageNet protocol, 224 -> 256).
_CENTER_CROP_FRACTION = images.CENTER_CROP_FRACTION

_AUTOTUNE = tf.data.AUTOTUNE


def _parse_dataset(value: str) -> tuple[str, str]:
    """Splits a DataConfig.dataset string into (kind, argument): the shared grammar, kinds this stack reads."""
    name = parse_dataset(value, PIPELINE_KINDS, "the tf.data pipeline (search)")
    return name.kind, name.argument


@dataclasses.dataclass
class DataSplits:
    """The datasets a search or a retraining run needs, plus their shapes.

    train: infinite, reshuffled each epoch, augmented if config.augment,
        batched with drop_remainder (fixed shapes for tf.distribute).
    train_plain: the same training examples once, in order, un-augmented
        (BN recalibration, training accuracy).
    heldout: held-out examples (carved from the training data) once, in order.
    heldout_repeat: held-out examples forever, shuffled, un-augmented,
        drop_remainder (gate steps).
    test: the test split once, in order; never used by search.
    """

    train: tf.data.Dataset
    train_plain: tf.data.Dataset
    heldout: tf.data.Dataset
    heldout_repeat: tf.data.Dataset
    test: tf.data.Dataset
    input_shape: tuple[int, int, int]
    num_classes: int
    num_train: int
    num_heldout: int
    num_test: int
    class_names: tuple[str, ...]
    config: DataConfig

    @property
    def steps_per_epoch(self) -> int:
        """Full training batches per pass over the training examples."""
        return max(1, self.num_train // self.config.batch_size)


@dataclasses.dataclass(frozen=True)
class _RawSource:
    """What every source provides: finite, ordered (uint8 image, int32 label).

    ``native_shape`` may have None height/width (variable-size images).
    """

    train: tf.data.Dataset
    heldout: tf.data.Dataset
    test: tf.data.Dataset
    native_shape: tuple[int | None, int | None, int]
    num_train: int
    num_heldout: int
    num_test: int
    class_names: tuple[str, ...]
    cacheable: bool  # small enough to keep decoded images in memory


def _check_heldout(config: DataConfig, total_train: int) -> None:
    if config.heldout_examples >= total_train:
        raise DatasetError(
            f"heldout_examples={config.heldout_examples} must be smaller than the "
            f"number of training examples of {config.dataset!r} ({total_train})"
        )


# --------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------


def _fashion_mnist_source(config: DataConfig, _arg: str) -> _RawSource:
    arrays = idx.load_fashion_mnist(config.data_dir)
    total = arrays.x_train.shape[0]
    _check_heldout(config, total)
    train_idx, heldout_idx = idx.heldout_split(total, config.heldout_examples, config.seed)

    def slices(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))

    return _RawSource(
        train=slices(arrays.x_train[train_idx], arrays.y_train[train_idx]),
        heldout=slices(arrays.x_train[heldout_idx], arrays.y_train[heldout_idx]),
        test=slices(arrays.x_test, arrays.y_test),
        native_shape=tuple(arrays.x_train.shape[1:]),  # type: ignore[arg-type]
        num_train=len(train_idx),
        num_heldout=len(heldout_idx),
        num_test=arrays.x_test.shape[0],
        class_names=arrays.class_names,
        cacheable=False,  # already in memory
    )


def _tfds_source(config: DataConfig, name: str) -> _RawSource:
    """A TFDS dataset: held-out = train[:N], train = train[N:].

    The held-out split is always carved from 'train' (TFDS shuffles examples
    when it prepares a dataset, so the first N are a fair sample). The test
    split is 'test', or 'validation' when there is no 'test' (imagenette,
    imagenet2012).
    """
    import tensorflow_datasets as tfds  # heavy; only needed for tfds sources

    try:
        builder_cls = tfds.builder_cls(name.split("/")[0].split(":")[0])
    except tfds.core.registered.DatasetNotFoundError as e:
        raise DatasetError(f"unknown tfds dataset in dataset={config.dataset!r}: {e}") from e
    download_config = None
    data_dir = config.data_dir
    if getattr(builder_cls, "MANUAL_DOWNLOAD_INSTRUCTIONS", None) and config.data_dir:
        download_config = tfds.download.DownloadConfig(manual_dir=config.data_dir)
        data_dir = None
    builder = tfds.builder(name, data_dir=data_dir)
    builder.download_and_prepare(download_config=download_config)

    info = builder.info
    # Split metadata can be absent (e.g. under tfds.testing.mock_data); then
    # assume the usual 'train'/'test' and let as_dataset complain if wrong.
    known = list(info.splits) or ["train", "test"]
    if "train" not in known:
        raise DatasetError(f"dataset {config.dataset!r} has no 'train' split (has {known})")
    test_name = next((s for s in ("test", "validation") if s in known), None)
    if test_name is None:
        raise DatasetError(
            f"dataset {config.dataset!r} has neither a 'test' nor a 'validation' split "
            f"(has {known})"
        )

    def read(split: str) -> tuple[tf.data.Dataset, int]:
        ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        size = int(ds.cardinality())
        if size < 0:  # unknown cardinality: trust the split metadata
            size = info.splits[split].num_examples
        ds = ds.map(
            lambda x, y: (tf.cast(x, tf.uint8), tf.cast(y, tf.int32)),
            num_parallel_calls=_AUTOTUNE,
        )
        return ds, size

    _, total = read("train")
    _check_heldout(config, total)
    n = config.heldout_examples
    train, num_train = read(f"train[{n}:]")
    heldout, num_heldout = read(f"train[:{n}]")
    test, num_test = read(test_name)

    keys = info.supervised_keys
    if not keys or len(keys) != 2 or not all(isinstance(k, str) for k in keys):
        raise ValueError(
            f"dataset {config.dataset!r} has no (image, label) supervised keys "
            f"(got {keys!r}); only image classification datasets are supported"
        )
    image_feature, label_feature = info.features[keys[0]], info.features[keys[1]]
    shape = tuple(image_feature.shape)
    if len(shape) != 3:
        raise ValueError(f"dataset {config.dataset!r}: expected (H, W, C) images, got {shape}")

    h, w, c = shape
    return _RawSource(
        train=train,
        heldout=heldout,
        test=test,
        native_shape=(h, w, c),
        num_train=num_train,
        num_heldout=num_heldout,
        num_test=num_test,
        class_names=tuple(label_feature.names),
        cacheable=h is not None and w is not None and max(h, w) <= SMALL_IMAGE_MAX,
    )


def _folder_source(config: DataConfig, root: str) -> _RawSource:
    """Images in <root>/<class>/..., or <root>/train/<class>/... + <root>/test/<class>/... (``folders.list_folder``,
    which the retraining's numpy reader shares).

    Class names are the sorted sub-folder names of the training tree. The
    held-out split is a seeded sample of the training images (heldout_split).
    Without a test/ (or val/, validation/) folder the test split is empty.
    """
    layout = folders.list_folder(root, config.dataset)
    train_paths, train_labels = list(layout.train_paths), list(layout.train_labels)
    test_paths, test_labels = list(layout.test_paths), list(layout.test_labels)
    class_names = layout.class_names
    _check_heldout(config, len(train_paths))
    train_idx, heldout_idx = idx.heldout_split(len(train_paths), config.heldout_examples, config.seed)

    first = tf.io.decode_image(tf.io.read_file(train_paths[0]), expand_animations=False)
    h, w, c = (int(d) for d in first.shape)
    channels = {1: 1, 2: 1, 3: 3, 4: 3}[c]  # drop alpha
    # Without a target size every image is brought to the first one's size;
    # with a target size the shared preprocessing resizes anyway.
    fixed_hw = (h, w) if config.image_size is None else None

    def decode(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        if fixed_hw is not None:
            resized = tf.image.resize(image, fixed_hw)
            image = tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)
            image = tf.ensure_shape(image, (*fixed_hw, channels))
        else:
            image = tf.ensure_shape(image, (None, None, channels))
        return image, label

    def make(paths: list[str], labels: list[int]) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensor_slices(
            (tf.constant(paths, tf.string), tf.constant(labels, tf.int32))
        )
        return ds.map(decode, num_parallel_calls=_AUTOTUNE)

    tp, tl = np.asarray(train_paths), np.asarray(train_labels, np.int32)
    small = max(h, w) <= SMALL_IMAGE_MAX if fixed_hw else False
    return _RawSource(
        train=make(list(tp[train_idx]), list(tl[train_idx])),
        heldout=make(list(tp[heldout_idx]), list(tl[heldout_idx])),
        test=make(test_paths, test_labels),
        native_shape=(fixed_hw[0], fixed_hw[1], channels) if fixed_hw else (None, None, channels),
        num_train=len(train_idx),
        num_heldout=len(heldout_idx),
        num_test=len(test_paths),
        class_names=class_names,
        cacheable=small,
    )


_SOURCES: dict[str, Callable[[DataConfig, str], _RawSource]] = {
    "fashion_mnist": _fashion_mnist_source,
    "tfds": _tfds_source,
    "folder": _folder_source,
}


# --------------------------------------------------------------------------
# Preprocessing and augmentation
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Recipe:
    """The per-image train/eval transforms for one output size."""

    out_hw: tuple[int, int]
    small: bool
    resize_small: bool  # small recipe, source size differs from out_hw

    def evaluate(self, image: tf.Tensor) -> tf.Tensor:
        """uint8 (h, w, c) -> float32 (H, W, C) in [0, 255], no randomness."""
        image = tf.cast(image, tf.float32)
        if self.small:
            if self.resize_small:
                image = tf.image.resize(image, self.out_hw, antialias=True)
        else:
            image = _resize_shorter_center_crop(image, self.out_hw)
        return tf.clip_by_value(image, 0.0, 255.0)

    def augment(self, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Random translation/crop + horizontal flip (+ colour jitter for large RGB images), seeded statelessly."""
        seeds = tf.random.experimental.stateless_split(seed, num=2)
        c = image.shape[-1]
        if self.small:
            image = self.evaluate(image)
            h, w = self.out_hw
            padded = tf.pad(image, [[_PAD, _PAD], [_PAD, _PAD], [0, 0]])  # zero padding
            image = tf.image.stateless_random_crop(padded, (h, w, c), seed=seeds[0])
        else:
            image = _random_resized_crop(tf.cast(image, tf.float32), self.out_hw, seeds[0])
            if c == 3:
                jitter_seed = tf.random.experimental.stateless_fold_in(seeds[0], 1)  # crops and flips as before
                image = color_jitter(tf.clip_by_value(image, 0.0, 255.0), jitter_seed)
        image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
        return tf.clip_by_value(image, 0.0, 255.0)


# The reference's ImageNet training transform: torchvision ColorJitter(0.2, 0.2, 0.2, 0.1).
COLOR_JITTER = (0.2, 0.2, 0.2, 0.1)  # brightness, contrast, saturation, hue


def color_jitter(image: tf.Tensor, seed: tf.Tensor, strength: tuple[float, ...] = COLOR_JITTER) -> tf.Tensor:
    """torchvision's ColorJitter on an RGB image in [0, 255]: brightness, contrast and saturation factors
    uniform in [1 - s, 1 + s] (blends with black, the mean grey and the greyscale image), then a hue shift
    uniform in [-h, h] of the colour circle. torchvision draws the order of the four at random; here it is
    fixed, as that order changes little and a fixed one keeps the transform one graph."""
    brightness, contrast, saturation, hue = strength
    factors = tf.random.stateless_uniform([4], seed, minval=-1.0, maxval=1.0)
    image = tf.clip_by_value(image * (1.0 + brightness * factors[0]), 0.0, 255.0)
    mean_grey = tf.reduce_mean(tf.image.rgb_to_grayscale(image))
    image = tf.clip_by_value(mean_grey + (1.0 + contrast * factors[1]) * (image - mean_grey), 0.0, 255.0)
    grey = tf.image.rgb_to_grayscale(image)
    image = tf.clip_by_value(grey + (1.0 + saturation * factors[2]) * (image - grey), 0.0, 255.0)
    return tf.image.adjust_hue(image / 255.0, hue * factors[3]) * 255.0


def _resize_shorter_center_crop(image: tf.Tensor, out_hw: tuple[int, int]) -> tf.Tensor:
    """Resizes the shorter side to out/0.875 and centre-crops out_hw."""
    target = math.ceil(max(out_hw) / _CENTER_CROP_FRACTION)
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = target / tf.minimum(h, w)
    new_h = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), out_hw[0])
    new_w = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), out_hw[1])
    image = tf.image.resize(image, tf.stack([new_h, new_w]), antialias=True)
    top = (new_h - out_hw[0]) // 2
    left = (new_w - out_hw[1]) // 2
    image = tf.slice(image, tf.stack([top, left, 0]), tf.stack([out_hw[0], out_hw[1], -1]))
    return tf.ensure_shape(image, (out_hw[0], out_hw[1], image.shape[-1]))


def _random_resized_crop(image: tf.Tensor, out_hw: tuple[int, int], seed: tf.Tensor) -> tf.Tensor:
    """Inception-style crop: 8-100% of the area, aspect 3/4-4/3, resized to out_hw."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, size)
    crop = tf.image.resize(crop, out_hw, antialias=True)
    return tf.ensure_shape(crop, (out_hw[0], out_hw[1], image.shape[-1]))


def _make_recipe(config: DataConfig, native: tuple[int | None, int | None, int]) -> _Recipe:
    h, w, _ = native
    if config.image_size is None:
        if h is None or w is None:
            raise DatasetError(
                f"image_size must be set for dataset {config.dataset!r}: its images "
                "have no fixed size"
            )
        out_hw = (h, w)
    else:
        out_hw = (config.image_size, config.image_size)
    small = max(out_hw) <= SMALL_IMAGE_MAX
    return _Recipe(out_hw=out_hw, small=small, resize_small=small and (h, w) != out_hw)


# --------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------


def load_splits(config: DataConfig) -> DataSplits:
    """Builds all pipelines for ``config`` (reads metadata, not the images)."""
    kind, arg = _parse_dataset(config.dataset)
    raw = _SOURCES[kind](config, arg)
    recipe = _make_recipe(config, raw.native_shape)
    channels = raw.native_shape[2]
    input_shape = (recipe.out_hw[0], recipe.out_hw[1], channels)
    bs = config.batch_size

    train_raw, heldout_raw = raw.train, raw.heldout
    if raw.cacheable:
        train_raw, heldout_raw = train_raw.cache(), heldout_raw.cache()

    def plain(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return recipe.evaluate(image), label

    def augmented(element: tuple[tf.Tensor, tf.Tensor], index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, label = element
        seed = tf.stack([tf.constant(config.seed, tf.int64), index])
        return recipe.augment(image, seed), label

    def finite(ds: tf.data.Dataset) -> tf.data.Dataset:
        return ds.map(plain, num_parallel_calls=_AUTOTUNE).batch(bs).prefetch(_AUTOTUNE)

    train = train_raw.shuffle(config.shuffle_buffer, seed=config.seed, reshuffle_each_iteration=True)
    train = train.repeat()
    if config.augment:
        train = tf.data.Dataset.zip((train, tf.data.Dataset.counter()))
        train = train.map(augmented, num_parallel_calls=_AUTOTUNE)
    else:
        train = train.map(plain, num_parallel_calls=_AUTOTUNE)
    train = train.batch(bs, drop_remainder=True).prefetch(_AUTOTUNE)

    heldout_repeat = (
        heldout_raw.shuffle(config.shuffle_buffer, seed=config.seed + 1, reshuffle_each_iteration=True)
        .repeat()
        .map(plain, num_parallel_calls=_AUTOTUNE)
        .batch(bs, drop_remainder=True)
        .prefetch(_AUTOTUNE)
    )

    return DataSplits(
        train=train,
        train_plain=finite(raw.train),
        heldout=finite(raw.heldout),
        heldout_repeat=heldout_repeat,
        test=finite(raw.test),
        input_shape=input_shape,
        num_classes=len(raw.class_names),
        num_train=raw.num_train,
        num_heldout=raw.num_heldout,
        num_test=raw.num_test,
        class_names=raw.class_names,
        config=config,
    )
