"""The NSE manager (section 6): sub-spaces, pending queues, end-of-round sampling, Pareto front, refill.

Pure host logic on pool indices; the supernet-dependent parts (BN recalibration and held-out
accuracy) live in nse_tf.search.run / nse_tf.search.round_trainer, so this module is testable without TensorFlow.
The whole state is one versioned JSON document (``EvolutionState``), written atomically.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from nse_tf.cost.model import CostModel
from nse_tf.search import gates
from nse_tf.search.round_settings import PenaltyConfig
from nse_tf.utils.settings import (END_OF_ROUND, Flag, SettingError, at_least, between, check_fields, flag_option,
                                   one_of, optional, positive, setting)

STATE_FORMAT = "nse_tf.evolution_state"
STATE_VERSION = 1
PHASES = ("train", "evaluate", "done")


class StateError(ValueError):
    """A state file that is corrupted or does not match the run's flags; never silently restarted."""


class SamplingError(RuntimeError):
    """The cost window cannot be filled with architectures from the learned distribution."""


def _window(value: Any) -> str | None:
    if value is None or (len(value) == 2 and 0 <= value[0] < value[1]):
        return None
    return f"must be two costs low,high with 0 <= low < high, got {value}"


def _floats(values: Sequence[str] | None) -> tuple[float, ...] | None:
    """A list flag's numbers (a window's ``66,78``) as floats."""
    if values is None:
        return None
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise SettingError("window", f"expected two numbers low,high, got {','.join(values)!r}") from None


_EMA_EXACT = ("ema", "exact")
_BN_STARTS = ("previous", "trained")


