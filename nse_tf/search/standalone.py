"""Stand-alone checks of a finished search: its architectures retrained alone on the held-out split.

Two tools use this: ``tools/ranking.py`` (does the supernet's shared-weight top-1 rank architectures as
training them alone does?) and ``tools/random_search.py`` (the control: architectures drawn uniformly
from the same window, the best chosen by the same short training). Both train on the search's training
images minus its held-out split and score on that held-out split, never on the test split.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import numpy as np

from nse_tf.search.config import CONFIG_FILE, LATENCY_TABLE_FILE
from nse_tf.search.evolution import ArchPoint, StateError
from nse_tf.search.saved_config import read_search_config
from nse_tf.space.architecture import Architecture, NetworkSpec
from nse_tf.space.macro import MacroSpace
from nse_tf.train.config import TrainConfig
from nse_tf.utils import state_files
from nse_tf.utils.shards import Shard  # re-exported: which retrainings a process runs

# The short recipe both tools train with: the shared Fashion-MNIST recipe's augmentation and regularisation,
# a few epochs, no EMA (an EMA of 0.999 lags a 1400-step run).
SHORT_RECIPE = TrainConfig(epochs=3, batch_size=128, lr=0.1, warmup_epochs=0.3, label_smoothing=0.1,
                           ema_momentum=None, flip=True, crop_padding=2, erase_probability=0.0, dropout=0.1)


@dataclasses.dataclass(frozen=True)
class SearchRunInfo:
    """What the stand-alone tools need from a search run directory's config.json."""

    run_dir: str
    space: MacroSpace
    cost: str
    latency_table: str | None
    target: float
    window: tuple[float, float]
    budget: float  # the most a chosen architecture may cost (reporting.choose_architectures' limit)
    heldout_examples: int
    data_seed: int
    dataset: str
    latency_format: str = "float32"

    @classmethod
    def load(cls, run_dir: str) -> "SearchRunInfo":
        """The run's config.json read as the search reads it (``saved_config.read_search_config``)."""
        path = os.path.join(run_dir, CONFIG_FILE)
        saved = read_json(path, f"is {run_dir} a search run directory?", f"is {run_dir} a search run directory?")
        try:
            config = read_search_config(saved)
        except (KeyError, TypeError, ValueError) as err:
            raise StateError(f"{path}: not a search run's settings ({type(err).__name__}: {err})") from None
        target = config.penalty.target
        return cls(run_dir, config.space, config.cost, config.latency_table, target,
                   config.evolution.window_bounds(target), config.evolution.budget(target),
                   config.data.heldout_examples, config.data.seed, config.data.dataset, config.latency_format)

    @property
    def selection_window(self) -> tuple[float, float]:
        """Where the search's own pick may lie: the window's lower part up to the budget."""
        return self.window[0], min(self.window[1], self.budget)

    def heldout_seed(self, round_index: int) -> int:
        """The seed that carved round ``round_index``'s held-out split (``SearchRun.round_splits``)."""
        return self.data_seed + 1000 * round_index

    def cost_model(self) -> Any:
        from nse_tf.cost import model as cost_model

        table = self.latency_table or os.path.join(self.run_dir, LATENCY_TABLE_FILE)
        return cost_model.build(self.space, self.cost, table, latency_format=self.latency_format)

    def spec(self, cells: Sequence[Sequence[int]], name: str) -> NetworkSpec:
        return NetworkSpec(self.space, Architecture(tuple(tuple(sorted(c)) for c in cells)), name)


def finished_rounds(run_dir: str) -> list[int]:
    """Rounds whose end-of-round evaluation is written (round_XX/pareto.json), in order."""
    return sorted(int(name.split("_")[1]) for name in os.listdir(run_dir)
                  if name.startswith("round_") and os.path.exists(os.path.join(run_dir, name, "pareto.json")))


def round_points(run_dir: str, round_index: int) -> list[ArchPoint]:
    """Every architecture the round evaluated (its own samples, extras and carried front points)."""
    path = os.path.join(run_dir, f"round_{round_index:02d}", "pareto.json")
    data = read_json(path, f"round {round_index + 1} has not finished")
    try:
        return [ArchPoint.from_json(p) for p in data["evaluated"]]
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # a field missing or of another type
        raise StateError(f"{path}: corrupted ({type(err).__name__}: {err}); {COPY_FIX}") from None


# What to do about a damaged file of a finished round: nothing rewrites it.
COPY_FIX = "restore it from a copy of the run directory"


def read_json(path: str, hint: str, fix: str = COPY_FIX) -> Any:
    """A search run's JSON object, or one StateError line naming it (``hint`` says what a missing one means,
    ``fix`` what to do about a damaged one)."""
    return state_files.read_json(path, fix, error=StateError, label="corrupted", missing=hint)


