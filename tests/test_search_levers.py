"""The search's levers of issue 30 (host logic, no TensorFlow): candidates drawn uniformly inside the window,
per-cell excluded operations, seed architectures kept and evaluated every round, and the verification
stage's shortlist, pick and summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nse_tf.cost.model import CostModel, architecture_cost
from nse_tf.search import verification
from nse_tf.search.evolution import (
    ArchPoint,
    EvolutionConfig,
    EvolutionState,
    SamplingError,
    end_round,
    initial_state,
    sample_architectures,
    uniform_window_draws,
)
from nse_tf.search.gates import CellSlots
from nse_tf.search.seed_archs import SeedArchError, resolve_seed_archs
from nse_tf.space.architecture import Architecture, NetworkSpec
from nse_tf.space.macro import get_space
from nse_tf.space.ops import POOLS

MB19 = list(POOLS["mb19"])

# The sampling fixture of tests/test_evolution.py: every op costs 1, so the cost is 100 + the number of ops.
SLOTS = [CellSlots(3, True), CellSlots(3, False), CellSlots(4, False)]
SUBSPACES = [[0, 2, 5], [1, 3, 4], [0, 6, 7, 8]]
ACTIVE = np.array([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0]], dtype=bool)  # pool op 8 of cell 2 is pruned
OP_COSTS = np.ones((3, 9))
FIXED = 100.0
COST = CostModel("macs", OP_COSTS, FIXED)
# Gates collapsed onto one architecture: cell 0 empty, cells 1 and 2 every active op (cost 106).
COLLAPSED = np.where(np.arange(4)[None, :] < 3, 20.0, -20.0) * np.array([[-1], [1], [1]])


def window_architectures(low, high):
    import itertools

    per_cell = []
    for c, slot in enumerate(SLOTS):
        ops = [SUBSPACES[c][j] for j in np.flatnonzero(ACTIVE[c])]
        subsets = [sorted(s) for r in range(len(ops) + 1) for s in itertools.combinations(ops, r)]
        per_cell.append([s for s in subsets if s or slot.may_be_empty])
    archs = [list(cells) for cells in itertools.product(*per_cell)]
    return {tuple(map(tuple, a)) for a in archs if low < architecture_cost(a, OP_COSTS, FIXED) < high}


def test_uniform_draws_cover_the_window_with_active_operations_only():
    keys = window_architectures(103, 107)
    draws = uniform_window_draws(np.random.default_rng(0), ACTIVE, SUBSPACES, SLOTS, cost=COST, window=(103, 107),
                                 n=len(keys))
    assert {tuple(map(tuple, d)) for d in draws} == keys  # every window architecture, each once
    assert all(8 not in cell for d in draws for cell in d)  # the pruned op never appears
    few = uniform_window_draws(np.random.default_rng(1), ACTIVE, SUBSPACES, SLOTS, cost=COST, window=(103, 107), n=5)
    assert len({tuple(map(tuple, d)) for d in few}) == 5
    assert uniform_window_draws(np.random.default_rng(0), ACTIVE, SUBSPACES, SLOTS, cost=COST, window=(200, 300),
                                n=5) == []  # the window holds nothing


def test_uniform_fraction_fills_the_window_where_collapsed_gates_cannot():
    config = EvolutionConfig(num_archs=10, num_extra=0, drift=2.0, max_sample_draws=2000)
    with pytest.raises(SamplingError):  # the collapsed gates draw one architecture over and over
        sample_architectures(np.random.default_rng(0), COLLAPSED, ACTIVE, SUBSPACES, SLOTS, cost=COST, target=105.0,
                             config=config, round_index=0)
    mixed = EvolutionConfig(num_archs=10, num_extra=0, drift=2.0, max_sample_draws=2000, uniform_fraction=1.0)
    points = sample_architectures(np.random.default_rng(0), COLLAPSED, ACTIVE, SUBSPACES, SLOTS, cost=COST,
                                  target=105.0, config=mixed, round_index=0)
    assert len({p.key() for p in points}) == 10 and all(103 < p.cost < 107 and not p.extra for p in points)
    assert sum(bool(p.cells[0]) for p in points) >= 3  # the gates never fill cell 0; uniform draws do


def test_with_the_levers_off_sampling_and_shuffles_are_those_before_them():
    """Golden values recorded with the code before the levers existed: the same candidates, the same random
    numbers left, the same sub-spaces and queues (committed runs resume and reproduce)."""
    config = EvolutionConfig(num_archs=8, num_extra=2, drift=2.0, extra_margin=2.0, max_sample_draws=5000)
    rng = np.random.default_rng(3)
    points = sample_architectures(rng, np.zeros(ACTIVE.shape), ACTIVE, SUBSPACES, SLOTS, cost=COST, target=105.0,
                                  config=config, round_index=0)
    assert [(p.cells, p.extra) for p in points] == [
        ([[0], [1], [0, 7]], False), ([[5], [1, 4], [7]], False), ([[0], [1], [6, 7]], False), ([[2], [3], [0]], True),
        ([[2], [4], [0, 6, 7]], False), ([[0, 2, 5], [4], [6]], False), ([[], [3, 4], [0]], True),
        ([[], [3, 4], [0, 7]], False), ([[2, 5], [3, 4], [0, 7]], False), ([[2, 5], [1, 3], [0, 6]], False)]
    assert rng.random() == pytest.approx(0.9998030282851982, abs=0)
    state = initial_state([f"op{i}" for i in range(19)], 3, EvolutionConfig(ops_per_cell=6), seed=4)
    assert state.subspaces == [[2, 3, 4, 9, 14, 17], [1, 2, 8, 11, 13, 14], [2, 6, 8, 13, 16, 18]]
    assert state.pending == [[0, 7, 1, 6, 18, 11, 8, 5, 16, 12, 13, 15, 10], [7, 9, 6, 18, 15, 17, 10, 12, 5, 16, 0, 4, 3],
                             [7, 0, 14, 17, 1, 11, 4, 10, 5, 9, 12, 15, 3]]


def test_uniform_fraction_is_checked():
    with pytest.raises(ValueError, match="uniform_fraction"):
        EvolutionConfig(uniform_fraction=1.5)


def excluded_t1(n_cells=9):
    t1 = tuple(op for op in MB19 if op.endswith("_t1"))
    return ((),) + (t1,) * (n_cells - 1)


def test_excluded_operations_never_enter_their_cells():
    config = EvolutionConfig(ops_per_cell=6, excluded_ops=excluded_t1())
    state = initial_state(MB19, 9, config, seed=4)
    plain = initial_state(MB19, 9, EvolutionConfig(ops_per_cell=6), seed=4)
    t1 = {MB19.index(op) for op in MB19 if op.endswith("_t1")}
    assert sorted(state.subspaces[0] + state.pending[0]) == list(range(19))  # cell 0 keeps the whole pool
    for c in range(1, 9):
        held = state.subspaces[c] + state.pending[c]
        assert not t1 & set(held) and sorted(held) == sorted(set(range(19)) - t1)
        # the same shuffle, less the excluded: exclusions change nothing else
        order = sorted(plain.subspaces[c]) + plain.pending[c]
        assert state.pending[c] == [i for i in order if i not in t1 and i not in state.subspaces[c]][
            -len(state.pending[c]):]
    with pytest.raises(ValueError, match="cells"):
        initial_state(MB19, 8, config, seed=0)


SPACE = get_space("small", pool="mb19", counts=(0, 1, 1, 1, 0, 0), channels=(8, 16, 28, 36, 52, 72, 144))


def seed_file(tmp_path, cells, space=SPACE, name="seed.json"):
    path = tmp_path / name
    NetworkSpec(space, Architecture.from_cells(cells, space.get_pool()), "seed").save(path)
    return str(path)


def test_seed_architectures_resolve_against_the_space(tmp_path):
    uniform = seed_file(tmp_path, [["mb_k3_t6"]] * 9)
    assert resolve_seed_archs([uniform], SPACE) == [[[MB19.index("mb_k3_t6")]] * 9]
    other = seed_file(tmp_path, [["mb_k3_t6"]] * 9, SPACE.replace(channels=(8, 16, 24, 32, 48, 64, 128)), "o.json")
    with pytest.raises(SeedArchError, match="o.json.*channels"):
        resolve_seed_archs([other], SPACE)
    t1 = seed_file(tmp_path, [["mb_k3_t6"]] * 8 + [["mb_k3_t1"]], name="t1.json")
    with pytest.raises(SeedArchError, match="t1.json: cell 8: operation mb_k3_t1 is excluded"):
        resolve_seed_archs([t1], SPACE, excluded_t1())
    with pytest.raises(SeedArchError, match="missing.json"):
        resolve_seed_archs([str(tmp_path / "missing.json")], SPACE)


def test_seed_operations_are_held_protected_and_kept_every_round():
    k3t6, k5t3 = MB19.index("mb_k3_t6"), MB19.index("mb_k5_t3")
    seeds = [[[k3t6]] * 3, [[k3t6], [k5t3], [k3t6]]]
    config = EvolutionConfig(ops_per_cell=3)
    state = initial_state(MB19, 3, config, seed=0, seeds=seeds)
    assert state.seeds == seeds
    for c in range(3):
        assert k3t6 in state.subspaces[c] and len(state.subspaces[c]) == 3
        assert k3t6 in state.protected[c]
    assert k5t3 in state.subspaces[1] and k5t3 in state.protected[1]
    # a front without the seeds' operations: they stay in the next round's sub-spaces all the same
    other = [[i for i in sub if i not in (k3t6, k5t3)][:1] for sub in state.subspaces]
    end_round(state, [ArchPoint(other, 1.0, 0.9)], [], config, {})
    for c in range(3):
        assert k3t6 in state.subspaces[c] and set(other[c]) <= set(state.subspaces[c])
    assert k5t3 in state.subspaces[1]
    again = EvolutionState.from_json(json.loads(json.dumps(state.to_json())))
    assert again.seeds == seeds
    older = state.to_json()
    del older["seeds"]  # a state written before seed architectures existed
    assert EvolutionState.from_json(older).seeds == []


def point(cost, acc, op):
    return ArchPoint([[op]], cost, acc)


def test_shortlist_front_top_and_seeds_within_the_budget():
    front = [point(1.0, 0.80, 0), point(2.0, 0.85, 1), point(3.5, 0.90, 2)]  # the last one is over the budget
    last = [point(2.5, 0.84, 3), point(2.9, 0.86, 4), point(1.5, 0.70, 5), point(2.0, 0.85, 1),
            ArchPoint([[6]], 2.0, 0.99, extra=True)]
    seeds = [point(3.0, 0.60, 7)]
    given = [ArchPoint([[8]], 3.2, float("nan"))]  # a reference over the budget: trained, never picked
    shortlist = verification.shortlist(front, last, seeds, top=2, budget=3.0, given=given)
    assert [(c.point.cells[0][0], c.reasons) for c in shortlist] == [
        (0, ["front"]), (1, ["front", "top"]), (4, ["top"]), (7, ["seed"]), (8, ["given"])]
    for c, top1 in zip(shortlist, (0.90, 0.91, float("nan"), 0.80, 0.99)):
        c.proxy = {0: top1}
    assert verification.pick(shortlist, budget=3.0).point.cells == [[1]]  # not the reference, not the NaN
    given[0].cost = 2.0  # a reference within the budget is still never picked
    assert verification.pick(shortlist, budget=3.0).point.cells == [[1]]
    summary = verification.summary(shortlist, shortlist[1], verification.VerifyConfig(top=2), MB19, lambda c: 1.0,
                                   {})
    assert summary["n"] == 5 and summary["n_ranked"] == 4 and summary["candidates"][4]["shared_top1"] is None


def test_verify_fills_proxies_and_waits_for_unfinished_shards(tmp_path):
    candidates = [verification.Candidate(point(1.0, 0.8, 0), ["front"]),
                  verification.Candidate(point(2.0, 0.7, 1), ["top"]),
                  verification.Candidate(point(2.0, 0.6, 2), ["seed"])]
    config = verification.VerifyConfig(top=2, seeds=2)
    proxy = {(0, 0): 0.90, (0, 1): 0.92, (1, 0): 0.93, (1, 1): 0.95, (2, 0): 0.80, (2, 1): 0.81}
    seen = []

    def train(jobs, missing=None):
        seen.extend(jobs)
        return [None if (i, s) == missing else {"top1": proxy[i, s]} for i, s, _ in jobs]

    assert not verification.verify(candidates, config, lambda jobs: train(jobs, (1, 1)), MB19, str(tmp_path))
    assert len({run_dir for _, _, run_dir in seen}) == 6 and all(r.startswith(str(tmp_path)) for _, _, r in seen)
    assert verification.verify(candidates, config, train, MB19, str(tmp_path))
    chosen = verification.pick(candidates, budget=3.0)
    assert chosen is candidates[1] and chosen.mean == pytest.approx(0.94)
    summary = verification.summary(candidates, chosen, config, MB19, lambda cells: 1.0, {"seed": 2000})
    assert summary["chosen"] == verification.arch_label([[1]], MB19)
    # shared 0.8 > 0.7 > 0.6, alone 0.91, 0.94, 0.805: one discordant pair of three
    assert summary["kendall_tau"] == pytest.approx(1 / 3)
    assert summary["candidates"][2]["proxy_top1"] == {"0": 0.80, "1": 0.81}


def test_arch_label_depends_only_on_the_architecture():
    assert verification.arch_label([[2, 0], [1]], MB19) == verification.arch_label([[0, 2], [1]], MB19)
    assert verification.arch_label([[0], [1]], MB19) != verification.arch_label([[1], [0]], MB19)


def test_verify_config_is_checked():
    assert not verification.VerifyConfig().enabled
    for bad in ({"top": -1}, {"seeds": 0}, {"epochs": 0}):
        with pytest.raises(ValueError):
            verification.VerifyConfig(**bad)
