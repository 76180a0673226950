"""Top-k accuracy of logits against labels, and rank correlations (Kendall tau-b, Spearman rho): the one
definition every evaluation and benchmark uses."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def top_k_accuracies(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    # Stable, so tied logits (common in int8 outputs) rank in index order: top-1 is exactly argmax,
    # as in the export verification and Keras's accuracy metrics.
    top5 = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    return {"top1": float(np.mean(top5[:, 0] == labels)),
            "top5": float(np.mean(np.any(top5 == labels[:, None], axis=1)))}


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either variable handled as scipy.stats.kendalltau does)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("kendall_tau needs two sequences of the same length >= 2")
    i, j = np.triu_indices(len(x), 1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    concordant_minus_discordant = float(np.sum(dx * dy))
    denominator = np.sqrt(float(np.sum(dx != 0)) * float(np.sum(dy != 0)))
    return concordant_minus_discordant / denominator if denominator else float("nan")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of the ranks (ties get their mean rank)."""
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def _ranks(values: Sequence[float]) -> np.ndarray:
    values = np.asarray(values, float)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values):  # ties: the mean of their ranks
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks
