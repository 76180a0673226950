"""Shared test helpers: a tiny Fashion-MNIST network (seconds per epoch on 2 cores) and random weights."""

from __future__ import annotations

import math

import keras
import numpy as np

from nse_tf.space.architecture import Architecture, NetworkSpec
from nse_tf.space.macro import get_space

TINY_SPACE = get_space("small", pool=("mb_k3_t1", "mb_k3_t3"), counts=(0, 0, 0, 0, 0, 0),
                       channels=(8, 8, 8, 16, 16, 16, 16), head_channels=32)
TINY = NetworkSpec(TINY_SPACE, Architecture.from_cells([[0], [1], [0, 1], [0], [1], [0]], TINY_SPACE.get_pool()),
                   "tiny")


def randomise_weights(model, seed: int) -> None:
    """Every weight random, BN moving statistics included, at a scale that keeps activations O(1)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        new = []
        for w in layer.weights:
            shape, name = tuple(w.shape), w.name.split("/")[-1].split(":")[0]
            if "kernel" in name:
                fan_in = math.prod(shape[:2]) if isinstance(layer, keras.layers.DepthwiseConv2D) \
                    else math.prod(shape[:-1])
                value = rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
            elif name == "gamma":
                value = rng.uniform(0.7, 1.3, shape)
            elif name == "moving_variance":
                value = rng.uniform(0.5, 2.0, shape)
            elif name in ("beta", "moving_mean", "bias"):
                value = rng.normal(0.0, 0.2, shape)
            else:
                value = np.asarray(w)
            new.append(value.astype("float32"))
        if new:
            layer.set_weights(new)


def write_fmnist_folder(root, classes: tuple[int, ...], train_per_class: int, test_per_class: int, size: int = 28,
                        rgb: bool = False) -> str:
    """A ``folder:`` dataset of Fashion-MNIST images as PNGs: ``root/{train,test}/<class name>/<i>.png``, the
    first images of each class, zero-padded to ``size`` and, with ``rgb``, grey repeated in three channels."""
    import os

    from PIL import Image

    from nse_tf.data.idx import FASHION_MNIST_CLASS_NAMES, load_fashion_mnist

    data = load_fashion_mnist()
    pad = (size - 28) // 2
    for split, x, y, count in (("train", data.x_train, data.y_train, train_per_class),
                               ("test", data.x_test, data.y_test, test_per_class)):
        for label in classes:
            folder = os.path.join(root, split, FASHION_MNIST_CLASS_NAMES[label].replace("/", "-"))
            os.makedirs(folder, exist_ok=True)
            for i, image in enumerate(x[y == label][:count]):
                image = np.pad(image[:, :, 0], ((pad, size - 28 - pad), (pad, size - 28 - pad)))
                Image.fromarray(np.stack([image] * 3, axis=-1) if rgb else image).save(
                    os.path.join(folder, f"{i:04d}.png"))
    return f"folder:{root}"
