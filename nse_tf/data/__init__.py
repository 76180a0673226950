"""Datasets for search and retraining.

``nse_tf.data.idx`` (Fashion-MNIST IDX reader, held-out split, mean/std) is
numpy-only so it works under the JAX backend where TensorFlow is absent; so are
``config`` (``DataConfig``, the search's data settings),
``folders`` (a ``folder:`` dataset's layout, shared with the search's pipeline),
``images`` (Pillow decoding, TensorFlow's resizing in numpy), ``checks`` (pixels and labels of npz arrays) and
``arrays`` (every kind the search reads, in memory, for retraining; ``tfds:`` through the pipeline). The
tf.data pipeline names are loaded lazily on first access, so ``import
nse_tf.data`` does not import TensorFlow either.
"""

from __future__ import annotations

import importlib
from typing import Any

from nse_tf.data.config import DataConfig
from nse_tf.data.idx import (
    DEFAULT_FASHION_MNIST_DIR,
    FASHION_MNIST_CLASS_NAMES,
    DataFileError,
    DataNotFoundError,
    FashionMnistArrays,
    heldout_split,
    load_fashion_mnist,
    mean_std,
    parse_idx,
    read_idx,
)

_LAZY_PIPELINE_NAMES = ("DataSplits", "load_splits", "SMALL_IMAGE_MAX")

__all__ = [
    "DataConfig",
    "DEFAULT_FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASS_NAMES",
    "DataFileError",
    "DataNotFoundError",
    "FashionMnistArrays",
    "heldout_split",
    "load_fashion_mnist",
    "mean_std",
    "parse_idx",
    "read_idx",
    *_LAZY_PIPELINE_NAMES,
]


def __getattr__(name: str) -> Any:
    """Imports nse_tf.data.pipeline (and so TensorFlow) only when asked."""
    if name in _LAZY_PIPELINE_NAMES:
        return getattr(importlib.import_module("nse_tf.data.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_PIPELINE_NAMES))
