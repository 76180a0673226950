"""A network's LiteRT time predicted from the lookup table, plus what the table's sum leaves out.

The table (``nse_tf.cost.latency_table``) times each operation alone, so its sum misses what only a whole network has:
the cells' averaging (TFLite runs ``Average`` as adds and one multiply by 1/n, where the table charges the
adds only), the tensors that a multi-branch cell reads once per branch and writes once per branch (memory
traffic that a one-operation model never pays twice), and the interpreter's per-operation dispatch. A linear
correction over those features,

    predicted = w_sum * table_sum + w_mul * sum(add_ms of averaging cells) + w_traffic * branch_traffic_ms
                + w_ops * (operations) + w_0,

is fitted by least squares on measured networks and validated on others (``tools/benchmark.py latency``).
``branch_traffic_ms`` charges every branch beyond a cell's first the cell's add time again, a proxy for
reading its input and writing its output once more.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Sequence

import numpy as np

from nse_tf.cost.latency_table import LatencyTable, cell_branch_costs
from nse_tf.space.macro import MacroSpace

FEATURES = ("table_sum", "averaging", "branch_traffic", "operations", "constant")
CORRECTION_FORMAT = "nse_tf.latency_correction"


def features(table: LatencyTable, space: MacroSpace, cells: Sequence[Sequence[int]]) -> np.ndarray:
    """The correction's features of one architecture (``cells``: pool indices per cell)."""
    op_costs, fixed = cell_branch_costs(table, space.cells())
    table_sum = fixed + sum(op_costs[c][i] for c, ops in enumerate(cells) for i in ops)
    averaging = traffic = 0.0
    for cell, ops, add in zip(space.cells(), cells, table.add_ms):
        inputs = len(ops) + (1 if cell.kind == "N" and ops else 0)
        if inputs >= 2:
            averaging += add
        traffic += add * max(0, len(ops) - 1)
    return np.array([table_sum, averaging, traffic, float(sum(len(ops) for ops in cells)), 1.0])


@dataclasses.dataclass(frozen=True)
class LatencyCorrection:
    """Weights of ``FEATURES``, fitted on measured networks of one table (same device, same TFLite form)."""

    weights: tuple[float, ...]
    tflite_format: str
    fitted_on: int  # networks

    def predict(self, table: LatencyTable, space: MacroSpace, cells: Sequence[Sequence[int]]) -> float:
        return float(features(table, space, cells) @ np.asarray(self.weights))

    def to_json(self) -> dict:
        return {"format": CORRECTION_FORMAT, "features": list(FEATURES), **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: dict, source: str) -> "LatencyCorrection":
        if not isinstance(data, dict) or data.get("format") != CORRECTION_FORMAT or data.get("features") != list(FEATURES):
            raise ValueError(f"{source}: not an nse_tf latency correction with features {list(FEATURES)}")
        return cls(tuple(float(w) for w in data["weights"]), str(data["tflite_format"]), int(data["fitted_on"]))

    def save(self, path: str) -> None:
        from nse_tf.utils.atomic import atomic_write_json

        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str) -> "LatencyCorrection":
        with open(path, encoding="utf-8") as f:
            return cls.from_json(json.load(f), path)


def fit(table: LatencyTable, space: MacroSpace, architectures: Sequence[Sequence[Sequence[int]]],
        measured_ms: Sequence[float]) -> LatencyCorrection:
    """Least squares on relative error (each network weighted by 1 / its time), so that small and large
    networks count alike, as the ±10% criterion does."""
    if len(architectures) != len(measured_ms) or len(architectures) < len(FEATURES):
        raise ValueError(f"need at least {len(FEATURES)} measured networks (one per feature), got "
                         f"{len(architectures)} architectures and {len(measured_ms)} times")
    x = np.stack([features(table, space, cells) for cells in architectures])
    y = np.asarray(measured_ms, dtype=np.float64)
    weights, *_ = np.linalg.lstsq(x / y[:, None], np.ones_like(y), rcond=None)
    return LatencyCorrection(tuple(float(w) for w in weights), table.tflite_format, len(y))


def accuracy(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """Share of predictions within ±10% of the measurement, RMSE in ms, and Kendall tau."""
    from nse_tf.utils.metrics import kendall_tau

    p, m = np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    return {"within_10pct": float(np.mean(np.abs(p - m) <= 0.1 * m)), "rmse_ms": float(np.sqrt(np.mean((p - m) ** 2))),
            "kendall_tau": float(kendall_tau(list(p), list(m))), "n": int(len(m))}


def repeat_agreement(round_medians: Sequence[Sequence[float]]) -> dict[str, float] | None:
    """How well a timing predicts itself, scored as ``accuracy`` scores a prediction: each network's median over
    its odd rounds against its median over its even rounds (None under two rounds). Each half is noisier than
    all the rounds together, so a perfect predictor would score about this or better against the full medians:
    what the measurement allows a target to ask."""
    if not round_medians or min(len(r) for r in round_medians) < 2:
        return None
    return accuracy([float(np.median(r[1::2])) for r in round_medians],
                    [float(np.median(r[0::2])) for r in round_medians])
