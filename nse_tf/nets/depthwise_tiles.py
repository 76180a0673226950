"""Where the tiles of a large 'same' depthwise kernel read their input: the geometry that the TFLite exports
(``nse_tf.export.tiling``, Keras 3) and the quantization-aware tf_keras build (``nets.layers.TiledDepthwise``)
share, so that both compute the same sum of tiles.

XNNPACK, LiteRT's CPU delegate, has fast depthwise kernels up to 25 taps (5x5); a larger kernel runs as a sum
of 'valid' depthwise convs of at most 25 taps each, over slices of the input padded once as 'same' pads it.
"""

from __future__ import annotations

import dataclasses
import math

MAX_TAPS = 25  # XNNPACK's largest fast depthwise kernel, 5x5


def kernel_tiles(kernel: int, max_taps: int = MAX_TAPS) -> list[tuple[int, int, int, int]]:
    """(row0, row1, col0, col1) tiles of a ``kernel`` x ``kernel`` kernel, each of at most ``max_taps`` taps:
    the grid with the fewest tiles (7x7: three strips of 3, 3 and 1 rows; 9x9: four of at most 5x5; 11x11: six
    strips of 2 rows or less), so the fewest partial sums to add."""
    if kernel < 1 or max_taps < 1:
        raise ValueError(f"need kernel >= 1 and max_taps >= 1, got {kernel} and {max_taps}")
    best: tuple[int, int, int] | None = None
    for height in range(1, kernel + 1):
        width = min(kernel, max_taps // height)
        if width < 1:
            break
        count = math.ceil(kernel / height) * math.ceil(kernel / width)
        if best is None or count < best[0]:
            best = (count, height, width)
    _, height, width = best

    def spans(size: int) -> list[tuple[int, int]]:
        return [(start, min(start + size, kernel)) for start in range(0, kernel, size)]

    return [(r0, r1, c0, c1) for r0, r1 in spans(height) for c0, c1 in spans(width)]


def needs_tiling(kernel: tuple[int, int] | int, max_taps: int = MAX_TAPS) -> bool:
    """Whether a square kernel has more taps than XNNPACK's fast depthwise path takes."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    return kh == kw and kh * kw > max_taps


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding of one spatial axis: (before, after)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _reaches_input(start: int, stop: int, outputs: int, stride: int, pad_before: int, size: int) -> bool:
    """Whether kernel taps ``start:stop`` of one axis read any real (unpadded) input for some output position."""
    return any(pad_before <= o * stride + tap < pad_before + size for o in range(outputs) for tap in range(start, stop))


@dataclasses.dataclass(frozen=True)
class TileWindow:
    """One tile of the kernel and the slice of the padded input that its 'valid' conv reads."""

    index: int  # its place in ``kernel_tiles``: tf_keras layer names and weight copies use it
    rows: tuple[int, int]  # kernel rows r0:r1
    cols: tuple[int, int]  # kernel columns c0:c1
    height: int  # rows of the padded input it reads, from row r0
    width: int  # columns, from column c0


@dataclasses.dataclass(frozen=True)
class TiledGeometry:
    """A tiled 'same' depthwise conv over a ``height`` x ``width`` input: its padding and its live tiles."""

    pad_h: tuple[int, int]
    pad_w: tuple[int, int]
    windows: tuple[TileWindow, ...]

    @staticmethod
    def of(height: int, width: int, kernel: int, stride: int, max_taps: int = MAX_TAPS) -> "TiledGeometry":
        """Tiles that read only padding (a small input under a large kernel) are left out: their sum is exactly
        zero, and int8 calibration would give it a scale of 0, which XNNPACK refuses."""
        pad_h, pad_w = same_padding(height, kernel, stride), same_padding(width, kernel, stride)
        out_h, out_w = math.ceil(height / stride), math.ceil(width / stride)
        windows = []
        for index, (r0, r1, c0, c1) in enumerate(kernel_tiles(kernel, max_taps)):
            if (_reaches_input(r0, r1, out_h, stride, pad_h[0], height)
                    and _reaches_input(c0, c1, out_w, stride, pad_w[0], width)):
                windows.append(TileWindow(index, (r0, r1), (c0, c1), (out_h - 1) * stride + (r1 - r0),
                                          (out_w - 1) * stride + (c1 - c0)))
        return TiledGeometry(pad_h, pad_w, tuple(windows))
