"""Sizes beyond sense: a network file (or a zoo entry's) asking for more is refused with one line before anything
is built or allocated, instead of a memory error or a hang. Every reader takes ``check_size=False`` to override
(the command lines that read a network: ``--allow_large``). A refusal is a ``SizeLimitError``, so a caller
gives its own way to override (``SizeLimitError.line``) by the error's class, never by its text.

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
FLAG_OVERRIDE = "pass --allow_large to build it anyway"  # what the command lines that read a network say


class SizeLimitError(ValueError):
    """A size beyond its limit. ``quantity`` names what is too large (``channels``, ``MACs``); ``str`` ends in
    the library's way to override (``check_size=False``), ``line(advice)`` in another (a command line's flag)."""

    def __init__(self, quantity: str, text: str, prefix: str = ""):
        self.quantity, self.text, self.prefix = quantity, text, prefix
        super().__init__(self.line(OVERRIDE))

    def __reduce__(self):  # pickles (a worker process's error) with its parts, not only its message
        return type(self), (self.quantity, self.text, self.prefix)

    def line(self, advice: str = FLAG_OVERRIDE) -> str:
        """The refusal with ``advice`` as its way to override."""
        return f"{self.prefix}{self.text} (nse_tf.space.limits; {advice})"

    def within(self, source: str, cls: "type[SizeLimitError] | None" = None) -> "SizeLimitError":
        """The same refusal prefixed by ``source`` (the file it came from), as ``cls`` (default: its own class)."""
        return (cls or type(self))(self.quantity, self.text, f"{source}: {self.prefix}")


def check(field: str, value: float, limit: float, unit: str = "") -> None:
    """SizeLimitError (a ValueError) when ``value`` is over ``limit`` (or not a number): the one wording of
    every limit."""
    if not value <= limit:
        raise SizeLimitError(field, f"{field}: {value:,}{unit} is beyond the limit of {limit:,}{unit}")


def error_line(err: BaseException, advice: str = FLAG_OVERRIDE) -> str:
    """An error's one line for a command line: a size refusal with ``advice`` (``--allow_large``), any other
    error as it reads."""
    return err.line(advice) if isinstance(err, SizeLimitError) else str(err)


def check_counts(counts: object) -> None:
    """The cells a space's raw ``counts`` ask for, before the space is built (building lists every cell)."""
    if isinstance(counts, (list, tuple)) and all(isinstance(c, (int, float)) for c in counts):
        check("counts", sum(counts), MAX_CELLS, " cells")
