"""Tests for nse_tf.search.evolution (method section 6): rounds, sub-spaces and pending queues, end-of-round
sampling, Pareto front, optimized subsets, refill, continuation into a larger pool, the JSON state.

Pure numpy host logic: nothing here imports TensorFlow.
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest

from nse_tf.cost.model import CostModel, architecture_cost
from nse_tf.search import evolution
from nse_tf.search.evolution import (
    ArchPoint,
    EvolutionConfig,
    EvolutionState,
    SamplingError,
    StateError,
    continuation_state,
    end_round,
    initial_state,
    num_rounds,
    optimized_subsets,
    pareto_front,
    refill,
    sample_architectures,
)
from nse_tf.search.gates import CellSlots
from nse_tf.space.ops import POOLS

MAC27, MAC72, MB19 = list(POOLS["mac27"]), list(POOLS["mac72"]), list(POOLS["mb19"])


def pt(cost, acc, cells=((0,),), rnd=1, extra=False):
    return ArchPoint([list(c) for c in cells], float(cost), float(acc), rnd, extra)


# ---------------------------------------------------------------- num_rounds


def test_num_rounds_published_spaces():
    assert num_rounds(27, 5, None) == 6   # mac27, K = 5: 26 // 4
    assert num_rounds(19, 6, None) == 3   # mb19 latency search, K = 6: 18 // 5
    assert num_rounds(72, 5, None) == 17  # mac72, K = 5: 71 // 4


def test_num_rounds_capped_by_max_rounds():
    assert num_rounds(72, 5, 3) == 3
    assert num_rounds(27, 5, 1) == 1
    assert num_rounds(27, 5, 6) == 6
    assert num_rounds(27, 5, 100) == 6  # the cap never raises the count
    assert num_rounds(19, 6, 2) == 2


def test_num_rounds_in_initial_state():
    assert initial_state(MAC27, 4, EvolutionConfig(), 0).num_rounds == 6
    assert initial_state(MB19, 4, EvolutionConfig(ops_per_cell=6), 0).num_rounds == 3
    assert initial_state(MAC72, 4, EvolutionConfig(), 0).num_rounds == 17
    assert initial_state(MAC72, 4, EvolutionConfig(max_rounds=2), 0).num_rounds == 2


# ---------------------------------------------------------------- initial_state


def test_initial_state_subspaces_and_queues():
    n_cells = 14
    state = initial_state(MAC27, n_cells, EvolutionConfig(), seed=3)
    assert state.pool == MAC27 and state.ops_per_cell == 5 and state.seed == 3
    assert state.round == 0 and state.phase == "train"
    assert state.protected == [[] for _ in range(n_cells)]
    assert state.pareto == [] and state.history == []
    assert len(state.subspaces) == len(state.pending) == n_cells
    for sub, queue in zip(state.subspaces, state.pending):
        assert len(sub) == 5 and len(queue) == 22
        assert sub == sorted(sub)
        assert not set(sub) & set(queue)
        assert sorted(sub + queue) == list(range(27))
    # a per-cell shuffle: cells differ in sub-space and in queue order; queues are not sorted
    assert len({tuple(s) for s in state.subspaces}) > 1
    assert len({tuple(q) for q in state.pending}) == n_cells
    assert any(q != sorted(q) for q in state.pending)
    state.check()


def test_initial_state_deterministic_per_seed():
    a = initial_state(MAC27, 6, EvolutionConfig(), seed=7)
    b = initial_state(MAC27, 6, EvolutionConfig(), seed=7)
    c = initial_state(MAC27, 6, EvolutionConfig(), seed=8)
    assert a.subspaces == b.subspaces and a.pending == b.pending
    assert (a.subspaces, a.pending) != (c.subspaces, c.pending)


def test_initial_state_latency_k6():
    state = initial_state(MB19, 5, EvolutionConfig(ops_per_cell=6), seed=0)
    for sub, queue in zip(state.subspaces, state.pending):
        assert len(sub) == 6 and len(queue) == 13
        assert sorted(sub + queue) == list(range(19))


# ---------------------------------------------------------------- sampling

# 3 cells: an NR cell (may be empty) and two R/E cells (never empty); every op costs 1 M MACs,
# so an architecture's cost is fixed + its number of operations.
SLOTS = [CellSlots(3, True), CellSlots(3, False), CellSlots(4, False)]
SUBSPACES = [[0, 2, 5], [1, 3, 4], [0, 6, 7, 8]]
# cell 2: column 3 (pool op 8) is inactive (pruned)
ACTIVE = np.array([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0]], dtype=bool)
OP_COSTS = np.ones((3, 9))
FIXED = 100.0


def all_architectures():
    """Every architecture reachable with ACTIVE: sorted pool indices per cell, R/E cells non-empty."""
    per_cell = []
    for c, slot in enumerate(SLOTS):
        ops = [SUBSPACES[c][j] for j in np.flatnonzero(ACTIVE[c])]
        subsets = [sorted(s) for r in range(len(ops) + 1) for s in itertools.combinations(ops, r)]
        per_cell.append([s for s in subsets if s or slot.may_be_empty])
    return [list(cells) for cells in itertools.product(*per_cell)]


def key(cells):
    return tuple(tuple(sorted(c)) for c in cells)


def sample(config, target, alpha=None, seed=0, round_index=2, rng=None):
    alpha = np.zeros(ACTIVE.shape) if alpha is None else alpha
    rng = np.random.default_rng(seed) if rng is None else rng
    return sample_architectures(rng, alpha, ACTIVE, SUBSPACES, SLOTS, cost=CostModel("macs", OP_COSTS, FIXED),
                                target=target, config=config, round_index=round_index)


def test_explicit_window_can_sit_off_centre_from_the_target():
    # The paper's latency setting: penalty target at the window's low end, window (66, 78), extras (64, 66].
    # Here: target 103, window (104, 107) -> 5 or 6 ops; extras (102, 104] -> 3 or 4 ops.
    config = EvolutionConfig(num_archs=20, num_extra=5, drift=0.5, extra_margin=2.0, window=(104, 107),
                             max_sample_draws=5000)
    points = sample(config, target=103.0)
    main, extra = [p for p in points if not p.extra], [p for p in points if p.extra]
    assert len(main) == 20 and len(extra) == 5
    assert all(104.0 < p.cost < 107.0 for p in main)
    assert all(102.0 < p.cost <= 104.0 for p in extra)
    assert config.window_bounds(103.0) == (104.0, 107.0)
    assert EvolutionConfig(drift=0.5).window_bounds(103.0) == (102.5, 103.5)


@pytest.mark.parametrize("window", [(3.0, 2.0), (-1.0, 2.0), (1.0,)])
def test_bad_window_is_refused(window):
    with pytest.raises(ValueError, match="^window"):
        EvolutionConfig(window=window)


def test_architecture_cost():
    costs = [[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]]
    assert architecture_cost([[0, 2], [1]], costs, 0.5) == 0.5 + 1 + 4 + 16
    assert architecture_cost([[], [0, 1, 2]], costs, 0.0) == 56.0
    assert architecture_cost([[], []], costs, 3.0) == 3.0


def test_sampling_windows_uniqueness_and_flags():
    # target 105, drift 2: main window (103, 107) -> 4, 5 or 6 ops; extras (101, 103] -> 2 or 3 ops
    config = EvolutionConfig(num_archs=40, num_extra=10, drift=2.0, extra_margin=2.0, max_sample_draws=5000)
    points = sample(config, target=105.0)
    main = [p for p in points if not p.extra]
    extra = [p for p in points if p.extra]
    assert len(main) == 40 and len(extra) == 10
    assert len({p.key() for p in points}) == len(points)  # every sampled architecture is unique
    for p in points:
        assert p.round == 2
        assert p.cost == architecture_cost(p.cells, OP_COSTS, FIXED)
        assert np.isnan(p.accuracy)
        assert all(c == sorted(c) for c in p.cells)
        assert all(op in [SUBSPACES[c][j] for j in np.flatnonzero(ACTIVE[c])] for c, cell in enumerate(p.cells)
                   for op in cell)  # only active ops of the cell's sub-space
        assert p.cells[1] and p.cells[2]  # R/E cells are never empty
    assert all(103.0 < p.cost < 107.0 for p in main)
    assert all(101.0 < p.cost <= 103.0 for p in extra)


def test_sampling_exhausts_every_window_exactly():
    """With num_archs = every architecture strictly inside the window, the result is exactly that set;
    extras are all those in (target - drift - margin, target - drift], fewer than num_extra: no error."""
    archs = all_architectures()
    assert len(archs) == 8 * 7 * 7
    cost = {key(a): FIXED + sum(map(len, a)) for a in archs}
    main_keys = {k for k, m in cost.items() if 103 < m < 107}
    extra_keys = {k for k, m in cost.items() if 101 < m <= 103}
    assert any(m == 107 for m in cost.values()) and any(m == 103 for m in cost.values())
    config = EvolutionConfig(num_archs=len(main_keys), num_extra=len(extra_keys) + 100, drift=2.0,
                             extra_margin=2.0, max_sample_draws=8_000)
    points = sample(config, target=105.0, seed=1)
    assert {p.key() for p in points if not p.extra} == main_keys
    assert {p.key() for p in points if p.extra} == extra_keys  # 103 (= target - drift) is an extra
    assert len(points) == len(main_keys) + len(extra_keys)
    # deterministic per generator seed
    again = sample(config, target=105.0, seed=1)
    assert [(p.cells, p.cost, p.extra) for p in again] == [(p.cells, p.cost, p.extra) for p in points]


def test_sampling_no_extras_requested():
    config = EvolutionConfig(num_archs=5, num_extra=0, drift=2.0, extra_margin=2.0, max_sample_draws=5000)
    points = sample(config, target=105.0)
    assert len(points) == 5 and not any(p.extra for p in points)


def test_sampling_follows_learned_distribution():
    # strongly negative alpha on cell 0 (p = 0.0005): the NR cell stays (almost) always empty;
    # strongly positive on the rest: R/E cells take every active op
    alpha = np.full(ACTIVE.shape, 20.0)
    alpha[0] = -20.0
    config = EvolutionConfig(num_archs=1, num_extra=0, drift=1.0, extra_margin=0.0, max_sample_draws=50)
    (point,) = sample(config, target=106.0, alpha=alpha)
    assert point.cells == [[], [1, 3, 4], [0, 6, 7]] and point.cost == 106.0


class CountingRng:
    def __init__(self, seed):
        self.rng, self.calls = np.random.default_rng(seed), 0

    def random(self, *args, **kwargs):
        self.calls += 1
        return self.rng.random(*args, **kwargs)


def test_sampling_unreachable_window_fails_clearly_after_capped_draws():
    # max cost is 100 + 9 = 109; the window (148, 152) cannot be reached
    alpha = np.full(ACTIVE.shape, 20.0)  # p ~ 1: one random() call per cell per draw (R/E never redrawn)
    rng = CountingRng(0)
    config = EvolutionConfig(num_archs=3, num_extra=2, drift=2.0, extra_margin=2.0, max_sample_draws=37)
    with pytest.raises(SamplingError) as info:
        sample(config, target=150.0, alpha=alpha, rng=rng)
    message = str(info.value)
    assert "(148, 152)" in message
    assert "--mac_drift" in message and "--target_macs" in message
    assert "37 draws" in message and "only 0 of 3" in message
    assert rng.calls == 37 * len(SLOTS)


def test_sampling_too_few_unique_architectures_fails():
    archs = all_architectures()
    n_main = sum(1 for a in archs if 103 < FIXED + sum(map(len, a)) < 107)
    config = EvolutionConfig(num_archs=n_main + 1, num_extra=0, drift=2.0, extra_margin=2.0,
                             max_sample_draws=3000)
    with pytest.raises(SamplingError, match=rf"only {n_main} of {n_main + 1} unique architectures"):
        sample(config, target=105.0)


# ---------------------------------------------------------------- Pareto front


def test_pareto_dominance_and_sorting():
    a = pt(10, 0.60, [[1]])
    b = pt(8, 0.50, [[2]])
    c = pt(12, 0.55, [[3]])   # dominated by a (more cost, less accuracy)
    d = pt(10, 0.58, [[4]])   # same cost as a, less accuracy: dominated
    e = pt(9, 0.50, [[5]])    # same accuracy as b, more cost: dominated
    f = pt(14, 0.70, [[6]])
    front = pareto_front([f, c, a, d, e, b])
    assert front == [b, a, f]
    assert [p.cost for p in front] == [8, 10, 14]


def test_pareto_extras_knock_out_then_leave():
    main_low = pt(4, 0.50, [[1]])
    main_hi = pt(6, 0.80, [[2]])       # dominated by the extra
    main_top = pt(7, 0.95, [[3]])
    extra = pt(5, 0.90, [[4]], extra=True)
    front = pareto_front([main_low, main_hi, extra, main_top])
    assert front == [main_low, main_top]
    assert all(not p.extra for p in front)
    # a front with only an extra on it is empty
    assert pareto_front([pt(5, 0.9, extra=True)]) == []


def test_pareto_exact_duplicates_keep_first():
    first = pt(5, 0.7, [[1]])
    second = pt(5, 0.7, [[2]])
    front = pareto_front([first, second, pt(3, 0.1, [[3]])])
    assert len(front) == 2 and front[1] is first
    front = pareto_front([second, first])
    assert len(front) == 1 and front[0] is second


def test_pareto_previous_round_loses_ties_to_new():
    new = pt(5, 0.7, [[1]], rnd=3)
    previous = pt(5, 0.7, [[2]], rnd=2)
    other_prev = pt(6, 0.8, [[3]], rnd=2)
    front = pareto_front([new, previous, other_prev])  # end_round lists new points first
    assert front == [new, other_prev] and front[0] is new


def test_optimized_subsets_union_per_cell():
    front = [pt(1, 0.1, [[0, 2], [], [5]]), pt(2, 0.2, [[2, 3], [1], [5]])]
    assert optimized_subsets(front, 3) == [[0, 2, 3], [1], [5]]
    assert optimized_subsets([], 2) == [[], []]


# ---------------------------------------------------------------- refill


def test_refill_subset_first_then_queue_front():
    subsets = [[3], [1, 4], [0, 2, 5, 6, 7, 9], [8, 1], [2]]
    pending = [[9, 0, 7, 5, 2], [6, 0], [1, 3], [4, 0], []]
    subspaces, queues = refill(subsets, pending, 5)
    assert subspaces == [[0, 3, 5, 7, 9],   # 1 + 4 popped
                         [0, 1, 4, 6],      # queue exhausted: 2 + 2
                         [0, 2, 5, 6, 7, 9],  # more than K: nothing new, keeps all 6
                         [0, 1, 4, 8],      # 2 + both left
                         [2]]               # empty queue adds nothing
    assert queues == [[2], [], [1, 3], [], []]
    assert pending == [[9, 0, 7, 5, 2], [6, 0], [1, 3], [4, 0], []]  # inputs not mutated


def test_refill_subset_of_exactly_k():
    subspaces, queues = refill([[0, 1, 2, 3, 4]], [[7, 8]], 5)
    assert subspaces == [[0, 1, 2, 3, 4]] and queues == [[7, 8]]


# ---------------------------------------------------------------- end_round


def small_state(num_cells=2, max_rounds=None):
    pool = [f"op{i}" for i in range(9)]
    config = EvolutionConfig(ops_per_cell=3, max_rounds=max_rounds)
    state = initial_state(pool, num_cells, config, seed=0)
    state.subspaces = [[0, 1, 2], [3, 4, 5]]
    state.pending = [[8, 7, 6, 5, 4, 3], [0, 8, 1, 7, 2, 6]]
    return state, config


def test_end_round_advances():
    state, config = small_state()
    assert state.num_rounds == 4  # (9 - 1) // (3 - 1)
    new_a = pt(10, 0.6, [[0], [3, 4]])
    new_b = pt(12, 0.7, [[1], [3]])
    dominated = pt(13, 0.5, [[2], [5]])
    extra = pt(9, 0.1, [[2], [5]], extra=True)
    prev_tie = pt(10, 0.6, [[2], [4]], rnd=-1)
    front = end_round(state, [new_a, dominated, extra, new_b], [prev_tie], config, {"note": "x"})
    assert front == [new_a, new_b] and front[0] is new_a
    assert state.pareto == front
    assert state.protected == [[0, 1], [3, 4]]
    assert state.subspaces == [[0, 1, 8], [0, 3, 4]]
    assert state.pending == [[7, 6, 5, 4, 3], [8, 1, 7, 2, 6]]
    assert state.round == 1 and state.phase == "train"
    assert state.history == [{"note": "x", "round": 0, "front_size": 2, "subspace_sizes": [3, 3],
                              "optimized_sizes": [2, 2]}]
    state.check()


def test_end_round_last_round_is_done():
    state, config = small_state(max_rounds=2)
    assert state.num_rounds == 2
    state.round = 1
    pending_before = [list(q) for q in state.pending]
    front = end_round(state, [pt(10, 0.6, [[0, 2], [5]])], [], config, {})
    assert state.phase == "done" and state.round == 1
    assert state.subspaces == [[0, 2], [5]] == state.protected
    assert state.pending == pending_before
    assert state.pareto == front and state.history[-1]["round"] == 1


def test_end_round_phase_from_evaluate():
    state, config = small_state()
    state.phase = "evaluate"
    end_round(state, [pt(10, 0.6, [[0], [3]])], [], config, {})
    assert state.phase == "train" and state.round == 1


# ---------------------------------------------------------------- continuation


def finished_mac27(n_cells=3, seed=0):
    config = EvolutionConfig(max_rounds=1)
    state = initial_state(MAC27, n_cells, config, seed)
    # sub-spaces holding the front's ops (cell 2 grew past K in an earlier refill), the rest queued
    subspaces = [[0, 4, 5, 6, 8], [7, 9, 12, 13, 14], [1, 2, 3, 10, 11, 26]] + [[0, 1, 2, 3, 4]] * (n_cells - 3)
    state.subspaces = [list(s) for s in subspaces]
    state.pending = [[i for i in range(26, -1, -1) if i not in s] for s in subspaces]
    state.check()
    # front: cell 2's subset has 6 ops (>= K); cell 1 one op
    a = pt(300, 0.70, [[0, 4], [7], [1, 2, 3, 10, 11, 26]], rnd=0)
    b = pt(320, 0.75, [[4, 5], [7], [1, 2, 26]], rnd=0)
    end_round(state, [a, b], [], config, {})
    assert state.phase == "done" and state.subspaces == state.protected
    state.check()
    return state


def grown_pool(new_names):
    # a different order: the new ops first, then mac27 reversed, so every index moves
    return list(new_names) + MAC27[::-1]


def test_continuation_state_into_larger_pool():
    previous = finished_mac27()
    added = MAC72[27:33]
    pool = grown_pool(added)
    config = EvolutionConfig()
    state = continuation_state(previous, pool, config, seed=5)
    index = {n: i for i, n in enumerate(pool)}
    new_ops = {index[n] for n in added}
    assert new_ops == set(range(6))
    assert state.pool == pool and state.round == 0 and state.phase == "train" and state.history == []
    expected_protected = [sorted(index[MAC27[i]] for i in s) for s in previous.protected]
    assert state.protected == expected_protected
    assert [sorted(pool[i] for i in s) for s in state.protected] == \
        [sorted(MAC27[i] for i in s) for s in previous.protected]
    for c, (sub, queue, prot) in enumerate(zip(state.subspaces, state.pending, state.protected)):
        assert set(queue) <= new_ops  # only the new ops are queued
        taken = set(sub) - set(prot)
        assert set(prot) <= set(sub) and taken <= new_ops
        assert len(taken) == max(0, min(5 - len(prot), 6))
        assert not taken & set(queue) and taken | set(queue) == new_ops
        assert sub == sorted(sub)
    assert [len(s) for s in state.subspaces] == [5, 5, 6]  # cell 2's subset of 6 gets nothing new
    assert len(state.pending[2]) == 6 and sorted(state.pending[2]) == sorted(new_ops)
    # Pareto architectures carried over, remapped by name
    assert len(state.pareto) == len(previous.pareto)
    for old, new in zip(previous.pareto, state.pareto):
        assert [[pool[i] for i in c] for c in new.cells] == [[MAC27[i] for i in c] for c in old.cells]
        assert (new.cost, new.accuracy, new.extra) == (old.cost, old.accuracy, False)
        assert new.round < 0  # older than any round of this search
    # rounds as any search of the pool counts them: (33 - 1) // (5 - 1)
    assert state.num_rounds == num_rounds(len(pool), 5, None) == 8
    state.check()
    # deterministic per seed
    again = continuation_state(previous, pool, config, seed=5)
    assert (again.subspaces, again.pending) == (state.subspaces, state.pending)


def test_continuation_state_full_mac72_rounds():
    previous = finished_mac27()
    state = continuation_state(previous, MAC72, EvolutionConfig(), seed=1)
    assert state.num_rounds == 17  # (72 - 1) // (5 - 1), as a fresh mac72 search
    assert state.protected == previous.protected  # mac72 keeps mac27's indices
    assert all(set(q) <= set(range(27, 72)) for q in state.pending)
    capped = continuation_state(previous, MAC72, EvolutionConfig(max_rounds=3), seed=1)
    assert capped.num_rounds == 3


def test_continuation_state_queues_new_ops_in_a_random_order_per_cell():
    previous = finished_mac27(n_cells=8)
    previous.protected = [list(range(6)) for _ in range(8)]  # subsets >= K: the whole queue stays
    added = MAC72[27:37]
    pool = MAC27 + added
    state = continuation_state(previous, pool, EvolutionConfig(), seed=2)
    new_ops = list(range(27, 37))
    assert state.subspaces == previous.protected
    assert all(sorted(q) == new_ops for q in state.pending)
    assert len({tuple(q) for q in state.pending}) == 8  # each cell its own order
    assert all(q != new_ops for q in state.pending)
    other = continuation_state(previous, pool, EvolutionConfig(), seed=3)
    assert other.pending != state.pending
    assert state.num_rounds == 9  # (37 - 1) // (5 - 1), as any search of this pool


def test_continuation_state_errors():
    unfinished = initial_state(MAC27, 3, EvolutionConfig(), 0)
    with pytest.raises(StateError, match=r"has not finished \(phase 'train', round 0\)"):
        continuation_state(unfinished, MAC72, EvolutionConfig(), 0)
    previous = finished_mac27()
    lacking = [n for n in MAC72 if n != MAC27[4]]
    with pytest.raises(StateError, match="lacks operations of the finished search: " + re.escape(MAC27[4])):
        continuation_state(previous, lacking, EvolutionConfig(), 0)
    with pytest.raises(StateError, match="adds no operation"):
        continuation_state(previous, MAC27[::-1], EvolutionConfig(), 0)


# ---------------------------------------------------------------- JSON state


def rich_state():
    state, config = small_state()
    end_round(state, [pt(10, 0.6, [[0], [3, 4]]), pt(9, 0.4, [[1], [3]], extra=True)], [], config,
              {"accuracy_mean": 0.5})
    state.pareto.append(pt(11, float("nan"), [[], [5]], rnd=-1))
    return state


def roundtrip(state):
    return EvolutionState.from_json(json.loads(json.dumps(state.to_json())))


def test_state_json_roundtrip():
    state = rich_state()
    data = state.to_json()
    assert data["format"] == evolution.STATE_FORMAT and data["version"] == evolution.STATE_VERSION
    back = roundtrip(state)
    assert back.pool == state.pool and back.round == state.round and back.phase == state.phase
    assert (back.subspaces, back.pending, back.protected) == (state.subspaces, state.pending, state.protected)
    assert (back.num_rounds, back.seed, back.ops_per_cell) == (state.num_rounds, state.seed, state.ops_per_cell)
    assert back.history == state.history
    assert [p.key() for p in back.pareto] == [p.key() for p in state.pareto]
    assert [(p.cost, p.round, p.extra) for p in back.pareto] == [(p.cost, p.round, p.extra) for p in state.pareto]
    assert back.pareto[0].accuracy == 0.6 and np.isnan(back.pareto[-1].accuracy)
    assert json.dumps(back.to_json()) == json.dumps(state.to_json())
    # a continuation and a finished state round-trip too
    done = finished_mac27()
    assert roundtrip(done).to_json() == done.to_json()
    cont = continuation_state(done, MAC72, EvolutionConfig(), 0)
    assert roundtrip(cont).to_json() == cont.to_json()


def test_state_json_wrong_format_or_version():
    data = rich_state().to_json()
    with pytest.raises(StateError, match="run.json: not an nse_tf evolution state file"):
        EvolutionState.from_json({**data, "format": "something_else"}, "run.json")
    with pytest.raises(StateError, match="not an nse_tf evolution state file"):
        EvolutionState.from_json([1, 2, 3])
    with pytest.raises(StateError, match="state version 2 is not 1"):
        EvolutionState.from_json({**data, "version": 2})
    with pytest.raises(StateError, match="state version None is not 1"):
        EvolutionState.from_json({k: v for k, v in data.items() if k != "version"})


@pytest.mark.parametrize("missing", ["pool", "subspaces", "pending", "protected", "pareto", "history", "phase"])
def test_state_json_missing_key(missing):
    data = rich_state().to_json()
    del data[missing]
    with pytest.raises(StateError, match=rf"s.json: corrupted state \(KeyError: '{missing}'\)"):
        EvolutionState.from_json(data, "s.json")


def test_state_from_before_latency_searches_reads_macs_as_cost():
    data = rich_state().to_json()
    for point in data["pareto"]:
        point["macs"] = point.pop("cost")
    back = EvolutionState.from_json(data)
    assert [p.cost for p in back.pareto] == [p.cost for p in rich_state().pareto]


def test_state_json_bad_values():
    data = rich_state().to_json()
    with pytest.raises(StateError, match=r"corrupted state \(ValueError"):
        EvolutionState.from_json({**data, "round": "three"})
    bad_point = json.loads(json.dumps(data))
    del bad_point["pareto"][0]["cost"]
    with pytest.raises(StateError, match=r"corrupted state \(KeyError: 'cost'\)"):
        EvolutionState.from_json(bad_point)


def test_state_json_overlapping_or_invalid_indices():
    data = rich_state().to_json()
    overlap = json.loads(json.dumps(data))
    overlap["pending"][1].append(overlap["subspaces"][1][0])
    with pytest.raises(StateError, match="cell 1: sub-space and pending queue must hold distinct pool indices"):
        EvolutionState.from_json(overlap)
    out_of_range = json.loads(json.dumps(data))
    out_of_range["subspaces"][0].append(len(data["pool"]))
    with pytest.raises(StateError, match="cell 0: sub-space and pending queue"):
        EvolutionState.from_json(out_of_range)
    cells = json.loads(json.dumps(data))
    cells["pending"].append([])
    with pytest.raises(StateError, match="disagree on the cell count"):
        EvolutionState.from_json(cells)


def test_state_json_unknown_phase():
    data = rich_state().to_json()
    with pytest.raises(StateError, match="unknown phase 'warmup'"):
        EvolutionState.from_json({**data, "phase": "warmup"})
    for phase in evolution.PHASES:
        assert EvolutionState.from_json({**data, "phase": phase}).phase == phase


def test_config_validation():
    with pytest.raises(ValueError, match="ops_per_cell"):
        EvolutionConfig(ops_per_cell=1)
    with pytest.raises(ValueError, match="max_rounds"):
        EvolutionConfig(max_rounds=0)
    with pytest.raises(ValueError, match="max_sample_draws"):
        EvolutionConfig(max_sample_draws=0)
    with pytest.raises(ValueError, match="drift"):
        EvolutionConfig(drift=0.0)


def test_no_tensorflow_imported():
    """The manager is host logic: importing it must not pull in TensorFlow (checked in a fresh interpreter,
    since other test files import TensorFlow into this one)."""
    import subprocess
    import sys

    code = "import sys, nse_tf.search.evolution; assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_end_round_falls_back_when_extras_knock_out_every_point():
    from nse_tf.search.evolution import ArchPoint, EvolutionConfig, end_round, initial_state

    config = EvolutionConfig(ops_per_cell=2)
    state = initial_state([f"mb_k{k}_t1" for k in (3, 5, 7)], 2, config, seed=0)
    sampled = [ArchPoint([[state.subspaces[0][0]], [state.subspaces[1][0]]], 10.0, 0.5),
               ArchPoint([[state.subspaces[0][1]], [state.subspaces[1][0]]], 11.0, 0.6),
               ArchPoint([[], [state.subspaces[1][1]]], 8.0, 0.9, extra=True)]
    front = end_round(state, sampled, [], config, {})
    assert [p.cost for p in front] == [10.0, 11.0]
    assert state.protected == [sorted(state.protected[0]), sorted(state.protected[1])] and state.protected[0]


def test_an_empty_n_cell_sub_space_still_reaches_the_window():
    """After refills a cell's sub-space may be empty (an N cell then skips): the reachability check must
    count the other cells' architectures, not fail on the empty row."""
    from nse_tf.search.evolution import architectures_in_window

    op_costs = [[1.0, 2.0, 3.0], [0.5, 1.5, 2.5]]
    assert architectures_in_window([[], [0, 2]], op_costs, 1.0, [True, False], 1.4, 1.6) > 0  # 1 + 0.5
    assert architectures_in_window([[], [0, 2]], op_costs, 1.0, [True, False], 10.0, 11.0) == 0
