"""Candidate operations and operation pools (section 3 of the method).

An operation is a small immutable record with a readable, stable name, e.g.
``mb_k3_t6``, ``mb_k3_t3_d2``, ``mb_k5_t6_g12``, ``rec_k7_t2``, ``normal_k3_t1``,
``dual_k3_t2``. Name grammar (one place, parsed and printed here)::

    <kind>_k<kernel>_t<expansion>[_d<dilation>][_g<g1><g2>]

``kind`` is one of ``mb`` (inverted bottleneck), ``rec`` (1xk then kx1 full convs),
``normal`` (one full kxk conv), ``dual`` (two full kxk convs); ``_d`` is omitted when
the dilation is 1, ``_g`` when both 1x1 convs are ungrouped. Dilation and groups
apply to ``mb`` only.

Pools are data: a pool is a tuple of op names, registered by name (``mb19``,
``mac27``, ``mac72``, in the exact index order of the method, because published
architectures are written as indices) or given directly as a list of names.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Iterable, Sequence

OP_KINDS = ("mb", "rec", "normal", "dual")
_NAME_RE = re.compile(
    r"^(?P<kind>mb|rec|normal|dual)_k(?P<k>\d+)_t(?P<t>\d+)"
    r"(?:_d(?P<d>\d+))?(?:_g(?P<g1>\d)(?P<g2>\d))?$"
)


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """One candidate operation; the cell decides channels and stride."""

    kind: str
    kernel: int
    expansion: int
    dilation: int = 1
    groups: tuple[int, int] = (1, 1)

    def __post_init__(self) -> None:
        if self.kind not in OP_KINDS:
            raise ValueError(f"unknown operation kind {self.kind!r}; expected one of {OP_KINDS}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"operation kernel must be odd and positive, got {self.kernel}")
        if self.expansion < 1:
            raise ValueError(f"operation expansion must be >= 1, got {self.expansion}")
        if self.dilation < 1:
            raise ValueError(f"operation dilation must be >= 1, got {self.dilation}")
        if len(self.groups) != 2 or not all(1 <= g <= 9 for g in self.groups):
            raise ValueError(f"operation groups must be two integers in 1..9, got {self.groups}")
        if self.kind != "mb" and (self.dilation != 1 or self.groups != (1, 1)):
            raise ValueError(f"dilation and groups apply to 'mb' operations only, not {self.kind!r}")

    @property
    def name(self) -> str:
        name = f"{self.kind}_k{self.kernel}_t{self.expansion}"
        if self.dilation != 1:
            name += f"_d{self.dilation}"
        if self.groups != (1, 1):
            name += f"_g{self.groups[0]}{self.groups[1]}"
        return name

    @classmethod
    def parse(cls, name: str) -> "OpSpec":
        match = _NAME_RE.match(name.strip())
        if not match:
            raise ValueError(
                f"cannot parse operation name {name!r}; expected "
                "<mb|rec|normal|dual>_k<kernel>_t<expansion>[_d<dilation>][_g<g1><g2>], e.g. mb_k3_t6_d2"
            )
        groups = (int(match["g1"]), int(match["g2"])) if match["g1"] else (1, 1)
        try:
            spec = cls(match["kind"], int(match["k"]), int(match["t"]), int(match["d"] or 1), groups)
        except ValueError as err:
            raise ValueError(f"operation name {name!r}: {err}") from None
        if spec.name != name.strip():
            raise ValueError(f"operation name {name!r} is not canonical; write it as {spec.name!r}")
        return spec

    def mid_channels(self, cin: int) -> int:
        return cin * self.expansion


def mb(k: int, t: int, d: int = 1, groups: tuple[int, int] = (1, 1)) -> OpSpec:
    return OpSpec("mb", k, t, d, groups)


def _mb19() -> tuple[OpSpec, ...]:
    ops = [mb(k, t) for k in (3, 5, 7) for t in (1, 3, 6)]
    ops += [OpSpec("normal", 3, t) for t in (1, 2)]
    ops += [OpSpec("dual", 3, t) for t in (1, 2)]
    ops += [OpSpec("rec", k, t) for k in (5, 7) for t in (1, 2, 4)]
    return tuple(ops)


def _mac27() -> tuple[OpSpec, ...]:
    ops = [mb(k, t, d) for k in (3, 5, 7, 9, 11) for t in (1, 3, 6) for d in ((1, 2, 3) if k == 3 else (1,))]
    ops += [OpSpec("rec", k, t) for k in (5, 7) for t in (1, 2, 4)]
    return tuple(ops)


def _mac72() -> tuple[OpSpec, ...]:
    grouped = [mb(k, t, groups=g) for k in (3, 5, 7, 9, 11) for t in (1, 3, 6) for g in ((1, 2), (2, 1), (2, 2))]
    return _mac27() + tuple(grouped)


POOLS: dict[str, tuple[str, ...]] = {
    name: tuple(op.name for op in factory())
    for name, factory in (("mb19", _mb19), ("mac27", _mac27), ("mac72", _mac72))
}


@dataclasses.dataclass(frozen=True)
class Pool:
    """An ordered set of operations; indices into it are how architectures are written."""

    name: str
    ops: tuple[OpSpec, ...]

    def __post_init__(self) -> None:
        if not self.ops:
            raise ValueError(f"pool {self.name!r} is empty")
        names = [op.name for op in self.ops]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"pool {self.name!r} lists operations more than once: {', '.join(duplicates)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def index(self, op_name: str) -> int:
        try:
            return self.names.index(op_name)
        except ValueError:
            raise ValueError(f"operation {op_name!r} is not in pool {self.name!r}") from None

    def to_json(self) -> str | list[str]:
        """Registered pools serialise by name, custom ones as their op names."""
        return self.name if POOLS.get(self.name) == self.names else list(self.names)


def get_pool(spec: "str | Sequence[str] | Pool") -> Pool:
    """A registered pool name, a comma-separated list of op names, or a list of op names."""
    if isinstance(spec, Pool):
        return spec
    if isinstance(spec, str):
        if spec in POOLS:
            return Pool(spec, tuple(OpSpec.parse(n) for n in POOLS[spec]))
        if "_k" not in spec:
            raise ValueError(f"unknown pool {spec!r}; registered pools: {', '.join(POOLS)}, or give op names")
        names: Iterable[str] = [n for n in spec.split(",") if n.strip()]
    else:
        names = spec
    ops = tuple(OpSpec.parse(n) for n in names)
    return Pool("custom", ops)


@dataclasses.dataclass(frozen=True)
class Cost:
    """Multiply-accumulates and trainable parameters."""

    macs: int = 0
    params: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.macs + other.macs, self.params + other.params)


def conv_cost(h_out: int, w_out: int, cin: int, cout: int, kh: int, kw: int, *, groups: int = 1,
              bias: bool = False, bn: bool = True) -> Cost:
    """MACs = H_out*W_out*C_out*(C_in/groups)*kh*kw; params = weights (+bias) (+BN gamma/beta)."""
    weights = cout * (cin // groups) * kh * kw
    params = weights + (cout if bias else 0) + (2 * cout if bn else 0)
    return Cost(h_out * w_out * weights, params)


def out_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded stride."""
    return math.ceil(size / stride)


