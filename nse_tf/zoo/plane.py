"""The accuracy-latency plane (issue 30): searched picks against the hand-designed width family.

Hardware-aware NAS papers draw a search's picks against a family of hand-designed networks at several width
multipliers. Here the family's curve is piecewise linear through each member's better seed at the member's
LiteRT float32 time (the mean over its seeds' timings); a pick counts as above the curve when its worse seed is
above the curve at the pick's own time. A pick faster than the smallest member is compared with that member;
one more than ``SLOWER_LIMIT`` slower than the largest does not count.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
from typing import Any, Sequence

METHODS = ("family", "nse", "random")
SLOWER_LIMIT = 0.05


@dataclasses.dataclass(frozen=True)
class PlaneRow:
    """One retrained network (a zoo entry) on the plane."""

    method: str
    budget: str | None
    alpha: float | None
    zoo_entry: str
    seed: int
    top1: float
    macs: int
    litert_float32_ms: float
    litert_int8_ms: float

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if (self.method == "family") != (self.alpha is not None):
            raise ValueError(f"{self.zoo_entry}: a family row has an alpha, and only a family row")


@dataclasses.dataclass(frozen=True)
class Point:
    """A network's seeds together: its time (mean over seeds) and its top-1 range."""

    label: str
    ms: float
    low: float
    high: float
    mean: float


def group(rows: Sequence[PlaneRow], method: str) -> list[Point]:
    """One point per (budget or alpha, architecture) of ``method``, fastest first."""
    keyed: dict[tuple, list[PlaneRow]] = {}
    for row in rows:
        if row.method == method:
            keyed.setdefault((row.budget, row.alpha, re.sub(r"-s\d+$", "", row.zoo_entry)), []).append(row)
    points = [Point(key[2], statistics.fmean(r.litert_float32_ms for r in mine), min(r.top1 for r in mine),
                    max(r.top1 for r in mine), statistics.fmean(r.top1 for r in mine)) for key, mine in keyed.items()]
    return sorted(points, key=lambda p: p.ms)


def family_curve_at(family: Sequence[Point], ms: float) -> float | None:
    """The family's top-1 at ``ms`` (through each member's better seed); None past the comparison's range."""
    if not family:
        raise ValueError("the plane has no family rows")
    if ms <= family[0].ms:
        return family[0].high
    if ms > family[-1].ms * (1 + SLOWER_LIMIT):
        return None
    for left, right in zip(family, family[1:]):
        if ms <= right.ms:
            share = (ms - left.ms) / (right.ms - left.ms)
            return left.high + share * (right.high - left.high)
    return family[-1].high


def verdicts(rows: Sequence[PlaneRow]) -> list[dict[str, Any]]:
    """For each searched pick (NSE and random), whether its worse seed is above the family curve."""
    family = group(rows, "family")
    out = []
    for method in ("nse", "random"):
        for point in group(rows, method):
            curve = family_curve_at(family, point.ms)
            out.append({"method": method, "network": point.label, "litert_float32_ms": point.ms,
                        "lower_seed_top1": point.low, "mean_top1": point.mean, "family_top1_at_ms": curve,
                        "above_family": None if curve is None else point.low > curve})
    return out
