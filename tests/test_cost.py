"""Tests for nse_tf.cost: the generic counter, the published figures, and analytic vs generic agreement."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import nse_tf
from nse_tf.nets.child import build_child
from nse_tf.space.analytic import cell_cost, cell_op_costs, fixed_cost, network_cost
from nse_tf.space.architecture import Architecture, NetworkSpec
from nse_tf.space.macro import get_space
from nse_tf.space.published import PUBLISHED_COST, published_names, published_spec

# ---------------------------------------------------------------- helpers


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1)


def assert_analytic_matches_generic(spec: NetworkSpec, tol: float = 0.005) -> None:
    model = build_child(spec)
    analytic = network_cost(spec)
    macs, params = nse_tf.count_macs(model), nse_tf.count_params(model)
    assert rel(analytic.macs, macs) < tol, (str(spec.arch), analytic.macs, macs)
    assert rel(analytic.params, params) < tol, (str(spec.arch), analytic.params, params)


def random_cells(rng: np.random.Generator, space, max_ops: int = 3) -> list[list[int]]:
    """0..max_ops distinct ops per cell, at least one in R/E cells."""
    n = len(space.get_pool())
    cells = []
    for cell in space.cells():
        size = int(rng.integers(0 if cell.may_be_empty else 1, max_ops + 1))
        cells.append(sorted(int(i) for i in rng.choice(n, size=size, replace=False)))
    return cells


ALL_KINDS_POOL = ("mb_k3_t3_d2", "mb_k5_t1_d3", "mb_k3_t6_g12", "mb_k5_t3_g21", "mb_k7_t1_g22", "rec_k5_t2",
                  "rec_k7_t1", "normal_k3_t2", "dual_k3_t1", "mb_k3_t1")

# Spaces for the random check, all small (28x28-ish) so a model builds in about a second. Between them:
# every op kind, dilated ops in stride-2 cells, grouped ops, even and odd sizes at stride 2.
RANDOM_SPACES = {
    "small-mac72": get_space("small", pool="mac72"),
    "small-mac72-odd": get_space("small", pool="mac72", input_size=27, counts=(1, 1, 1, 1, 0, 1)),
    "small-mb19": get_space("small", pool="mb19", counts=(1, 1, 1, 1, 0, 1)),
    "small-mb19-odd": get_space("small", pool="mb19", input_size=31, counts=(0, 1, 1, 1, 1, 0), scale=0.75),
    "small-allkinds": get_space("small", pool=ALL_KINDS_POOL, input_size=33, r_strides=(2, 2, 1, 2),
                                counts=(1, 1, 0, 1, 1, 0)),
}
PER_SPACE = 6  # 5 spaces x 6 = 30 random architectures


def random_specs(name: str) -> list[NetworkSpec]:
    space = RANDOM_SPACES[name]
    rng = np.random.default_rng(sorted(RANDOM_SPACES).index(name) + 2021)
    return [NetworkSpec(space, Architecture.from_cells(random_cells(rng, space), space.get_pool()), f"{name}-{i}")
            for i in range(PER_SPACE)]


# ---------------------------------------------------------------- the generic counter


def test_generic_counter_mobilenet_v2():
    model = keras.applications.MobileNetV2(weights=None)
    # MobileNetV2 1.0 at 224: 300M multiply-accumulates, 3.47M params (3.50M with BN)
    assert rel(nse_tf.count_macs(model), 300e6) < 0.01
    assert rel(nse_tf.count_params(model), 3.5e6) < 0.01


@pytest.mark.parametrize("name", published_names())
def test_published_networks(name):
    model = nse_tf.build_model(name)
    macs, params = nse_tf.count_macs(model), nse_tf.count_params(model)
    ref_macs, ref_params = PUBLISHED_COST[name]
    assert rel(macs, ref_macs) < 0.01, (name, macs, ref_macs)
    assert rel(params, ref_params) < 0.01, (name, params, ref_params)
    analytic = network_cost(published_spec(name))
    assert rel(analytic.macs, macs) < 0.005
    assert rel(analytic.params, params) < 0.005


def test_analytic_pieces_add_up():
    spec = published_spec("NSENet-27")
    table = cell_op_costs(spec.space)
    assert len(table) == len(spec.space.cells()) and all(len(row) == 27 for row in table)
    total = fixed_cost(spec.space)
    for cell, ops in zip(spec.space.cells(), spec.arch.cells):
        total += cell_cost(cell, spec.space, ops)
    assert total == network_cost(spec)
    # the fixed part follows the input size and class count (not hard-coded to 224 / 1000)
    small = spec.replace_space(input_size=32, num_classes=10).space
    assert fixed_cost(small).macs < fixed_cost(spec.space).macs
    assert fixed_cost(small).params == fixed_cost(spec.space).params - 1024 * 990 - 990


# ---------------------------------------------------------------- random architectures


def test_random_architectures_cover_every_op_kind():
    seen = set()
    for name in RANDOM_SPACES:
        for spec in random_specs(name):
            pool = spec.space.get_pool()
            for cell, ops in zip(spec.space.cells(), spec.arch.cells):
                assert ops or cell.may_be_empty
                for i in ops:
                    op = pool.ops[i]
                    seen.add(op.kind)
                    if op.dilation > 1 and cell.stride == 2:
                        seen.add("dilated-stride2")
                        if cell.input_hw[0] % 2:
                            seen.add("dilated-stride2-odd")
                    if op.groups != (1, 1):
                        seen.add(f"g{op.groups[0]}{op.groups[1]}")
                    if cell.stride == 2 and cell.input_hw[0] % 2:
                        seen.add(f"{op.kind}-stride2-odd")
                seen.add(f"{cell.kind}-{len(ops)}")
    required = {"mb", "rec", "normal", "dual", "dilated-stride2", "dilated-stride2-odd", "g12", "g21", "g22",
                "mb-stride2-odd", "rec-stride2-odd", "normal-stride2-odd", "dual-stride2-odd",
                "N-0", "N-1", "N-2", "N-3", "R-1", "R-2", "R-3", "E-1", "E-2", "E-3"}
    assert required <= seen, sorted(required - seen)


@pytest.mark.parametrize("name", list(RANDOM_SPACES))
def test_random_architectures_analytic_matches_generic(name):
    for spec in random_specs(name):
        assert_analytic_matches_generic(spec)


def test_se_swish_analytic_matches_generic():
    space = get_space("small", pool=ALL_KINDS_POOL, se=True, activation="swish", counts=(1, 1, 0, 1, 0, 1))
    rng = np.random.default_rng(7)
    for _ in range(2):
        spec = NetworkSpec(space, Architecture.from_cells(random_cells(rng, space, 4), space.get_pool()))
        assert_analytic_matches_generic(spec)
    plain = NetworkSpec(space.replace(se=False), spec.arch)
    assert network_cost(spec).macs > network_cost(plain).macs
    assert network_cost(spec).params > network_cost(plain).params
