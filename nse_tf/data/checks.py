"""Checks of image arrays a user hands over (``npz:``), before any training: pixels and labels that would train
silently into a useless network are refused with one line naming the array.

Why: the networks normalise raw 0-255 pixels inside themselves, so NaN pixels, complex ones, integers up to 1020
or floats scaled to 0-1 all trained without a complaint and gave chance-level accuracy; a test image of another
size than the training ones, or a class with no training images, failed later in a traceback or not at all.
Numpy only: retraining also runs under JAX, where TensorFlow is absent.
"""

from __future__ import annotations

import numpy as np

from nse_tf.data.idx import DatasetError

PIXEL_MAX = 255
# The flag (and argument) that accepts float pixels which all lie in [0, 1] as they are.
ALLOW_0_1 = "allow_0_1_pixels"


def check_pixels(x: np.ndarray, where: str, allow_0_1_pixels: bool = False) -> None:
    """``x`` (the images ``where`` names) as real pixels in 0-255, or a DatasetError saying what is wrong; float
    pixels that all lie in [0, 1] are refused as scaled to 0-1 unless ``allow_0_1_pixels``."""
    if np.issubdtype(x.dtype, np.complexfloating):
        raise DatasetError(f"{where}: complex pixels ({x.dtype}); images must hold real values in 0-{PIXEL_MAX}")
    if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.number):
        raise DatasetError(f"{where}: pixels of dtype {x.dtype}; images must hold numbers in 0-{PIXEL_MAX}")
    low, high = x.min(), x.max()  # NaN propagates to both: no array-sized temporary on the good path
    if np.issubdtype(x.dtype, np.floating):
        _check_float_pixels(x, where, (float(low), float(high)), allow_0_1_pixels)
    elif low < 0 or high > PIXEL_MAX:
        raise DatasetError(f"{where}: integer pixels from {int(low)} to {int(high)}; they must lie in 0-{PIXEL_MAX} "
                           "(rescale them, or convert 16-bit images to 8 bits)")


def _check_float_pixels(x: np.ndarray, where: str, bounds: tuple[float, float], allow_0_1_pixels: bool) -> None:
    low, high = bounds
    if not (np.isfinite(low) and np.isfinite(high)):
        nan, inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
        found = ", ".join(f"{n:,} {what}" for n, what in ((nan, "NaN"), (inf, "infinite")) if n)
        raise DatasetError(f"{where}: {found} pixel value(s); every pixel must be a number in 0-{PIXEL_MAX}")
    if low < 0 or high > PIXEL_MAX:
        raise DatasetError(f"{where}: float pixels from {low:g} to {high:g}; they must lie in 0-{PIXEL_MAX} (the "
                           "networks normalise raw pixels themselves: undo any normalisation first)")
    if high <= 1.0 and not allow_0_1_pixels:
        raise DatasetError(f"{where}: float pixels all lie in 0-{high:g}, as if scaled to 0-1, but the networks "
                           f"expect 0-{PIXEL_MAX}: multiply them by {PIXEL_MAX} (or set {ALLOW_0_1}, if that "
                           "scale is meant)")


def check_same_images(x_train: np.ndarray, x_test: np.ndarray, where: str) -> None:
    """Training and test images of one size and channel count (one network reads both)."""
    if x_train.shape[1:] != x_test.shape[1:]:
        def dims(x: np.ndarray) -> str:
            return "x".join(str(d) for d in x.shape[1:])

        raise DatasetError(f"{where}: x_train holds {dims(x_train)} images but x_test {dims(x_test)} ones "
                           "(height x width x channels); both splits must hold images of one size and channel count")


def check_classes(y_train: np.ndarray, y_test: np.ndarray, where: str) -> None:
    """Every class from 0 to the largest label has training images, and the test labels are classes the
    training labels know: a class without training images cannot be learnt, and it would still widen the
    classifier (the classes are counted from the largest label)."""
    known = np.unique(y_train)
    if y_test.size:
        unknown = np.setdiff1d(np.unique(y_test), known)
        if unknown.size:
            raise DatasetError(f"{where}: y_test holds label(s) {_few(unknown)} that no training image has (y_train's "
                               f"labels: {_few(known)}); a class needs training images")
    if known.size and int(known[-1]) + 1 != known.size:
        raise DatasetError(f"{where}: y_train has no images of class(es) {_few(_gaps(known))} (its labels run "
                           f"0-{int(known[-1])}); number the classes from 0 without gaps")


def _gaps(sorted_labels: np.ndarray, limit: int = 6) -> np.ndarray:
    """The first ``limit`` numbers from 0 up that ``sorted_labels`` (unique, non-negative) lacks."""
    missing: list[int] = []
    expected = 0
    for label in sorted_labels.tolist():
        while expected < label and len(missing) < limit:
            missing.append(expected)
            expected += 1
        if len(missing) >= limit:
            break
        expected = label + 1
    return np.asarray(missing)


def _few(values: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "")
