"""Macro search space (section 2 of the method): the string of cells around which ops are searched.

A layout is the list of channel-changing cells that close each stage: ``NR`` means
``N*a0 R N*a1 R N*a2 R N*a3 R N*a4`` and ``NER`` means
``N*a0 R N*a1 R N*a2 R N*a3 E N*a4 R N*a5 E``. ``N`` keeps stride 1 and channels (and may be
skipped), ``R`` has stride 2 and changes channels, ``E`` has stride 1 and changes channels.
Any other transition string (e.g. ``RRE``) is accepted as a layout too.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Sequence

from nse_tf.space import limits
from nse_tf.space.ops import Pool, get_pool, out_size
from nse_tf.utils.settings import SettingError

LAYOUTS: dict[str, str] = {"NR": "RRRR", "NER": "RRRERE"}
CELL_KINDS = ("N", "R", "E")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to a multiple of 8 the way the reference code does (never below 90% of value)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """Where one searchable cell sits: its kind, channels, stride and input resolution."""

    index: int
    kind: str
    cin: int
    cout: int
    stride: int
    input_hw: tuple[int, int]

    @property
    def may_be_empty(self) -> bool:
        return self.kind == "N"

    @property
    def name(self) -> str:
        return f"cell{self.index:02d}_{self.kind}"


def _whole(field: str, value: Any) -> int:
    """``value`` as an int if it is a whole number (28 or 28.0, not 28.5, "28" or true)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(value)
    raise SettingError(field, f"{field} must be a whole number, got {value!r}")


