"""What a search's architectures cost, and whether its end-of-round window can hold one.

The cost model is built once per run (a latency table is measured only before a run starts, and every worker of
a multi-worker search must read the same one) and passed on as an object. The window's reachability is one rule
checked here only: for the whole space before the search, for a round's sub-spaces before the round trains.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

from nse_tf.cost import model as cost_model
from nse_tf.cost.latency_table import LatencyTableError
from nse_tf.search.config import STATE_FILE, SearchConfig
from nse_tf.search.evolution import EvolutionConfig, SamplingError, architectures_in_window
from nse_tf.search.schema import flag_text
from nse_tf.space.macro import CellSpec
from nse_tf.utils.settings import SettingError

log = logging.getLogger("nse_tf.search")


def build_cost_model(config: SearchConfig, multi_worker: bool = False) -> cost_model.CostModel:
    """What the penalty and the window measure. A latency table is measured here when it does not exist, unless
    the run has started (a resumed search must price architectures exactly as before) or several workers would
    each measure their own; a table that cannot be used is a ``SettingError`` of ``latency_table``."""
    path = config.latency_table_path
    if config.cost == "latency" and not os.path.exists(path):
        if multi_worker:
            raise SettingError("latency_table", f"{path} does not exist; every worker of a multi-worker search must "
                               "read the same table: measure it first on one machine (the same flags with "
                               f"{flag_text('strategy')}=default {flag_text('stop_after_steps')}=1) and pass its "
                               "path to every worker")
        if os.path.exists(os.path.join(config.run_dir, STATE_FILE)):
            raise SettingError("latency_table", f"{path} is gone but {config.run_dir} has already started with it; "
                               "restore the file (a new measurement would price architectures differently)")

    def progress(done: int, total: int) -> None:
        if done == 1 or done == total or done % 20 == 0:
            log.info("latency table %s: %d/%d models converted (timed next)", path, done, total)

    try:
        return cost_model.build(config.space, config.cost, path, progress, config.latency_format)
    except LatencyTableError as err:
        raise SettingError("latency_table", str(err)) from None


def check_window(model: cost_model.CostModel, cells: Sequence[CellSpec], target: float, config: EvolutionConfig,
                 subspaces: Sequence[Sequence[int]] | None = None, round_index: int = 0) -> None:
    """The end-of-round window must be able to hold an architecture. Before the search (``subspaces`` None: every
    pool operation in every cell), the target must lie strictly between the space's cheapest and dearest networks
    and an explicit window must overlap them (a ``SettingError`` of the target or the window). Before round
    ``round_index`` trains, its sub-spaces must hold an architecture strictly inside the window, or hours of
    training would end in an evaluation that can only fail (a ``SamplingError``)."""
    low, high = config.window_bounds(target)
    unit, cost = model.unit, model.metric
    if subspaces is None:
        cheapest, dearest = _cost_range(model, cells, [list(range(len(row))) for row in model.op_costs])
        if not cheapest < target < dearest:
            raise SettingError("penalty.target", f"{target:g} {unit} is impossible in this space: its networks "
                               f"range from {cheapest:.3g} to {dearest:.3g} {unit}")
        if config.window is not None and not (low < dearest and high > cheapest):
            raise SettingError("evolution.window", f"({low:g}, {high:g}) {unit} holds no network of this space: "
                               f"they range from {cheapest:.3g} to {dearest:.3g} {unit}")
        return
    if architectures_in_window(subspaces, model.op_costs, model.fixed, [c.may_be_empty for c in cells],
                               low, high) == 0:
        cheapest, dearest = _cost_range(model, cells, subspaces)
        raise SamplingError(f"round {round_index + 1}: no architecture of its sub-spaces costs within the window "
                            f"({low:g}, {high:g}) {unit} (they range from {cheapest:.4g} to {dearest:.4g}): widen "
                            f"{flag_text('evolution.drift', cost)} (or {flag_text('evolution.window')}; they may "
                            f"change when the round resumes), or move {flag_text('penalty.target', cost)} in a new run")


def _cost_range(model: cost_model.CostModel, cells: Sequence[CellSpec],
                subspaces: Sequence[Sequence[int]]) -> tuple[float, float]:
    """The cheapest and dearest architectures of the sub-spaces (N cells may be empty, R/E cells hold an op)."""
    rows = [[model.op_costs[c][i] for i in ops] for c, ops in enumerate(subspaces)]
    cheapest = model.fixed + sum(0.0 if cell.may_be_empty else min(row) for cell, row in zip(cells, rows))
    return cheapest, model.fixed + sum(sum(row) for row in rows)
