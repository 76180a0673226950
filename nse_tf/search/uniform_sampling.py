"""Architectures drawn uniformly from a whole space inside a cost window: the random-search control.

A cell may hold any non-empty set of the pool's operations (an N cell also the empty set), so the space
is huge (2^19 sets per cell for mb19) and a narrow cost window holds a tiny fraction of it: rejection
from the unconstrained space would almost never hit it. Instead, count the architectures per cost bin
exactly (a knapsack count per cell, convolved across cells), draw a bin sum and each cell's share of it
in proportion to the counts, then each cell's set uniformly among those of its binned cost. Costs are
binned down (floor) to ``resolution``; a draw whose exact cost falls outside the window is rejected, so
the accepted draws are exactly uniform over the window's architectures.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


class UniformWindowSampler:
    """Uniform draws of architectures (per-cell sorted pool indices) with ``low < cost < high``."""

    def __init__(self, op_costs: Sequence[Sequence[float]], fixed: float, may_be_empty: Sequence[bool],
                 low: float, high: float, resolution: float | None = None):
        if not high > low:
            raise ValueError(f"window ({low:g}, {high:g}) is empty")
        self.op_costs = [np.asarray(row, float) for row in op_costs]
        self.fixed, self.low, self.high = float(fixed), float(low), float(high)
        self.may_be_empty = list(may_be_empty)
        if any(row.size and row.min() < 0 for row in self.op_costs):  # a cell's row may be empty (an N cell)
            raise ValueError("operation costs must be >= 0")
        budget = self.high - self.fixed  # what the operations may add
        if budget <= 0:
            raise ValueError(f"window ({low:g}, {high:g}) lies below the fixed cost {fixed:g}")
        self.unit = resolution or budget / 20000
        self.top = int(math.floor(budget / self.unit))  # the largest bin that can still be inside
        # An operation's binned cost is at most its cost, and the binned sum at most n_ops bins below the exact
        # one: a binned sum below the window's low by more than the op count can never be inside.
        total_ops = sum(len(row) for row in self.op_costs)
        self.bottom = max(0, int(math.floor((self.low - self.fixed) / self.unit)) - total_ops)
        self.bins = [np.floor(row / self.unit).astype(np.int64) for row in self.op_costs]
        # suffix[c][i][b]: number of subsets of cell c's ops i.. with binned sum b (b <= top)
        self.suffix = [self._suffix_counts(bins) for bins in self.bins]
        self.cell_counts = []
        for c, table in enumerate(self.suffix):
            counts = table[0].copy()
            if not self.may_be_empty[c]:
                counts[0] -= 1.0  # the empty set
            self.cell_counts.append(counts)
        # prefix[c][b]: architectures of cells 0..c-1 with binned sum b
        self.prefix = [np.zeros(self.top + 1)]
        self.prefix[0][0] = 1.0
        for counts in self.cell_counts:
            self.prefix.append(np.convolve(self.prefix[-1], counts)[: self.top + 1])
        self.candidates = float(self.prefix[-1][self.bottom:].sum())
        if self.candidates == 0:
            raise ValueError(f"no architecture of the space has a cost in ({low:g}, {high:g})")

    def _suffix_counts(self, bins: np.ndarray) -> list[np.ndarray]:
        table = [np.zeros(self.top + 1) for _ in range(len(bins) + 1)]
        table[len(bins)][0] = 1.0
        for i in range(len(bins) - 1, -1, -1):
            table[i] = table[i + 1].copy()
            if bins[i] <= self.top:
                table[i][bins[i]:] += table[i + 1][: self.top + 1 - bins[i]]
        return table

    def cost(self, cells: Sequence[Sequence[int]]) -> float:
        return self.fixed + sum(float(self.op_costs[c][i]) for c, cell in enumerate(cells) for i in cell)

    def draw(self, rng: np.random.Generator, max_attempts: int = 10000) -> list[list[int]]:
        """One architecture, uniform over those of the space strictly inside the window."""
        totals = self.prefix[-1][self.bottom:]
        for _ in range(max_attempts):
            remaining = self.bottom + int(rng.choice(len(totals), p=totals / totals.sum()))
            cells: list[list[int]] = [[] for _ in self.op_costs]
            for c in range(len(self.op_costs) - 1, -1, -1):
                # this cell's binned share b, in proportion to (its sets of sum b) x (earlier cells' of the rest)
                shares = self.cell_counts[c][: remaining + 1] * self.prefix[c][remaining::-1]
                b = int(rng.choice(len(shares), p=shares / shares.sum()))
                cells[c] = self._draw_set(c, b, rng)
                remaining -= b
            if self.low < self.cost(cells) < self.high:
                return cells
        raise RuntimeError(f"no draw inside ({self.low:g}, {self.high:g}) in {max_attempts} attempts")

    def _draw_set(self, c: int, b: int, rng: np.random.Generator) -> list[int]:
        """A uniform set of cell ``c``'s ops with binned sum ``b`` (non-empty where the cell must hold one)."""
        while True:
            chosen, remaining = [], b
            for i, cost in enumerate(self.bins[c]):
                total = self.suffix[c][i][remaining]
                take = self.suffix[c][i + 1][remaining - cost] if cost <= remaining else 0.0
                if rng.random() * total < take:
                    chosen.append(i)
                    remaining -= int(cost)
            if chosen or self.may_be_empty[c]:
                return chosen

    def draw_unique(self, rng: np.random.Generator, n: int) -> list[list[list[int]]]:
        """``n`` distinct architectures, each drawn uniformly (the first occurrence kept)."""
        seen: dict[tuple, list[list[int]]] = {}
        attempts = 0
        while len(seen) < n:
            cells = self.draw(rng)
            seen.setdefault(tuple(tuple(c) for c in cells), cells)
            attempts += 1
            if attempts > 100 * n:
                raise RuntimeError(f"only {len(seen)} distinct architectures in ({self.low:g}, {self.high:g})")
        return list(seen.values())
