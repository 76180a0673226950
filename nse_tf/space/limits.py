"""Sizes beyond sense: a network file (or a zoo entry's) asking for more is refused with one line before anything
is built or allocated, instead of a memory error or a hang. Every reader takes ``check_size=False`` to override.

The limits sit far above any network this project builds (Fashion-MNIST and ImageNet mobile networks: 21-22
searchable cells, at most a few thousand channels, 224 pixels, under 1 G MACs) and far below what exhausts
a machine's memory or time."""

from __future__ import annotations

MAX_CELLS = 1_000  # searchable cells (the method's spaces have 21-22); 200,000 hang the network builder
MAX_CHANNELS = 16_384  # a layer's channels after the width scale (mobile networks stay under 2,000)
MAX_HEAD_CHANNELS = 16_384  # the 1x1 convolution before pooling (1,280-1,984 in mobile networks)
MAX_SCALE = 100.0  # the width multiplier (0.35-2 in practice)
MAX_INPUT_SIZE = 4_096  # pixels a side (28 here, 224 for ImageNet); 10^7 fails to allocate one image
MAX_INPUT_CHANNELS = 1_024  # image channels (1, 3, 4; multispectral a few hundred)
MAX_CLASSES = 1_000_000  # classifier outputs (10 here, 1,000 or 21,841 for ImageNet)
MAX_MACS = 10**11  # multiply-accumulates per image: 100 G, 3x EfficientNet-B7; minutes an image on a CPU
MAX_PARAMS = 10**9  # 4 GB of float32 weights (15x ResNet-152's), more than one training process here holds
MAX_JSON_DEPTH = 32  # a network file nests 3 deep; Python's JSON parser recurses once per level

OVERRIDE = "check_size=False builds it anyway"


def check(field: str, value: float, limit: float, unit: str = "") -> None:
    """ValueError when ``value`` is over ``limit`` (or not a number): the one wording of every limit."""
    if not value <= limit:
        raise ValueError(f"{field}: {value:,}{unit} is beyond the limit of {limit:,}{unit} "
                         f"(nse_tf.space.limits; {OVERRIDE})")


def check_counts(counts: object) -> None:
    """The cells a space's raw ``counts`` ask for, before the space is built (building lists every cell)."""
    if isinstance(counts, (list, tuple)) and all(isinstance(c, (int, float)) for c in counts):
        check("counts", sum(counts), MAX_CELLS, " cells")