def open_for_tool(run_dir: str | None, threads: int) -> tuple[SearchRunInfo, list[int]]:
    """What tools/ranking.py and tools/random_search.py check before any work: the search run they read
    (a Fashion-MNIST search with its config), its finished rounds, and the threads they train with."""
    from nse_tf.train.config import TrainError
    from nse_tf.train.device import set_cpu_threads
    from nse_tf.utils.cli import FlagError

    if not run_dir:
        raise FlagError("search_run", "is required")
    try:
        info = SearchRunInfo.load(run_dir)
    except StateError as err:
        raise FlagError("search_run", str(err)) from None
    if info.dataset != "fashion_mnist":
        raise FlagError("search_run", f"searched {info.dataset}; stand-alone retraining reads fashion_mnist")
    try:
        set_cpu_threads(threads)
    except TrainError as err:
        raise FlagError("threads", str(err)) from None
    return info, finished_rounds(run_dir)


def open_round_for_tool(run_dir: str | None, threads: int, round_number: int) -> tuple[SearchRunInfo, int]:
    """``open_for_tool``, then the finished round a tool reads (``round_number`` 1-based; 0: the last finished),
    each refusal one FlagError naming the search run or round flag (tools/ranking.py, tools/proxy.py)."""
    from nse_tf.utils.cli import FlagError

    info, rounds = open_for_tool(run_dir, threads)
    if not rounds:
        raise FlagError("search_run", f"{run_dir} has no finished round (round_XX/pareto.json)")
    round_index = rounds[-1] if round_number == 0 else round_number - 1
    if round_index not in rounds:
        raise FlagError("round", f"round {round_number} has not finished; finished: {[r + 1 for r in rounds]}")
    return info, round_index


def window_points(points: Sequence[ArchPoint], window: tuple[float, float], round_index: int) -> list[ArchPoint]:
    """The round's own samples inside the window (no extras, no points carried from earlier rounds)."""
    low, high = window
    return [p for p in points if p.round == round_index and not p.extra and low < p.cost < high]


def spread_over_accuracy(points: Sequence[ArchPoint], n: int) -> list[ArchPoint]:
    """``n`` points evenly spaced in rank of shared-weight accuracy, lowest to highest (all if fewer)."""
    ordered = sorted(points, key=lambda p: (p.accuracy, p.cost))
    if len(ordered) <= n:
        return ordered
    picks = np.unique(np.round(np.linspace(0, len(ordered) - 1, n)).astype(int))
    return [ordered[i] for i in picks]


def train_on_heldout(spec: NetworkSpec, recipe: TrainConfig, run_dir: str, heldout_examples: int,
                     heldout_seed: int, data: Any = None) -> float:
    """Train ``spec`` alone with ``recipe`` on the training images minus the held-out split; its held-out
    top-1. Resumable (``training.train``): a finished run directory is read back, not retrained."""
    from nse_tf.data.arrays import heldout_arrays, load_arrays
    from nse_tf.train.loop import train

    data = load_arrays("fashion_mnist") if data is None else data
    split = heldout_arrays(data, heldout_examples, heldout_seed)
    return train(spec, recipe, run_dir, split, dataset_name=split.name, verbose=0).top1


def finished_result(run_dir: str) -> dict[str, Any] | None:
    """A finished retraining's result.json (held-out ``top1``, ``processes`` with their seconds); None while
    it is not finished."""
    from nse_tf.train.config import RESULT_NAME

    from nse_tf.train.run_dir import read_result

    if not os.path.exists(os.path.join(run_dir, RESULT_NAME)):
        return None
    return read_result(run_dir, fields={"top1": state_files.NUMBER})  # what the tools read of it


def training_seconds(result: dict[str, Any]) -> float:
    """Seconds over every process that trained the run (the last one's where none were recorded)."""
    return float(sum(p["seconds"] for p in result.get("processes", ())) or result["seconds"])


def run_share(jobs: Sequence[tuple[NetworkSpec, TrainConfig, str]], shard: Shard, heldout_examples: int,
              heldout_seed: int, log=print, *, dataset: str = "fashion_mnist", data_dir: str | None = None,
              image_size: int | None = None) -> list[dict[str, Any] | None]:
    """Train this shard's jobs (spec, recipe, run directory) in order; then every job's result.json, None for
    those another shard has not finished yet. The results are read after this shard's own work, so that the
    shard finishing last sees every other shard's runs, however their ends interleave."""
    from nse_tf.data.arrays import heldout_name, load_arrays
    from nse_tf.train.run_dir import check_run_dir

    data = None
    split = heldout_name(dataset, heldout_examples, heldout_seed)
    for k, (spec, recipe, run_dir) in enumerate(jobs):
        if shard.takes(k):
            data = load_arrays(dataset, data_dir, image_size) if data is None else data
            train_on_heldout(spec, recipe, run_dir, heldout_examples, heldout_seed, data)
            result = finished_result(run_dir)
            log(f"[{k + 1}/{len(jobs)}] {os.path.basename(run_dir)}: held-out top-1 {result['top1']:.4f} "
                f"({training_seconds(result):.0f} s)")
    results: list[dict[str, Any] | None] = []
    for k, (spec, recipe, run_dir) in enumerate(jobs):
        if not shard.takes(k) and os.path.exists(os.path.join(run_dir, "result.json")):
            # another shard's finished run: it must be this job's (network, recipe, split), not a leftover
            check_run_dir(run_dir, spec, recipe, split)
        results.append(finished_result(run_dir))
    return results
