"""Decoding and resizing images with Pillow and numpy, as the search's tf.data pipeline does with TensorFlow.

Retraining also runs under the JAX backend, where TensorFlow is absent, yet a searched pick must retrain on the
images the search saw. So ``resize`` computes what ``tf.image.resize`` computes (bilinear, half-pixel centres;
with ``antialias`` the kernel widened by the downscaling factor, as TensorFlow's scale-and-translate does),
and ``evaluation_image`` is the pipeline's evaluation transform (``pipeline._Recipe.evaluate``): small images
(at most ``SMALL_IMAGE_MAX`` pixels a side) resized to the output size, larger ones resized on their shorter
side to size / ``CENTER_CROP_FRACTION`` and centre-cropped. Pixels come back as uint8: the pipeline's
float values rounded, at most half a grey level from what the search fed its network.
"""

from __future__ import annotations

import math

import numpy as np

from nse_tf.data.idx import DataFileError

# Images at most this many pixels on a side use the small-image recipe (pad-and-crop translation, plain
# resize); larger ones use Inception-style crops and the centre crop below for evaluation.
SMALL_IMAGE_MAX = 64
# Evaluation of large images: resize the shorter side to size / 0.875, then centre-crop (ImageNet's 224 <- 256).
CENTER_CROP_FRACTION = 0.875
# RGB -> grey as TensorFlow's PNG decoder does for channels=1: libpng's png_set_rgb_to_gray(0.299, 0.587) in
# its fixed point (weights over 2**15, truncated); the same for BMP and GIF, which TensorFlow cannot read as grey.
_GREY_WEIGHTS = (9797, 19234, 3737)


def _open_lazy(path: str):  # -> PIL.Image.Image, header read
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataFileError(f"image {path!r} cannot be decoded ({err}): remove or replace it") from None


def _open(path: str):  # -> PIL.Image.Image, pixels decoded
    image = _open_lazy(path)
    try:
        image.load()
    except (OSError, ValueError, SyntaxError) as err:
        raise DataFileError(f"image {path!r} cannot be decoded ({err}): remove or replace it") from None
    return image