def subsample_start(size: int, stride: int, kernel_extent: int) -> int:
    """Offset so that a stride-1 'same' conv subsampled by ``stride`` equals TF's strided 'same' conv."""
    out = math.ceil(size / stride)
    pad_strided = max((out - 1) * stride + kernel_extent - size, 0) // 2
    pad_dense = (kernel_extent - 1) // 2
    return pad_dense - pad_strided


def se_channels(mid: int) -> int:
    return max(1, mid // 4)


def op_cost(op: OpSpec, h: int, w: int, cin: int, cout: int, stride: int, *, se: bool = False) -> Cost:
    """Analytic cost of one branch at input size (h, w); mirrors nse_tf.nets.layers.op_layers."""
    mid = op.mid_channels(cin)
    ho, wo = out_size(h, stride), out_size(w, stride)
    k = op.kernel
    cost = conv_cost(h, w, cin, mid, 1, 1, groups=op.groups[0])
    if op.kind == "mb":
        cost += conv_cost(ho, wo, mid, mid, k, k, groups=mid)
    elif op.kind == "rec":
        cost += conv_cost(h, wo, mid, mid, 1, k) + conv_cost(ho, wo, mid, mid, k, 1)
    elif op.kind == "normal":
        cost += conv_cost(ho, wo, mid, mid, k, k)
    elif op.kind == "dual":
        cost += conv_cost(h, w, mid, mid, k, k) + conv_cost(ho, wo, mid, mid, k, k)
    if se:
        r = se_channels(mid)
        cost += conv_cost(1, 1, mid, r, 1, 1, bias=True, bn=False) + conv_cost(1, 1, r, mid, 1, 1, bias=True, bn=False)
    return cost + conv_cost(ho, wo, mid, cout, 1, 1, groups=op.groups[1])
