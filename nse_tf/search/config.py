"""SearchConfig: every setting of a search run, and the names of its run directory's files."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any

from nse_tf.cost import model as cost_model
from nse_tf.data.pipeline import DataConfig
from nse_tf.search.evolution import EvolutionConfig, StateError
from nse_tf.search.round_trainer import OptimConfig, PenaltyConfig
from nse_tf.search.verification import VerifyConfig
from nse_tf.space.macro import MacroSpace

STATE_FILE = "evolution_state.json"

log = logging.getLogger("nse_tf.search")
CONFIG_FILE = "config.json"
LATENCY_TABLE_FILE = "latency_table.json"


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """One search run, built once from flags by tools/search.py."""

    run_dir: str
    space: MacroSpace
    data: DataConfig
    optim: OptimConfig = OptimConfig()
    penalty: PenaltyConfig = PenaltyConfig()
    evolution: EvolutionConfig = EvolutionConfig()
    cost: str = "macs"
    latency_table: str | None = None  # None: run_dir/latency_table.json
    latency_format: str = "float32"  # the TFLite form the table times: float32 or int8
    epochs_per_round: float = 100.0
    steps_per_round: int | None = None
    gate_every: int = 2
    gate_warmup: float = 0.0  # the share of each round's first steps without gate steps (ours; TuNAS: 0.25)
    prune_threshold: float = -2.0
    checkpoint_every: int = 200
    summary_every: int = 10
    seed: int = 0
    strategy: str = "mirrored"
    init_from: str | None = None
    seed_archs: tuple[str, ...] = ()  # network JSONs of this space evaluated every round (ours)
    verify: VerifyConfig = VerifyConfig()
    stop_after_steps: int | None = None  # how this process runs, not a setting of the run: not saved
    verify_shard: str = "0/1"

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["space"] = self.space.to_dict()
        out.pop("stop_after_steps")
        out.pop("verify_shard")
        return json.loads(json.dumps(out))  # as config.json reads back (tuples as lists), so resumes compare equal

    @property
    def latency_table_path(self) -> str:
        return self.latency_table or os.path.join(self.run_dir, LATENCY_TABLE_FILE)

    def build_cost_model(self) -> cost_model.CostModel:
        """What the penalty and the window measure; a latency table is measured here when it does not exist,
        unless the run has started: a resumed search must price architectures exactly as before."""
        path = self.latency_table_path
        if self.cost == "latency" and not os.path.exists(path) and os.path.exists(
                os.path.join(self.run_dir, STATE_FILE)):
            raise StateError(f"--latency_table: {path} is gone but {self.run_dir} has already started with it; "
                             "restore the file (a new measurement would price architectures differently)")

        def progress(done: int, total: int) -> None:
            if done == 1 or done == total or done % 20 == 0:
                log.info("latency table %s: %d/%d models converted (timed next)", self.latency_table_path, done,
                         total)

        return cost_model.build(self.space, self.cost, self.latency_table_path, progress, self.latency_format)
