"""Host-side gate logic (section 5): Bernoulli gate probabilities, branch-set sampling, self-simplification.

Everything here is numpy on the host, driven by one seeded generator, so every replica and
every worker draws the same branch sets. The compiled steps only receive the resulting masks.

Masks are padded ``[n_cells, max_ops]`` bool arrays; column j of row c is the j-th operation of
cell c's sub-space for this round. ``active`` marks the operations still in the sub-space
(self-simplification removes operations without changing the compiled step's shapes).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import numpy as np

GATE_SCALE, GATE_SHIFT = 0.999, 0.0005
ENUMERATE_MAX_OPS = 5
REJECTION_MAX_TRIES = 100_000


def gate_probability(alpha: np.ndarray) -> np.ndarray:
    """p = 0.999 * sigmoid(alpha) + 0.0005: never exactly 0 or 1."""
    return GATE_SCALE / (1.0 + np.exp(-np.asarray(alpha, dtype=np.float64))) + GATE_SHIFT


def set_log_prob(mask: np.ndarray, p: np.ndarray, active: np.ndarray) -> float:
    """log P(B) = sum over active ops of g log p + (1 - g) log(1 - p)."""
    g = mask.astype(bool)
    return float(np.sum(np.where(active, np.where(g, np.log(p), np.log1p(-p)), 0.0)))


@dataclasses.dataclass(frozen=True)
class CellSlots:
    """Which padded columns of a cell are real operations, and whether the cell may be empty."""

    n_ops: int
    may_be_empty: bool


def has_choice(active_row: np.ndarray, may_be_empty: bool) -> bool:
    n = int(active_row.sum())
    return n >= 1 if may_be_empty else n >= 2


def sample_uniform(rng: np.random.Generator, active: np.ndarray, cells: Sequence[CellSlots]) -> np.ndarray:
    """Weight-step branch sets: each active op on with probability 0.5; R/E cells redrawn until non-empty."""
    masks = np.zeros_like(active, dtype=bool)
    for c, cell in enumerate(cells):
        row = active[c]
        if not row.any():
            continue
        while True:
            draw = (rng.random(row.shape[0]) < 0.5) & row
            if cell.may_be_empty or draw.any():
                break
        masks[c] = draw
    return masks


def _enumerated_sets(row: np.ndarray, may_be_empty: bool) -> list[np.ndarray]:
    idx = np.flatnonzero(row)
    sets = []
    for bits in itertools.product((False, True), repeat=len(idx)):
        if not may_be_empty and not any(bits):
            continue
        mask = np.zeros_like(row, dtype=bool)
        mask[idx] = bits
        sets.append(mask)
    return sets


def bernoulli_set(rng: np.random.Generator, p: np.ndarray, row: np.ndarray, may_be_empty: bool,
                   cell_index: int) -> np.ndarray:
    """One branch set from the gates over the active ops; R/E cells redrawn until non-empty (capped)."""
    for _ in range(REJECTION_MAX_TRIES):
        draw = (rng.random(row.shape[0]) < p) & row
        if may_be_empty or draw.any():
            return draw
    raise RuntimeError(f"cell {cell_index}: no non-empty branch set after {REJECTION_MAX_TRIES} draws")


def sample_two_paths(rng: np.random.Generator, alpha: np.ndarray, active: np.ndarray,
                     cells: Sequence[CellSlots]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gate-step branch sets S and U, two *different* sets per cell drawn from the learned distribution.

    With <= 5 active operations all sets are enumerated and two drawn without replacement by
    P(B); with more, S and U are drawn by rejection. Cells without a choice get S = U and
    ``choice`` False, so they contribute no gate gradient.
    """
    p = gate_probability(alpha)
    s_masks = np.zeros_like(active, dtype=bool)
    u_masks = np.zeros_like(active, dtype=bool)
    choice = np.zeros(active.shape[0], dtype=bool)
    for c, cell in enumerate(cells):
        row = active[c]
        if not has_choice(row, cell.may_be_empty):
            s_masks[c] = u_masks[c] = row
            continue
        choice[c] = True
        if row.sum() <= ENUMERATE_MAX_OPS:
            sets = _enumerated_sets(row, cell.may_be_empty)
            probs = np.exp([set_log_prob(s, p[c], row) for s in sets])
            first, second = rng.choice(len(sets), size=2, replace=False, p=probs / probs.sum())
            s_masks[c], u_masks[c] = sets[first], sets[second]
        else:
            s_masks[c] = bernoulli_set(rng, p[c], row, cell.may_be_empty, c)
            for _ in range(REJECTION_MAX_TRIES):
                u = bernoulli_set(rng, p[c], row, cell.may_be_empty, c)
                if not np.array_equal(u, s_masks[c]):
                    break
            else:
                raise RuntimeError(f"cell {c}: no second branch set different from the first after "
                                   f"{REJECTION_MAX_TRIES} draws")
            u_masks[c] = u
    return s_masks, u_masks, choice


def simplify(alpha: np.ndarray, active: np.ndarray, protected: np.ndarray, cells: Sequence[CellSlots],
             threshold: float = -2.0) -> np.ndarray:
    """Self-simplification: drop ops whose alpha fell below ``threshold``.

    Exceptions: protected ops (the previous optimized subset) stay; an R/E cell with exactly two
    ops left keeps both; an R/E cell never loses its last op (the best one stays). Removed ops
    never come back. Returns the new ``active``.
    """
    new_active = active.copy()
    for c, cell in enumerate(cells):
        row = active[c]
        drop = row & (alpha[c] < threshold) & ~protected[c]
        if not drop.any():
            continue
        if not cell.may_be_empty:
            if row.sum() == 2:
                continue
            if not (row & ~drop).any():
                keep = int(np.argmax(np.where(row, alpha[c], -np.inf)))
                drop[keep] = False
        new_active[c] = row & ~drop
    return new_active


def expected_cost(alpha: np.ndarray, active: np.ndarray, op_costs: np.ndarray, fixed: float) -> float:
    """Expected cost under the independent Bernoulli gates (progress display; the penalty uses two paths)."""
    return float(fixed + np.sum(np.where(active, gate_probability(alpha) * op_costs, 0.0)))
