"""Tests for nse_tf.search.gates: gate probabilities, branch-set sampling and self-simplification (pure numpy)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nse_tf.search import gates
from nse_tf.search.gates import CellSlots

N_CELL, RE_CELL = CellSlots(3, True), CellSlots(3, False)


def rows(*lists):
    width = max(len(r) for r in lists)
    out = np.zeros((len(lists), width), dtype=bool)
    for c, r in enumerate(lists):
        out[c, :len(r)] = r
    return out


# ---------------------------------------------------------------- gate_probability


def test_gate_probability_formula_and_bounds():
    alpha = np.array([-1e4, -50.0, -2.0, 0.0, 1.5, 50.0, 1e4])
    with np.errstate(over="ignore"):  # exp(1e4) overflows to inf: p is then exactly the 0.0005 floor
        p = gates.gate_probability(alpha)
        np.testing.assert_allclose(p, 0.999 / (1 + np.exp(-alpha)) + 0.0005, rtol=0, atol=1e-15)
    assert p[3] == pytest.approx(0.5)
    assert np.all(p >= 0.0005) and np.all(p <= 0.9995)
    assert p[0] == pytest.approx(0.0005) and p[-1] == pytest.approx(0.9995)
    assert np.all(np.diff(p) >= 0)
    assert np.all((p > 0) & (p < 1))
    # the -2 pruning threshold is p about 0.12
    assert gates.gate_probability(-2.0) == pytest.approx(0.1196, abs=1e-3)


def test_set_log_prob_ignores_inactive_columns():
    p = np.array([0.2, 0.7, 0.9])
    active = np.array([True, True, False])
    mask = np.array([True, False, True])
    assert gates.set_log_prob(mask, p, active) == pytest.approx(np.log(0.2) + np.log(0.3))


# ---------------------------------------------------------------- sample_uniform


def test_sample_uniform_only_active_and_re_never_empty():
    active = rows([1, 1, 0, 1], [1, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0])
    cells = [N_CELL, RE_CELL, RE_CELL, N_CELL, CellSlots(2, True)]
    rng = np.random.default_rng(0)
    seen_empty_n = False
    for _ in range(2000):
        m = gates.sample_uniform(rng, active, cells)
        assert m.shape == active.shape and m.dtype == bool
        assert not np.any(m & ~active)
        assert m[1].any() and m[2].any()
        assert m[2].tolist() == [True, False, False, False]  # single op in an R/E cell: always on
        assert not m[3].any()
        seen_empty_n |= not m[0].any()
    assert seen_empty_n  # N cells may be empty


def test_sample_uniform_deterministic_for_seed():
    active = rows([1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0])
    cells = [N_CELL, RE_CELL, RE_CELL]
    a = [gates.sample_uniform(np.random.default_rng(7), active, cells) for _ in range(2)]
    rng1, rng2 = np.random.default_rng(123), np.random.default_rng(123)
    seq1 = [gates.sample_uniform(rng1, active, cells) for _ in range(50)]
    seq2 = [gates.sample_uniform(rng2, active, cells) for _ in range(50)]
    np.testing.assert_array_equal(a[0], a[1])
    for x, y in zip(seq1, seq2):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(seq1[0], s) for s in seq1[1:])


def test_sample_uniform_frequencies():
    active = rows([1, 1, 1, 1], [1, 1, 1, 1])
    cells = [N_CELL, RE_CELL]
    rng = np.random.default_rng(1)
    n = 4000
    draws = np.stack([gates.sample_uniform(rng, active, cells) for _ in range(n)])
    # N cell: each op on with probability 0.5 independently (std of the mean ~ 0.008)
    np.testing.assert_allclose(draws[:, 0].mean(0), 0.5, atol=0.04)
    # R/E cell: conditioned on non-empty, P(op on) = 0.5 / (1 - 0.5^4) = 8/15
    np.testing.assert_allclose(draws[:, 1].mean(0), 8 / 15, atol=0.04)
    empty_n = np.mean(~draws[:, 0].any(1))
    assert empty_n == pytest.approx(1 / 16, abs=0.02)


# ---------------------------------------------------------------- sample_two_paths


def test_two_paths_different_when_choice_and_equal_when_not():
    active = rows([1, 1, 0], [1, 1, 1], [0, 0, 0], [0, 1, 0], [1, 0, 0])
    cells = [N_CELL, RE_CELL, N_CELL, RE_CELL, N_CELL]
    alpha = np.random.default_rng(0).normal(size=active.shape) * 2
    rng = np.random.default_rng(3)
    for _ in range(300):
        s, u, choice = gates.sample_two_paths(rng, alpha, active, cells)
        assert choice.tolist() == [True, True, False, False, True]
        for c in range(len(cells)):
            assert not np.any(s[c] & ~active[c]) and not np.any(u[c] & ~active[c])
            if choice[c]:
                assert not np.array_equal(s[c], u[c])
            else:
                np.testing.assert_array_equal(s[c], active[c])
                np.testing.assert_array_equal(u[c], active[c])
        assert s[1].any() and u[1].any()


def _draw_frequencies(alpha_row, may_be_empty, n_draws, seed):
    n = alpha_row.shape[0]
    active = np.ones((1, n), dtype=bool)
    cells = [CellSlots(n, may_be_empty)]
    rng = np.random.default_rng(seed)
    counts = {}
    pairs = set()
    for _ in range(n_draws):
        s, u, _ = gates.sample_two_paths(rng, alpha_row[None], active, cells)
        counts[tuple(s[0])] = counts.get(tuple(s[0]), 0) + 1
        pairs.add((tuple(s[0]), tuple(u[0])))
    return counts, pairs


@pytest.mark.parametrize("may_be_empty", [True, False])
def test_enumeration_first_draw_follows_set_probability(may_be_empty):
    alpha = np.array([1.0, -0.7])
    p = gates.gate_probability(alpha)
    sets = [b for b in itertools.product((False, True), repeat=2) if may_be_empty or any(b)]
    probs = np.array([np.prod([pi if g else 1 - pi for pi, g in zip(p, b)]) for b in sets])
    probs /= probs.sum()
    n = 4000
    counts, pairs = _draw_frequencies(alpha, may_be_empty, n, seed=11)
    observed = np.array([counts.get(b, 0) for b in sets])
    expected = probs * n
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    # dof = len(sets) - 1 <= 3: chi2 > 20 has probability < 2e-4
    assert chi2 < 20.0, (observed, expected)
    if not may_be_empty:
        assert all(any(s) and any(u) for s, u in pairs)
    assert all(s != u for s, u in pairs)


def test_enumeration_second_draw_is_without_replacement():
    # with a strongly preferred set, S takes it most of the time and U must take another one
    alpha = np.array([8.0, 8.0])
    counts, pairs = _draw_frequencies(alpha, True, 500, seed=2)
    assert counts.get((True, True), 0) > 450
    assert all(u != s for s, u in pairs)


def test_rejection_path_for_more_than_five_ops():
    n = 7
    active = np.ones((2, n), dtype=bool)
    cells = [CellSlots(n, False), CellSlots(n, True)]
    alpha = np.full((2, n), -4.0)  # p ~ 0.018: empty sets are the most likely draw
    rng = np.random.default_rng(5)
    on = np.zeros((2, n))
    for _ in range(400):
        s, u, choice = gates.sample_two_paths(rng, alpha, active, cells)
        assert choice.all()
        assert s[0].any() and u[0].any()
        assert not np.array_equal(s[0], u[0]) and not np.array_equal(s[1], u[1])
        on += s
    # the N cell follows the Bernoulli gates: rarely any op on
    assert on[1].mean() / 400 < 0.1
    # deterministic for a seed
    r1 = gates.sample_two_paths(np.random.default_rng(9), alpha, active, cells)
    r2 = gates.sample_two_paths(np.random.default_rng(9), alpha, active, cells)
    for a, b in zip(r1, r2):
        np.testing.assert_array_equal(a, b)


def test_rejection_path_frequencies_high_alpha():
    n = 6
    active = np.ones((1, n), dtype=bool)
    cells = [CellSlots(n, True)]
    alpha = np.array([[2.0, -2.0, 0.0, 0.0, 1.0, -1.0]])
    p = gates.gate_probability(alpha[0])
    rng = np.random.default_rng(4)
    s_all = np.stack([gates.sample_two_paths(rng, alpha, active, cells)[0][0] for _ in range(3000)])
    # S is a plain Bernoulli draw (the rejection only applies to U)
    np.testing.assert_allclose(s_all.mean(0), p, atol=0.04)


# ---------------------------------------------------------------- simplify


def test_simplify_drops_below_threshold_and_keeps_protected():
    cells = [CellSlots(4, True), CellSlots(4, False)]
    active = rows([1, 1, 1, 1], [1, 1, 1, 1])
    protected = rows([0, 1, 0, 0], [0, 0, 0, 0])
    alpha = np.array([[-3.0, -3.0, -1.9, 0.0], [-2.5, 1.0, -1.0, -2.01]])
    new = gates.simplify(alpha, active, protected, cells)
    assert new[0].tolist() == [False, True, True, True]
    assert new[1].tolist() == [False, True, True, False]
    # exactly at the threshold stays (strictly below drops)
    assert gates.simplify(np.full((2, 4), -2.0), active, protected, cells).all()
    # the input is not modified
    assert active.all()


def test_simplify_re_cell_with_two_ops_keeps_both():
    cells = [CellSlots(3, False)]
    active = rows([1, 0, 1])
    new = gates.simplify(np.array([[-5.0, 0.0, -6.0]]), active, np.zeros_like(active), cells)
    np.testing.assert_array_equal(new, active)
    new = gates.simplify(np.array([[-5.0, 0.0, 3.0]]), active, np.zeros_like(active), cells)
    np.testing.assert_array_equal(new, active)


def test_simplify_re_cell_all_below_keeps_best():
    cells = [CellSlots(4, False)]
    active = rows([1, 1, 1, 0])
    alpha = np.array([[-5.0, -2.5, -9.0, 10.0]])  # column 3 is inactive: must not be picked
    new = gates.simplify(alpha, active, np.zeros_like(active), cells)
    assert new[0].tolist() == [False, True, False, False]
    # a single op left in an R/E cell below the threshold stays
    again = gates.simplify(alpha, new, np.zeros_like(active), cells)
    np.testing.assert_array_equal(again, new)


def test_simplify_n_cell_can_be_emptied():
    cells = [CellSlots(3, True)]
    active = rows([1, 1, 1])
    new = gates.simplify(np.full((1, 3), -3.0), active, np.zeros_like(active), cells)
    assert not new.any()
    # two ops left in an N cell: no exception, both go
    new = gates.simplify(np.full((1, 3), -3.0), rows([1, 0, 1]), np.zeros_like(active), cells)
    assert not new.any()


def test_simplify_removed_ops_never_come_back():
    cells = [CellSlots(5, True), CellSlots(5, False), CellSlots(3, False)]
    active = rows([1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0])
    protected = rows([0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0])
    rng = np.random.default_rng(0)
    alpha = np.zeros(active.shape)
    for _ in range(300):
        alpha += rng.normal(scale=0.8, size=alpha.shape)
        new = gates.simplify(alpha, active, protected, cells)
        assert not np.any(new & ~active)  # only shrinks
        assert new[1].any() and new[2].any()
        assert new[0, 4]  # protected
        active = new
    # a random walk of that length pushes most unprotected ops below -2 at some point
    assert active.sum() < 13
