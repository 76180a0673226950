"""A ``folder:`` dataset in memory, without TensorFlow, holding the images the search's pipeline feeds its network.

The search's folder source (``pipeline._folder_source``) and this reader share the listing (``folders``): the
same classes, labels, splits and order. Sizes are handled as there: without ``image_size`` every image is
resized (plain bilinear) to the first one's size, with it each keeps its own size until the evaluation
transform; then the evaluation transform (``images.evaluation_image``) brings each to the output size.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nse_tf.data import folders, images


@dataclasses.dataclass(frozen=True)
class FolderImages:
    """A folder's images as uint8 NHWC arrays and int64 labels (``arrays.ImageArrays`` wraps them)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]


def _decoded(paths: tuple[str, ...], channels: int, fixed_hw: tuple[int, int] | None,
             out_hw: tuple[int, int], small: bool) -> np.ndarray:
    out = np.zeros((len(paths), *out_hw, channels), np.uint8)
    for i, path in enumerate(paths):
        image = images.decode_image(path, channels)
        if fixed_hw is not None and image.shape[:2] != fixed_hw:
            image = images.to_uint8(images.resize(image, fixed_hw))
        out[i] = images.evaluation_image(image, out_hw, small)
    return out


def read_folder(root: str, dataset: str, image_size: int | None = None) -> FolderImages:
    """``folder:<root>`` (named ``dataset``) in memory: training images in the listing's order (the order the
    search's held-out split indexes), and the test/ (or val/, validation/) images, possibly none."""
    layout = folders.list_folder(root, dataset)
    first = images.decode_image(layout.train_paths[0], images.image_channels(layout.train_paths[0]))
    channels = first.shape[2]
    fixed_hw = tuple(first.shape[:2]) if image_size is None else None
    out_hw = fixed_hw or (image_size, image_size)
    small = max(out_hw) <= images.SMALL_IMAGE_MAX
    return FolderImages(x_train=_decoded(layout.train_paths, channels, fixed_hw, out_hw, small),
                        y_train=np.asarray(layout.train_labels, np.int64),
                        x_test=_decoded(layout.test_paths, channels, fixed_hw, out_hw, small),
                        y_test=np.asarray(layout.test_labels, np.int64), class_names=layout.class_names)