@dataclasses.dataclass(frozen=True)
class EvolutionConfig:
    """Options of the evolution; defaults are the released code's (drift is ours to choose). drift and
    extra_margin are in the search's cost unit (M MACs, or ms for a latency search). The end-of-round settings
    (sampling, the window, the evaluation) may change when a trained round resumes before its evaluation ends."""

    ops_per_cell: int = setting(5, "K: operations per cell sub-space.", check=at_least(2), label="ops_per_cell (K)")
    max_rounds: int | None = setting(None, "Cap on rounds (default (pool size - 1) // (K - 1)).", "integer",
                                     check=optional(at_least(1)))
    num_archs: int = setting(2000, "Architectures sampled and evaluated at the end of a round.", when=END_OF_ROUND,
                             check=at_least(1))
    num_extra: int = setting(100, "Extra architectures just below the window (dominance only).", when=END_OF_ROUND,
                             check=at_least(0))
    drift: float = setting(10.0, "Half-width of the end-of-round window, in the cost unit.", flags=(
        Flag("mac_drift", 10.0, "Half-width of the end-of-round MACs window, in M MACs ({cost}=macs).", "macs"),
        Flag("drift_ms", None, "Half-width of the end-of-round latency window, in ms ({cost}=latency; default 10% of "
             "{target_ms}).", "latency")),
        when=END_OF_ROUND, check=positive, label="drift (the window's half-width)", old_names=("mac_drift",))
    extra_margin: float = setting(10.0, "Width of the extras' window below it, in the cost unit.", flags=(
        Flag("extra_margin", 10.0, "Width of the extras' window below it, in M MACs ({cost}=macs).", "macs"),
        Flag("extra_margin_ms", None, "Width of the extras' window below it, in ms ({cost}=latency; default 10% of "
             "{target_ms}).", "latency")),
        when=END_OF_ROUND, check=at_least(0))
    bn_batches: int = setting(50, "BN recalibration batches before each evaluation.", when=END_OF_ROUND,
                              check=at_least(1))
    # How each evaluated architecture's BN statistics are re-estimated from those bn_batches x batch_size
    # training images: "ema" runs them batch by batch at the layers' momentum (the method's procedure);
    # "exact" averages the statistics of all of them, in forward passes of at most bn_batch_size images.
    bn_mode: str = setting("ema", "How the BN statistics of an evaluated path are re-estimated from those batches: "
                           "ema (batch by batch at BN momentum, the method's) or exact (their mean and variance over "
                           "all the images, in passes of {bn_batch_size}).", choices=_EMA_EXACT, when=END_OF_ROUND,
                           check=one_of(*_EMA_EXACT), missing="ema")
    bn_batch_size: int = setting(512, "Images per forward pass of {bn_mode}=exact.", when=END_OF_ROUND,
                                 check=at_least(1), missing=512)
    # Where an "ema" re-estimation starts: "previous", the statistics the architecture evaluated before left
    # (the released code: not reset, so a result depends on the order); "trained", the supernet's own at the
    # end of training, restored before each architecture, so results do not depend on the order and the
    # evaluation is split across the workers of a multi-worker search ("exact" never depends on it).
    bn_start: str = setting("previous", "Where {bn_mode}=ema starts each architecture: previous (what the one before "
                            "left, the released code's) or trained (the supernet's statistics restored first: results "
                            "independent of the order, so a multi-worker search splits the list).",
                            choices=_BN_STARTS, when=END_OF_ROUND, check=one_of(*_BN_STARTS), missing="previous")
    eval_batch_size: int | None = setting(  # held-out images per inference batch (None: the search's batch size)
        None, "Held-out images per inference batch of the end-of-round evaluation (default: {batch_size}).",
        "integer", when=END_OF_ROUND, check=optional(at_least(1)), missing=None)
    max_sample_draws: int = setting(200_000, "Draws from the learned gates to find {num_archs} unique architectures "
                                    "in the window (and {num_extra} below it) at the end of a round.",
                                    when=END_OF_ROUND, check=at_least(1))
    inherit_weights: bool = setting(False, "Keep weights of ops that stay between rounds (ours).")
    preserve_prev: bool = setting(True, "Protect the previous optimized subset from pruning.")
    # The end-of-round window (low, high) in the cost unit, when it is not target +- drift: the paper's
    # latency search penalises towards 66 but samples in (66, 78), extras in (64, 66].
    window: tuple[float, float] | None = setting(
        None, "End-of-round window low,high in the cost unit, instead of the target +- the drift (the paper's "
        "latency search: target 66, window 66,78; extras below low by the margin).", "list", when=END_OF_ROUND,
        check=_window, parse=_floats, missing=None)
    # The share of the num_archs window candidates drawn uniformly over the window's architectures of the
    # round's active sub-space operations instead of from the gates (ours: gates that collapse to cheap
    # operations otherwise leave the window's better networks unsampled; the authors' sampler has such an option).
    uniform_fraction: float = setting(0.0, "The share of {num_archs} end-of-round candidates drawn uniformly over "
                                      "the window's architectures of the round's active operations, the rest from "
                                      "the gates.", when=END_OF_ROUND, check=between(0, 1), missing=0.0)
    # Per cell, pool operations the cell never holds (ours; empty: none). A pool for small images keeps
    # expansion-1 operations out of all but the first cell, as TuNAS's and MnasNet's mobile spaces do.
    excluded_ops: tuple[tuple[str, ...], ...] = setting(
        (), "CELLS:OP,OP,...: operations these cells never hold; CELLS is a cell index, a range 1-8, or all (repeat "
        "the flag for several groups; cells count from 0).", "multi_string", flag="exclude_ops", missing=[])

    def __post_init__(self) -> None:
        check_fields(self)
        object.__setattr__(self, "excluded_ops", tuple(tuple(str(op) for op in cell) for cell in self.excluded_ops))
        if self.window is not None:
            object.__setattr__(self, "window", (float(self.window[0]), float(self.window[1])))

    @property
    def order_free(self) -> bool:
        """Whether an architecture's accuracy is independent of what was evaluated before it (so the list may
        be split across workers and the results gathered)."""
        return self.bn_mode == "exact" or self.bn_start == "trained"

    def window_bounds(self, target: float) -> tuple[float, float]:
        """(low, high) of the end-of-round window: ``window`` if set, else target +- drift."""
        return self.window if self.window is not None else (target - self.drift, target + self.drift)

    def budget(self, target: float) -> float:
        """The most the chosen architecture may cost: the penalty's target, or the top of an explicit window
        (the paper's latency search targets the bottom of its window)."""
        return target if self.window is None else self.window[1]


