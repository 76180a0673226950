"""SearchConfig: every setting of a search run, declared once (``nse_tf.utils.settings``), and the names of its
run directory's files. TensorFlow-free, so that flags, config.json and the stand-alone tools build it first."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from nse_tf.data.config import DataConfig
from nse_tf.search.evolution import EvolutionConfig
from nse_tf.search.round_settings import OptimConfig, PenaltyConfig
from nse_tf.search.verification import VerifyConfig
from nse_tf.space.macro import MacroSpace
from nse_tf.utils.shards import Shard
from nse_tf.utils.settings import (REQUIRED, between, check_fields, one_of, optional, positive, section, setting,
                                   settings_of)

STATE_FILE = "evolution_state.json"
CONFIG_FILE = "config.json"
LATENCY_TABLE_FILE = "latency_table.json"
COSTS = ("macs", "latency")
STRATEGIES = ("mirrored", "multi_worker", "default")


def _shard(value: str) -> str | None:
    try:
        Shard.parse(value)
    except ValueError as err:
        return str(err)
    return None


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """One search run, built once from flags by tools/search.py (``search.from_flags``), or read back from its
    config.json (``search.saved_config``)."""

    run_dir: str = setting(REQUIRED, "Directory for flags, state, checkpoints, events and results (resumes).",
                           "string")
    space: MacroSpace = section(MacroSpace)  # the preset and its overrides: search.schema.SPACE_SETTINGS
    data: DataConfig = section(DataConfig)
    optim: OptimConfig = section(OptimConfig, OptimConfig())
    penalty: PenaltyConfig = section(PenaltyConfig, PenaltyConfig())
    evolution: EvolutionConfig = section(EvolutionConfig, EvolutionConfig())
    cost: str = setting("macs", "What the penalty and the end-of-round window measure: M MACs (FLOPs search) or "
                        "LiteRT ms from a latency lookup table (latency search).", choices=COSTS,
                        check=one_of(*COSTS), missing="macs")
    latency_table: str | None = setting(  # None: run_dir/latency_table.json
        None, "Latency lookup table (JSON) of {cost}=latency; measured with LiteRT on this CPU and written there "
        "when absent (default: <run_dir>/latency_table.json).", "string", missing=None)
    latency_format: str = setting(  # the TFLite form the table times
        "float32", "The TFLite form the latency table times ({cost}=latency): float32, or int8 as phones run it.",
        choices=("float32", "int8"), check=one_of("float32", "int8"), missing="float32")
    epochs_per_round: float = setting(100.0, "Supernet training epochs per round.", check=positive)
    steps_per_round: int | None = setting(None, "Steps per round (overrides {epochs_per_round}).", "integer",
                                          check=optional(positive))
    gate_every: int = setting(2, "Gate step every this many iterations (Aiter).", check=positive)
    gate_warmup: float = setting(  # ours; TuNAS freezes its controller for the first 0.25
        0.0, "The share of each round's first steps that train weights only, no gate steps (ours; TuNAS freezes its "
        "controller for the first 0.25).", check=between(0, 1), missing=0.0)
    prune_threshold: float = setting(-2.0, "Self-simplification: ops whose logit falls below leave.")
    checkpoint_every: int = setting(200, "Checkpoint every this many steps.", check=positive)
    summary_every: int = setting(10, "TensorBoard scalars every this many steps.", check=positive)
    seed: int = setting(0, "Seed of the op shuffles, branch-set sampling, weight init and data order.")
    strategy: str = setting("mirrored", "tf.distribute strategy: mirrored (local devices), multi_worker (TF_CONFIG), "
                            "default.", choices=STRATEGIES, check=one_of(*STRATEGIES))
    init_from: str | None = setting(None, "Run directory of a finished search to continue into a larger {pool}.",
                                    "string")
    seed_archs: tuple[str, ...] = setting(  # network JSONs of this space evaluated every round (ours)
        (), "Network JSONs of this space (e.g. the hand-designed network at the budget and its one-change "
        "neighbours): their operations stay in every round's sub-spaces and they are evaluated every round beside "
        "the front, so the search compares its pick with them.", parse=tuple, missing=[])
    verify: VerifyConfig = section(VerifyConfig, VerifyConfig())
    # how this process runs, not settings of the run: never saved
    stop_after_steps: int | None = setting(
        None, "Stop (checkpointed) after this many steps of the current round (the round's length or more: "
        "trained, before its evaluation).", "integer", saved=False)
    verify_shard: str = setting(
        "0/1", "i/n: this process trains verification jobs i, i + n, ... (n processes or machines share the "
        "shortlist); the one finishing the last job writes the pick.", saved=False, check=_shard)

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed_archs", tuple(str(p) for p in self.seed_archs))
        check_fields(self)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["space"] = self.space.to_dict()
        for item in settings_of(SearchConfig):
            if not item.spec.saved:
                out.pop(item.path)
        return json.loads(json.dumps(out))  # as config.json reads back (tuples as lists), so resumes compare equal

    @property
    def latency_table_path(self) -> str:
        return self.latency_table or os.path.join(self.run_dir, LATENCY_TABLE_FILE)
