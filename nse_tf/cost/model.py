"""What a search penalises and windows: M MACs (the FLOPs search) or LiteRT milliseconds (the latency search).

Both are one number per (cell, pool operation) plus a fixed part, so the gate penalty, the end-of-round
window and the Pareto front treat them alike; only the unit and where the numbers come from differ.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from nse_tf.cost.latency_table import LatencyTable, cell_branch_costs
from nse_tf.cost.measurement import load_or_measure
from nse_tf.space.analytic import cell_op_costs, fixed_cost
from nse_tf.space.macro import MacroSpace

METRICS = ("macs", "latency")
UNITS = {"macs": "M MACs", "latency": "ms"}


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Per-(cell, op) costs and a fixed part in one unit; an architecture costs the fixed part plus its ops'."""

    metric: str
    op_costs: list[list[float]]  # [cell][pool index], in ``unit``
    fixed: float

    @property
    def unit(self) -> str:
        return UNITS[self.metric]

    def architecture_cost(self, cells: Sequence[Sequence[int]]) -> float:
        return architecture_cost(cells, self.op_costs, self.fixed)  # the sampler's own sum, bit for bit

    def bounds(self, space: MacroSpace) -> tuple[float, float]:
        """Cheapest and dearest networks of the space: N cells may be empty, R/E cells need one op."""
        cheapest = self.fixed + sum(0.0 if cell.may_be_empty else min(row)
                                    for cell, row in zip(space.cells(), self.op_costs))
        return cheapest, self.fixed + sum(sum(row) for row in self.op_costs)


def macs_model(space: MacroSpace) -> CostModel:
    return CostModel("macs", [[c.macs / 1e6 for c in row] for row in cell_op_costs(space)],
                     fixed_cost(space).macs / 1e6)


def latency_model(table: LatencyTable, space: MacroSpace) -> CostModel:
    op_costs, fixed = cell_branch_costs(table, space.cells())
    return CostModel("latency", op_costs, fixed)


def build(space: MacroSpace, metric: str, latency_table: str | None = None,
          progress: Callable[[int, int], None] | None = None, latency_format: str = "float32") -> CostModel:
    """The cost model of ``metric``; for latency, the table at ``latency_table`` of the ``latency_format``
    TFLite form (measured first if absent, single-threaded as phone benchmarks usually run)."""
    if metric == "macs":
        return macs_model(space)
    if metric == "latency":
        if not latency_table:
            raise ValueError("a latency search needs the path of its latency table")
        return latency_model(load_or_measure(latency_table, space, progress=progress,
                                             tflite_format=latency_format), space)
    raise ValueError(f"unknown cost metric {metric!r}; expected one of {', '.join(METRICS)}")


def architecture_cost(cells: Sequence[Sequence[int]], op_costs: Sequence[Sequence[float]], fixed: float) -> float:
    """Cost of an architecture given a per-cell, per-pool-index cost table and the fixed part."""
    return fixed + sum(op_costs[c][i] for c, cell in enumerate(cells) for i in cell)