@dataclasses.dataclass
class ArchPoint:
    """One evaluated architecture: per-cell pool indices, cost (M MACs or ms), held-out top-1."""

    cells: list[list[int]]
    cost: float
    accuracy: float = float("nan")
    round: int = 0
    extra: bool = False
    seed: bool = False  # a seed architecture (seed_archs), evaluated every round beside the front

    def key(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(sorted(c)) for c in self.cells)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ArchPoint":
        cost = data.get("cost", data.get("macs"))  # "macs": states written before latency searches existed
        if cost is None:
            raise KeyError("cost")
        return cls([list(map(int, c)) for c in data["cells"]], float(cost), float(data["accuracy"]),
                   int(data["round"]), bool(data.get("extra", False)), bool(data.get("seed", False)))


@dataclasses.dataclass
class EvolutionState:
    """Everything that carries across rounds, and where the run stands."""

    pool: list[str]
    ops_per_cell: int
    num_rounds: int
    seed: int
    round: int
    phase: str
    subspaces: list[list[int]]
    pending: list[list[int]]
    protected: list[list[int]]  # the previous round's optimized subsets (kept from pruning if preserve_prev)
    pareto: list[ArchPoint]
    history: list[dict[str, Any]]
    # Seed architectures (per-cell pool indices): their operations stay in every round's sub-spaces and they
    # are evaluated every round, so the search never returns what it has not compared with them.
    seeds: list[list[list[int]]] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["pareto"] = [p.to_json() for p in self.pareto]
        return {"format": STATE_FORMAT, "version": STATE_VERSION, **data}

    @classmethod
    def from_json(cls, data: Any, source: str = "state") -> "EvolutionState":
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise StateError(f"{source}: not an nse_tf evolution state file")
        if data.get("version") != STATE_VERSION:
            raise StateError(f"{source}: state version {data.get('version')!r} is not {STATE_VERSION}")
        try:
            for key in ("pool", "subspaces", "pending", "protected", "pareto", "history"):
                if key in data and not isinstance(data[key], list):
                    raise TypeError(f"{key} is a JSON {type(data[key]).__name__}, not an array")
            for key, items in (("history", data.get("history", [])), ("pareto", data.get("pareto", []))):
                if not all(isinstance(item, dict) for item in items):
                    raise TypeError(f"{key} holds something other than objects")
            state = cls(
                pool=[str(n) for n in data["pool"]], ops_per_cell=int(data["ops_per_cell"]),
                num_rounds=int(data["num_rounds"]), seed=int(data["seed"]), round=int(data["round"]),
                phase=str(data["phase"]),
                subspaces=[list(map(int, s)) for s in data["subspaces"]],
                pending=[list(map(int, s)) for s in data["pending"]],
                protected=[list(map(int, s)) for s in data["protected"]],
                pareto=[ArchPoint.from_json(p) for p in data["pareto"]],
                # "best_macs": rounds recorded before latency searches existed (the one place old keys are read)
                history=[{("best_cost" if k == "best_macs" else k): v for k, v in h.items()} for h in data["history"]],
                seeds=[[list(map(int, c)) for c in seed] for seed in data.get("seeds", [])])  # none before seeds
        except (KeyError, TypeError, ValueError, AttributeError) as err:  # a field of another JSON type
            raise StateError(f"{source}: corrupted state ({type(err).__name__}: {err})") from None
        state.check(source)
        return state

    def check(self, source: str = "state") -> None:
        if self.phase not in PHASES:
            raise StateError(f"{source}: unknown phase {self.phase!r}")
        n = len(self.subspaces)
        if len(self.pending) != n or len(self.protected) != n:
            raise StateError(f"{source}: sub-spaces, pending queues and protected sets disagree on the cell count")
        for c in range(n):
            ops = self.subspaces[c] + self.pending[c]
            if any(not 0 <= i < len(self.pool) for i in ops) or len(set(ops)) != len(ops):
                raise StateError(f"{source}: cell {c}: sub-space and pending queue must hold distinct pool indices")
        for k, seed in enumerate(self.seeds):
            if len(seed) != n or any(not 0 <= i < len(self.pool) for cell in seed for i in cell):
                raise StateError(f"{source}: seed architecture {k} does not fit the cells and pool")


