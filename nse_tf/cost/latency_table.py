"""Latency lookup table for the latency-constrained search (section 5): what each operation costs in each cell.

The released latency search charges an architecture the table entry of every operation it uses, one
element-wise add per residual branch (N cell) and per extra branch of an R/E cell, and a fixed part for
stem and head. This module is the table itself: its JSON format and file, the check that it belongs to a
space, and what it charges per branch (``cell_branch_costs``). A table is of one TFLite form
(``tflite_format``): ``float32``, or ``int8`` as phones run the zoo's int8 files. Its entries are measured
here (``measurement``, over the models of ``pieces`` converted by ``conversion``) or on a phone
(``phone_kit``), in the same JSON format.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

from nse_tf.space.macro import CellSpec, MacroSpace
from nse_tf.utils.atomic import atomic_write_json

TABLE_FORMAT = "nse_tf.latency_table"
TABLE_VERSION = 1
TFLITE_FORMATS = ("float32", "int8")


class LatencyTableError(ValueError):
    """A latency table file that cannot be read or was measured for another space."""


@dataclasses.dataclass(frozen=True)
class LatencyTable:
    """Milliseconds per (cell, pool operation), per cell add, and for the fixed part of one space."""

    space: dict[str, Any]
    op_ms: list[list[float]]
    add_ms: list[float]
    fixed_ms: float
    device: str
    num_threads: int
    runs: int
    tflite_format: str = "float32"
    rounds: int = 1  # interleaved rounds of ``runs`` invokes per piece (tables before rounds: one window)

    def to_json(self) -> dict[str, Any]:
        return {"format": TABLE_FORMAT, "version": TABLE_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: Any, source: str) -> "LatencyTable":
        if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
            raise LatencyTableError(f"{source}: not an nse_tf latency table")
        if data.get("version") != TABLE_VERSION:
            raise LatencyTableError(f"{source}: latency table version {data.get('version')!r} is not {TABLE_VERSION}")
        try:
            table = cls(space=dict(data["space"]), op_ms=[[float(v) for v in row] for row in data["op_ms"]],
                        add_ms=[float(v) for v in data["add_ms"]], fixed_ms=float(data["fixed_ms"]),
                        device=str(data["device"]), num_threads=int(data["num_threads"]), runs=int(data["runs"]),
                        tflite_format=str(data.get("tflite_format", "float32")),  # tables before int8: float32
                        rounds=int(data.get("rounds", 1)))
        except (KeyError, TypeError, ValueError) as err:
            raise LatencyTableError(f"{source}: corrupted latency table ({type(err).__name__}: {err})") from None
        if table.tflite_format not in TFLITE_FORMATS:
            raise LatencyTableError(f"{source}: tflite_format {table.tflite_format!r} is not one of "
                                    f"{', '.join(TFLITE_FORMATS)}")
        values = [v for row in table.op_ms for v in row] + table.add_ms + [table.fixed_ms]
        if any(not v >= 0 for v in values):  # also catches NaN
            raise LatencyTableError(f"{source}: latencies must be finite and >= 0")
        return table

    def check_matches(self, space: MacroSpace, source: str) -> None:
        """Refuse a table measured for other cells or another pool: its numbers would silently be wrong."""
        if self.space != space.to_dict():
            diffs = sorted(k for k in set(self.space) | set(space.to_dict())
                           if self.space.get(k) != space.to_dict().get(k))
            raise LatencyTableError(f"{source}: measured for another space ({', '.join(diffs)} differ); "
                                    "delete it to measure this space, or pass another --latency_table")
        cells, pool = space.cells(), space.get_pool()
        if len(self.op_ms) != len(cells) or len(self.add_ms) != len(cells):
            raise LatencyTableError(f"{source}: {len(self.op_ms)} cells in the table, {len(cells)} in the space")
        for cell, row in zip(cells, self.op_ms):
            if len(row) != len(pool):
                raise LatencyTableError(f"{source}: {cell.name} has {len(row)} operations, the pool {len(pool)}")


def load(path: str, space: MacroSpace, tflite_format: str | None = None) -> LatencyTable:
    """The table at ``path``, checked against the space (and the TFLite form, when given)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as err:
        raise LatencyTableError(f"{path}: cannot read ({err.strerror})") from None
    except json.JSONDecodeError as err:
        raise LatencyTableError(f"{path}: not JSON ({err})") from None
    table = LatencyTable.from_json(data, path)
    table.check_matches(space, path)
    if tflite_format is not None and table.tflite_format != tflite_format:
        raise LatencyTableError(f"{path}: measured for {table.tflite_format} TFLite files, not {tflite_format} "
                                "(--latency_format); pass a table of that form, or a new path to measure one")
    return table


def save(table: LatencyTable, path: str) -> None:
    atomic_write_json(path, table.to_json())


def cell_branch_costs(table: LatencyTable, cells: Sequence[CellSpec]) -> tuple[list[list[float]], float]:
    """Per-(cell, op) costs and the fixed part such that an architecture's latency is fixed + sum of its
    ops' costs: each op also pays its cell's add, and each R/E cell gives one add back (k branches, k - 1 adds)."""
    op_costs = [[ms + add for ms in row] for row, add in zip(table.op_ms, table.add_ms)]
    fixed = table.fixed_ms - sum(add for cell, add in zip(cells, table.add_ms) if not cell.may_be_empty)
    return op_costs, fixed