@dataclasses.dataclass(frozen=True)
class MacroSpace:
    """Everything but the per-cell operation choice. Fields are what flags override."""

    layout: str = "NER"
    counts: tuple[int, ...] = (1, 3, 3, 3, 3, 3)
    channels: tuple[int, ...] = (16, 24, 40, 80, 96, 192, 320)
    scale: float = 1.0
    pool: str | tuple[str, ...] = "mac27"
    input_size: int = 224
    input_channels: int = 3
    num_classes: int = 1000
    stem_stride: int = 2
    r_strides: tuple[int, ...] | None = None
    head_channels: int = 1024
    se: bool = False
    activation: str = "relu"
    mean: tuple[float, ...] = (123.675, 116.28, 103.53)
    std: tuple[float, ...] = (58.395, 57.12, 57.375)

    def __post_init__(self) -> None:
        for field in ("input_size", "input_channels", "num_classes", "stem_stride", "head_channels"):
            object.__setattr__(self, field, _whole(field, getattr(self, field)))
        if not isinstance(self.layout, str):
            raise SettingError("layout", f"layout must be a string, got {self.layout!r}")
        for field in ("counts", "channels", "r_strides"):
            value = getattr(self, field)
            if value is None and field == "r_strides":
                continue
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise SettingError(field, f"{field} must be a list of whole numbers, got {value!r}")
            object.__setattr__(self, field, tuple(_whole(field, v) for v in value))
        if isinstance(self.scale, bool) or not isinstance(self.scale, numbers.Real):
            raise SettingError("scale", f"scale must be a number, got {self.scale!r}")
        if isinstance(self.pool, str) and "," in self.pool:
            object.__setattr__(self, "pool", tuple(n.strip() for n in self.pool.split(",") if n.strip()))
        elif not isinstance(self.pool, str):
            object.__setattr__(self, "pool", tuple(self.pool))
        for field in ("mean", "std"):
            value = getattr(self, field)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or \
                    not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
                raise SettingError(field, f"{field} must be a list of numbers, got {value!r}")
            object.__setattr__(self, field, tuple(float(v) for v in value))
        if not all(math.isfinite(v) for v in self.mean) or not all(math.isfinite(v) and v > 0 for v in self.std):
            raise SettingError("mean", f"mean must be finite and std positive (pixel units, 0-255), got mean "
                                       f"{self.mean}, std {self.std}")
        self._validate()

    def _validate(self) -> None:
        transitions = self.transitions
        if any(t not in ("R", "E") for t in transitions):
            raise SettingError("layout",
                               f"layout {self.layout!r}: transitions must be R or E (or use {', '.join(LAYOUTS)})")
        if len(self.counts) not in (len(transitions), len(transitions) + 1):
            raise SettingError("counts",
                f"counts {self.counts} do not fit layout {self.layout!r}: it needs {len(transitions)} "
                f"or {len(transitions) + 1} counts")
        if any(c < 0 for c in self.counts):
            raise SettingError("counts", f"counts must be >= 0, got {self.counts}")
        if len(self.channels) != len(transitions) + 1:
            raise SettingError("channels",
                f"channels {self.channels} do not fit layout {self.layout!r}: it needs "
                f"{len(transitions) + 1} entries (stem, then one per R/E cell)")
        if any(c < 1 for c in self.channels):
            raise SettingError("channels", f"channels must be positive, got {self.channels}")
        if self.scale <= 0:
            raise SettingError("scale", f"scale must be positive, got {self.scale}")
        if self.input_size < 8:
            raise SettingError("input_size", f"input_size must be >= 8, got {self.input_size}")
        if self.input_channels < 1:
            raise SettingError("input_channels", f"input_channels must be positive, got {self.input_channels}")
        if self.head_channels < 1:
            raise SettingError("head_channels", f"head_channels must be positive, got {self.head_channels}")
        if self.num_classes < 2:
            raise SettingError("num_classes", f"num_classes must be >= 2, got {self.num_classes}")
        if self.stem_stride not in (1, 2):
            raise SettingError("stem_stride", f"stem_stride must be 1 or 2, got {self.stem_stride}")
        n_r = transitions.count("R")
        if self.r_strides is not None and (len(self.r_strides) != n_r or any(s not in (1, 2) for s in self.r_strides)):
            raise SettingError("r_strides",
                               f"r_strides must give 1 or 2 for each of the {n_r} R cells, got {self.r_strides}")
        if self.activation not in ("relu", "swish"):
            raise SettingError("activation", f"activation must be 'relu' or 'swish', got {self.activation!r}")
        if len(self.mean) not in (1, self.input_channels) or len(self.std) != len(self.mean):
            raise SettingError("mean",
                               f"mean/std need 1 or {self.input_channels} values each, got {self.mean} / {self.std}")
        self._check_groups(self.get_pool())

    def _check_groups(self, pool: Pool) -> None:
        """Grouped 1x1 convolutions need channel counts their groups divide, in every cell they may go to."""
        grouped = [op for op in pool.ops if op.groups != (1, 1)]
        for cell in self.cells() if grouped else ():
            for op in grouped:
                mid = op.mid_channels(cell.cin)
                for conv, groups, cin, cout in (("expand", op.groups[0], cell.cin, mid),
                                                ("project", op.groups[1], mid, cell.cout)):
                    if cin % groups or cout % groups:
                        raise SettingError("channels",
                            f"channels: cell {cell.index} ({cell.kind}, {cell.cin} -> {cell.cout} channels) cannot "
                            f"hold operation {op.name}: its {conv} 1x1 convolution ({cin} -> {cout} channels) has "
                            f"{groups} groups, which must divide both; use channels divisible by {groups} or a pool "
                            "without that operation")

    def check_size(self) -> None:
        """ValueError naming the field when the space is beyond the limits of ``nse_tf.space.limits`` (its
        readers of files call this; code that means a huge space builds it directly)."""
        limits.check("counts", sum(self.counts) + len(self.transitions), limits.MAX_CELLS, " cells")
        limits.check("scale", self.scale, limits.MAX_SCALE)
        limits.check("channels", max(self.scaled_channels), limits.MAX_CHANNELS)
        limits.check("head_channels", self.head_channels, limits.MAX_HEAD_CHANNELS)
        limits.check("input_size", self.input_size, limits.MAX_INPUT_SIZE, " pixels")
        limits.check("input_channels", self.input_channels, limits.MAX_INPUT_CHANNELS)
        limits.check("num_classes", self.num_classes, limits.MAX_CLASSES)

    @property
    def transitions(self) -> str:
        return LAYOUTS.get(self.layout, self.layout)

    def get_pool(self) -> Pool:
        return get_pool(self.pool)

    @property
    def scaled_channels(self) -> tuple[int, ...]:
        """The width multiplier applies to every entry but the stem's."""
        if self.scale == 1.0:
            return self.channels
        return (self.channels[0],) + tuple(make_divisible(c * self.scale) for c in self.channels[1:])

    @property
    def stem_hw(self) -> int:
        return out_size(self.input_size, self.stem_stride)

    def cells(self) -> tuple[CellSpec, ...]:
        """The searchable cells in order, with their channels, strides and input sizes."""
        channels = self.scaled_channels
        r_strides = list(self.r_strides or (2,) * self.transitions.count("R"))
        size, cin, cells = self.stem_hw, channels[0], []
        for stage, count in enumerate(self.counts):
            for _ in range(count):
                cells.append(CellSpec(len(cells), "N", cin, cin, 1, (size, size)))
            if stage < len(self.transitions):
                kind = self.transitions[stage]
                stride = r_strides.pop(0) if kind == "R" else 1
                cout = channels[stage + 1]
                cells.append(CellSpec(len(cells), kind, cin, cout, stride, (size, size)))
                size, cin = out_size(size, stride), cout
        return tuple(cells)

    @property
    def last_channels(self) -> int:
        return self.scaled_channels[-1]

    def replace(self, **overrides: Any) -> "MacroSpace":
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown space field(s) {', '.join(unknown)}; known: "
                             f"{', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["pool"] = self.get_pool().to_json()
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], check_size: bool = True) -> "MacroSpace":
        """The space a file describes; one beyond the limits of ``nse_tf.space.limits`` is refused before any
        of it is built unless ``check_size`` is False."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown space field(s) {', '.join(unknown)}")
        if check_size:
            limits.check_counts(data.get("counts"))  # before the cells are listed (a huge count hangs that)
        data = dict(data)
        for key in ("counts", "channels", "r_strides", "mean", "std", "pool"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        space = cls(**data)
        if check_size:
            space.check_size()
        return space


FASHION_MNIST_MEAN_STD = ((72.9404,), (90.0212,))  # nse_tf.data.idx.mean_std("fashion_mnist")
SPACES: dict[str, MacroSpace] = {
    # The FLOPs search of the paper: 22 searchable cells at 224x224.
    "imagenet_mac": MacroSpace(),
    # The GPU-latency search: 21 cells, mb19 pool.
    "imagenet_latency": MacroSpace(layout="NR", counts=(1, 3, 3, 7, 3), channels=(16, 32, 64, 128, 256), pool="mb19"),
    # Small inputs (28x28 / 32x32): stem stride 1 instead of 2 (28 -> 14 -> 7 -> 4 -> 2 over the four
    # R cells), half of ImageNet's channels and fewer cells, so a CPU search round takes minutes.
    "small": MacroSpace(
        layout="NER", counts=(1, 2, 2, 2, 1, 1), channels=(16, 16, 24, 40, 48, 96, 160), pool="mac27",
        input_size=28, input_channels=1, num_classes=10, stem_stride=1,
        mean=FASHION_MNIST_MEAN_STD[0], std=FASHION_MNIST_MEAN_STD[1]),
}


def get_space(name: str, **overrides: Any) -> MacroSpace:
    if name not in SPACES:
        raise ValueError(f"unknown space {name!r}; known: {', '.join(SPACES)}")
    return SPACES[name].replace(**overrides) if overrides else SPACES[name]


SPACE_FLAGS = {"pool": str, "layout": str, "counts": "ints", "channels": "ints", "scale": float, "input_size": int,
               "num_classes": int, "stem_stride": int, "r_strides": "ints", "head_channels": int}


def space_from_flags(values: dict[str, str]) -> MacroSpace:
    """The space a search's flags describe (``--space`` and the overrides in ``SPACE_FLAGS``, as text)."""
    overrides: dict[str, Any] = {}
    for name, kind in SPACE_FLAGS.items():
        if name not in values:
            continue
        try:
            overrides[name] = parse_int_list(values[name]) if kind == "ints" else kind(values[name])
        except ValueError:
            raise ValueError(f"--{name}={values[name]} is not valid") from None
    return get_space(values.get("space", "small"), **overrides)


def parse_int_list(text: str | Sequence[int]) -> tuple[int, ...]:
    if isinstance(text, str):
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    return tuple(int(v) for v in text)