def num_rounds(pool_size: int, ops_per_cell: int, max_rounds: int | None) -> int:
    rounds = max(1, (pool_size - 1) // (ops_per_cell - 1))
    return min(rounds, max_rounds) if max_rounds else rounds


def initial_state(pool: Sequence[str], n_cells: int, config: EvolutionConfig, seed: int,
                  seeds: Sequence[Sequence[Sequence[int]]] = ()) -> EvolutionState:
    """Each cell shuffles the whole pool (seeded) less its excluded operations; the seed architectures'
    operations come first, then the shuffle's: the first K (or all the seeds' ops) are its sub-space, the rest
    its queue. The seeds' operations are protected from self-simplification from the first round on."""
    rng = np.random.default_rng([seed, 0x5E])
    excluded = cell_exclusions(pool, n_cells, config)
    seed_ops = seed_operations(seeds, n_cells)
    subspaces, pending = [], []
    for c in range(n_cells):
        order = [int(i) for i in rng.permutation(len(pool)) if int(i) not in excluded[c]]
        order = seed_ops[c] + [i for i in order if i not in seed_ops[c]]
        size = max(config.ops_per_cell, len(seed_ops[c]))
        subspaces.append(sorted(order[:size]))
        pending.append(order[size:])
    return EvolutionState(list(pool), config.ops_per_cell, num_rounds(len(pool), config.ops_per_cell,
                                                                    config.max_rounds),
                          seed, 0, "train", subspaces, pending, seed_ops, [], [],
                          [[sorted(map(int, cell)) for cell in s] for s in seeds])


def cell_exclusions(pool: Sequence[str], n_cells: int, config: EvolutionConfig) -> list[set[int]]:
    """Pool indices each cell never holds (``config.excluded_ops``, by name)."""
    if not config.excluded_ops:
        return [set() for _ in range(n_cells)]
    if len(config.excluded_ops) != n_cells:
        raise ValueError(f"excluded_ops names {len(config.excluded_ops)} cells, the space has {n_cells}")
    index = {name: i for i, name in enumerate(pool)}
    out = []
    for c, names in enumerate(config.excluded_ops):
        unknown = [n for n in names if n not in index]
        if unknown:
            raise ValueError(f"excluded_ops: cell {c}: {', '.join(unknown)} not in the pool")
        if len(set(names)) >= len(pool):
            raise ValueError(f"excluded_ops: cell {c}: every operation of the pool is excluded")
        out.append({index[n] for n in names})
    return out


def seed_operations(seeds: Sequence[Sequence[Sequence[int]]], n_cells: int) -> list[list[int]]:
    """Per cell, the sorted union of the seed architectures' operations."""
    ops: list[set[int]] = [set() for _ in range(n_cells)]
    for seed in seeds:
        for c, cell in enumerate(seed):
            ops[c].update(int(i) for i in cell)
    return [sorted(s) for s in ops]


def continuation_state(previous: EvolutionState, pool: Sequence[str], config: EvolutionConfig, seed: int
                       ) -> EvolutionState:
    """A second space (the paper's NSENet run): the finished search's optimized subsets, protected, with
    its Pareto architectures; the operations new in ``pool`` are queued in a fresh random order per cell."""
    if previous.phase != "done":
        raise StateError("the search to continue from has not finished (phase "
                         f"{previous.phase!r}, round {previous.round})")
    index = {name: i for i, name in enumerate(pool)}
    missing = sorted(set(previous.pool) - set(index))
    if missing:
        raise StateError(f"the new pool lacks operations of the finished search: {', '.join(missing)}")
    remap = [index[name] for name in previous.pool]
    new_ops = [i for i, name in enumerate(pool) if name not in set(previous.pool)]
    if not new_ops:
        raise StateError("the new pool adds no operation to the finished search's pool")
    rng = np.random.default_rng([seed, 0xC0])
    subsets = [sorted(remap[i] for i in s) for s in previous.protected]
    pending = [[new_ops[i] for i in rng.permutation(len(new_ops))] for _ in subsets]
    subspaces, pending = refill(subsets, pending, config.ops_per_cell)
    pareto = [ArchPoint([[remap[i] for i in cell] for cell in p.cells], p.cost, p.accuracy, -1, False)
              for p in previous.pareto]
    # Counted as any search of ``pool`` counts them (mac72, K = 5: 17), so max_rounds means the same in
    # both; the paper's NSENet continuation is 3 rounds, i.e. max_rounds=3.
    rounds = num_rounds(len(pool), config.ops_per_cell, config.max_rounds)
    return EvolutionState(list(pool), config.ops_per_cell, rounds, seed, 0, "train", subspaces, pending, subsets,
                          pareto, [])


def sample_architectures(rng: np.random.Generator, alpha: np.ndarray, active: np.ndarray,
                         subspaces: Sequence[Sequence[int]], slots: Sequence[gates.CellSlots], *, cost: CostModel,
                         target: float, config: EvolutionConfig, round_index: int) -> list[ArchPoint]:
    """Unique architectures: ``num_archs`` with cost strictly inside the window (target - drift, target +
    drift, or ``config.window``), the ``uniform_fraction`` share of them drawn uniformly over the window's
    architectures of the active operations and the rest from the learned distribution, and up to
    ``num_extra`` from the learned distribution in (low - margin, low]; priced by ``cost``. A window the draws
    cannot fill is a ``SamplingError`` saying how far they got and which settings widen it."""
    low, high = config.window_bounds(target)
    extra_low = low - config.extra_margin
    p = gates.gate_probability(alpha)
    found: dict[tuple, ArchPoint] = {}
    for cells in uniform_window_draws(rng, active, subspaces, slots, cost=cost, window=(low, high),
                                      n=int(round(config.uniform_fraction * config.num_archs))):
        point = ArchPoint(cells, cost.architecture_cost(cells), round=round_index)
        found.setdefault(point.key(), point)
    n_main, n_extra = len(found), 0
    for _ in range(config.max_sample_draws):
        cells = []
        for c, slot in enumerate(slots):
            draw = gates.bernoulli_set(rng, p[c], active[c], slot.may_be_empty or not active[c].any(), c)
            cells.append(sorted(subspaces[c][j] for j in np.flatnonzero(draw)))
        point = ArchPoint(cells, cost.architecture_cost(cells), round=round_index)
        if point.key() in found:
            continue
        if low < point.cost < high and n_main < config.num_archs:
            found[point.key()] = point
            n_main += 1
        elif extra_low < point.cost <= low and n_extra < config.num_extra:
            point.extra = True
            found[point.key()] = point
            n_extra += 1
        if n_main >= config.num_archs and n_extra >= config.num_extra:
            break
    if n_main < config.num_archs:
        raise SamplingError(
            f"round {round_index + 1}: only {n_main} of {config.num_archs} unique architectures with cost in "
            f"({low:g}, {high:g}) {cost.unit} after {config.max_sample_draws} draws from the learned distribution; "
            f"{_widen_window()}")
    return list(found.values())


def _widen_window() -> str:
    """What a round whose window was not filled may change when it resumes (the flags, from the settings)."""
    def flag(cls: type, field: str, cost: str | None = None) -> str:
        return flag_option(cls, field, cost)

    return (f"rerun with a wider window ({flag(EvolutionConfig, 'drift', 'macs')}, or "
            f"{flag(EvolutionConfig, 'drift', 'latency')} for a latency search, or {flag(EvolutionConfig, 'window')}), "
            f"a lower {flag(EvolutionConfig, 'num_archs')} or more {flag(EvolutionConfig, 'max_sample_draws')}: the "
            "round is trained, and these settings may change when it resumes (moving the target, "
            f"{flag(PenaltyConfig, 'target', 'macs')} or {flag(PenaltyConfig, 'target', 'latency')}, needs a new run)")


def uniform_window_draws(rng: np.random.Generator, active: np.ndarray, subspaces: Sequence[Sequence[int]],
                         slots: Sequence[gates.CellSlots], *, cost: CostModel, window: tuple[float, float],
                         n: int) -> list[list[list[int]]]:
    """Up to ``n`` distinct architectures, each uniform over those of the active sub-space operations strictly
    inside ``window`` under ``cost`` (fewer when the window holds fewer; none when it holds none)."""
    if n <= 0:
        return []
    from nse_tf.search.uniform_sampling import UniformWindowSampler

    ops = [[i for j, i in enumerate(sub) if active[c, j]] for c, sub in enumerate(subspaces)]
    rows = [[cost.op_costs[c][i] for i in cell] for c, cell in enumerate(ops)]
    may_be_empty = [slot.may_be_empty or not cell for slot, cell in zip(slots, ops)]
    try:
        # 2,000 cost bins: exactness comes from rejecting draws outside the window, the bins only steer them
        sampler = UniformWindowSampler(rows, cost.fixed, may_be_empty, *window,
                                       resolution=(window[1] - cost.fixed) / 2000)
    except ValueError:  # nothing of the active operations in the window: the gates' draws must fill it
        return []
    wanted = int(min(n, sampler.candidates))
    seen: dict[tuple, list[list[int]]] = {}
    for _ in range(100 * wanted):
        cells = [sorted(ops[c][j] for j in cell) for c, cell in enumerate(sampler.draw(rng))]
        seen.setdefault(tuple(tuple(c) for c in cells), cells)
        if len(seen) >= wanted:
            break
    return list(seen.values())


def architectures_in_window(subspaces: Sequence[Sequence[int]], op_costs: Sequence[Sequence[float]], fixed: float,
                            may_be_empty: Sequence[bool], low: float, high: float) -> float:
    """At most how many architectures of the sub-spaces cost strictly inside (low, high); 0 means none can,
    which a round must know before it trains, not after."""
    from nse_tf.search.uniform_sampling import UniformWindowSampler

    rows = [[op_costs[c][i] for i in s] for c, s in enumerate(subspaces)]
    try:
        return UniformWindowSampler(rows, fixed, may_be_empty, low, high).candidates
    except ValueError:  # the window lies below the fixed cost, or holds nothing
        return 0.0


def pareto_front(points: Sequence[ArchPoint]) -> list[ArchPoint]:
    """Non-dominated points over (cost, -accuracy); extras can only knock others out; on exact
    duplicates the first listed wins (list new points before previous-round ones)."""
    front: list[ArchPoint] = []
    seen: set[tuple[float, float]] = set()
    for i, a in enumerate(points):
        dominated = any(
            (b.cost <= a.cost and b.accuracy >= a.accuracy and (b.cost < a.cost or b.accuracy > a.accuracy))
            for j, b in enumerate(points) if j != i)
        if dominated or (a.cost, a.accuracy) in seen:
            continue
        seen.add((a.cost, a.accuracy))
        if not a.extra:
            front.append(a)
    return sorted(front, key=lambda p: p.cost)


def optimized_subsets(front: Sequence[ArchPoint], n_cells: int) -> list[list[int]]:
    """Union, per cell, of the operations the front's architectures use."""
    subsets: list[set[int]] = [set() for _ in range(n_cells)]
    for point in front:
        for c, cell in enumerate(point.cells):
            subsets[c].update(cell)
    return [sorted(s) for s in subsets]


def refill(subsets: Sequence[Sequence[int]], pending: Sequence[Sequence[int]], ops_per_cell: int
           ) -> tuple[list[list[int]], list[list[int]]]:
    """Subset first, then min(K - |subset|, |pending|) ops popped from the queue."""
    subspaces, queues = [], []
    for subset, queue in zip(subsets, pending):
        take = max(0, min(ops_per_cell - len(subset), len(queue)))
        subspaces.append(sorted(list(subset) + list(queue[:take])))
        queues.append(list(queue[take:]))
    return subspaces, queues


def end_round(state: EvolutionState, sampled: Sequence[ArchPoint], previous: Sequence[ArchPoint],
              config: EvolutionConfig, summary: dict[str, Any]) -> list[ArchPoint]:
    """Front over new + extras + re-evaluated previous points (seed architectures among them); then subsets
    (with the seeds' operations), refill, next round."""
    front = pareto_front(list(sampled) + list(previous))
    if not front:
        # Extras can knock out every architecture in the window (the released code then crashes on an empty
        # front): fall back to the front of the window's architectures alone.
        front = pareto_front([p for p in list(sampled) + list(previous) if not p.extra])
    subsets = [sorted(set(subset) | set(seed_ops))
               for subset, seed_ops in zip(optimized_subsets(front, len(state.subspaces)),
                                           seed_operations(state.seeds, len(state.subspaces)))]
    last = state.round + 1 >= state.num_rounds
    state.history.append({**summary, "round": state.round, "front_size": len(front),
                          "subspace_sizes": [len(s) for s in state.subspaces],
                          "optimized_sizes": [len(s) for s in subsets]})
    state.pareto = front
    state.protected = subsets
    if last:
        state.phase = "done"
        state.subspaces = subsets
    else:
        state.subspaces, state.pending = refill(subsets, state.pending, state.ops_per_cell)
        state.round += 1
        state.phase = "train"
    return front