def verify_image(path: str) -> None:
    """A ``DataFileError`` naming ``path`` unless its image data is whole: a PNG's chunks and checksums (Pillow's
    ``verify``: what libpng, TensorFlow's decoder, checks and Pillow's own decoding does not), other formats
    decoded (a JPEG at 1/8 scale, which still reads every coded block). Why: the search's tf.data pipeline
    decodes its images only as it trains, so a truncated or garbled file stopped it mid-training naming no file."""
    from PIL import Image

    image = _open_lazy(path)
    try:
        with image:
            if (image.format or "").upper() == "PNG":
                image.verify()
            else:
                if (image.format or "").upper() == "JPEG":
                    image.draft("L", (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
                image.load()
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
        raise DataFileError(f"image {path!r} cannot be decoded ({err}): remove or replace it") from None


def _pixels(path: str) -> tuple[np.ndarray, str]:
    """The image's pixels as TensorFlow's decoder gives them before any channel conversion: (h, w, bands) uint8
    with 1 (grey), 2 (grey, alpha), 3 (RGB) or 4 (RGBA) bands (a palette expanded, 16-bit grey cut to 8 bits),
    and the file's format."""
    image = _open(path)
    fmt = (image.format or "").upper()
    if image.mode == "P":
        mode = "RGBA" if "transparency" in image.info else "RGB"
    elif image.mode in ("1", "L", "LA", "RGB", "RGBA"):
        mode = image.mode if image.mode != "1" else "L"
    elif image.mode.startswith("I;16"):
        pixels = np.asarray(image).astype(np.uint16) >> 8  # libpng's 16 -> 8 bit: the high byte
        return pixels.astype(np.uint8)[:, :, None], fmt
    else:
        mode = "RGB"  # CMYK, YCbCr, 32-bit modes: as RGB
    try:
        pixels = np.asarray(image.convert(mode) if image.mode != mode else image)
    except (OSError, ValueError) as err:
        raise DataFileError(f"image {path!r}: cannot convert its {image.mode} pixels to {mode} ({err})") from None
    return (pixels[:, :, None] if pixels.ndim == 2 else pixels), fmt


def image_channels(path: str) -> int:
    """1 or 3: the channels a folder dataset keeps when its first image is ``path`` (alpha dropped)."""
    return {1: 1, 2: 1, 3: 3, 4: 3}[_pixels(path)[0].shape[2]]


def decode_image(path: str, channels: int) -> np.ndarray:
    """``path`` as a uint8 (height, width, channels) array, ``channels`` 1 or 3; alpha dropped (not composited),
    the first frame of an animation, as ``tf.io.decode_image(..., channels, expand_animations=False)``."""
    pixels, fmt = _pixels(path)
    pixels = pixels[:, :, :3] if pixels.shape[2] >= 3 else pixels[:, :, :1]  # drop alpha
    if channels == 3 and pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if channels == 1 and pixels.shape[2] == 3:
        if fmt == "JPEG":  # libjpeg's own grey output (the luma it stored), as TensorFlow asks libjpeg for it
            return _jpeg_grey(path)
        r, g, b = (pixels[:, :, i].astype(np.int64) for i in range(3))
        wr, wg, wb = _GREY_WEIGHTS
        return ((wr * r + wg * g + wb * b) >> 15).astype(np.uint8)[:, :, None]
    return np.ascontiguousarray(pixels)


def _jpeg_grey(path: str) -> np.ndarray:
    image = _open_lazy(path)
    image.draft("L", image.size)  # decode the luma alone, at full size
    try:
        return np.asarray(image.convert("L"))[:, :, None]
    except (OSError, ValueError) as err:
        raise DataFileError(f"image {path!r} cannot be decoded ({err}): remove or replace it") from None


def _weights(in_size: int, out_size: int) -> np.ndarray:
    """The (out_size, in_size) matrix of TensorFlow's antialiased bilinear resampling along one axis
    (scale-and-translate: a triangle kernel widened by the downscaling factor, normalised)."""
    inv_scale = in_size / out_size
    kernel_scale = max(inv_scale, 1.0)
    centres = (np.arange(out_size) + 0.5) * inv_scale  # sample positions in input pixel units
    positions = np.arange(in_size) + 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(positions[None, :] - centres[:, None]) / kernel_scale)
    total = weights.sum(axis=1, keepdims=True)
    return weights / np.where(total > 0, total, 1.0)


def _bilinear(image: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """TensorFlow's ``ResizeBilinear`` with half-pixel centres, in its float32 arithmetic (so that rounding its
    result gives the same grey levels: a float64 sum lands on the other side of .5 now and then)."""
    def axis(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = np.float32(in_size) / np.float32(out_size)
        position = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
        floor = np.floor(position)
        lower = np.maximum(floor, 0).astype(np.int64)
        upper = np.minimum(np.ceil(position), in_size - 1).astype(np.int64)
        return lower, upper, (position - floor).astype(np.float32)

    (top, bottom, y_lerp), (left, right, x_lerp) = axis(image.shape[0], out_hw[0]), axis(image.shape[1], out_hw[1])
    x = image.astype(np.float32)
    x_lerp = x_lerp[None, :, None]
    upper_row = x[top][:, left] + (x[top][:, right] - x[top][:, left]) * x_lerp
    lower_row = x[bottom][:, left] + (x[bottom][:, right] - x[bottom][:, left]) * x_lerp
    return upper_row + (lower_row - upper_row) * y_lerp[:, None, None]


def resize(image: np.ndarray, out_hw: tuple[int, int], antialias: bool = False) -> np.ndarray:
    """``tf.image.resize(image, out_hw, antialias=antialias)`` (bilinear) of one (h, w, c) image, as float32."""
    if not antialias:
        return _bilinear(image, out_hw)
    h, w = image.shape[:2]
    rows, cols = _weights(h, out_hw[0]), _weights(w, out_hw[1])
    out = np.einsum("ij,jkc,lk->ilc", rows, image.astype(np.float64), cols)
    return out.astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Clipped to [0, 255] and rounded half to even (``tf.round``), as uint8."""
    return np.round(np.clip(image, 0.0, 255.0)).astype(np.uint8)


def centre_crop_size(h: int, w: int, out_hw: tuple[int, int]) -> tuple[int, int]:
    """The size a large image is resized to before its centre crop (``pipeline._resize_shorter_center_crop``)."""
    target = math.ceil(max(out_hw) / CENTER_CROP_FRACTION)
    scale = np.float32(target) / np.float32(min(h, w))
    return (max(int(np.round(np.float32(h) * scale)), out_hw[0]), max(int(np.round(np.float32(w) * scale)), out_hw[1]))


def evaluation_image(image: np.ndarray, out_hw: tuple[int, int], small: bool) -> np.ndarray:
    """The pipeline's evaluation transform of one uint8 image to ``out_hw``, as uint8."""
    if small:
        return image if image.shape[:2] == tuple(out_hw) else to_uint8(resize(image, out_hw, antialias=True))
    new_h, new_w = centre_crop_size(image.shape[0], image.shape[1], out_hw)
    resized = resize(image, (new_h, new_w), antialias=True)
    top, left = (new_h - out_hw[0]) // 2, (new_w - out_hw[1]) // 2
    return to_uint8(resized[top:top + out_hw[0], left:left + out_hw[1]])
