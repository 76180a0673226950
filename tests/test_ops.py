"""Tests for nse_tf.ops: op names, the three pools in the method's index order, custom pools, op_cost."""

from __future__ import annotations

import pytest

from nse_tf.space.ops import POOLS, Cost, OpSpec, Pool, get_pool, op_cost

# ---------------------------------------------------------------- pools


def test_pool_sizes():
    assert len(POOLS["mb19"]) == 19
    assert len(POOLS["mac27"]) == 27
    assert len(POOLS["mac72"]) == 72
    for name in POOLS:
        assert len(get_pool(name)) == len(POOLS[name])
        assert get_pool(name).name == name


@pytest.mark.parametrize("pool,index,op", [
    ("mac27", 0, "mb_k3_t1"),
    ("mac27", 1, "mb_k3_t1_d2"),
    ("mac27", 2, "mb_k3_t1_d3"),
    ("mac27", 3, "mb_k3_t3"),
    ("mac27", 8, "mb_k3_t6_d3"),
    ("mac27", 9, "mb_k5_t1"),
    ("mac27", 12, "mb_k7_t1"),
    ("mac27", 20, "mb_k11_t6"),
    ("mac27", 21, "rec_k5_t1"),
    ("mac27", 24, "rec_k7_t1"),
    ("mac27", 26, "rec_k7_t4"),
    ("mac72", 0, "mb_k3_t1"),
    ("mac72", 26, "rec_k7_t4"),
    ("mac72", 27, "mb_k3_t1_g12"),
    ("mac72", 28, "mb_k3_t1_g21"),
    ("mac72", 29, "mb_k3_t1_g22"),
    ("mac72", 30, "mb_k3_t3_g12"),
    ("mac72", 36, "mb_k5_t1_g12"),
    ("mac72", 71, "mb_k11_t6_g22"),
    ("mb19", 0, "mb_k3_t1"),
    ("mb19", 2, "mb_k3_t6"),
    ("mb19", 8, "mb_k7_t6"),
    ("mb19", 9, "normal_k3_t1"),
    ("mb19", 10, "normal_k3_t2"),
    ("mb19", 11, "dual_k3_t1"),
    ("mb19", 12, "dual_k3_t2"),
    ("mb19", 13, "rec_k5_t1"),
    ("mb19", 16, "rec_k7_t1"),
    ("mb19", 18, "rec_k7_t4"),
])
def test_pool_index_order(pool, index, op):
    assert POOLS[pool][index] == op
    assert get_pool(pool).index(op) == index
    assert get_pool(pool).ops[index].name == op


def test_mac72_extends_mac27():
    assert POOLS["mac72"][:27] == POOLS["mac27"]
    assert all(OpSpec.parse(n).groups != (1, 1) for n in POOLS["mac72"][27:])


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_name_round_trip_every_op(pool):
    for name in POOLS[pool]:
        op = OpSpec.parse(name)
        assert op.name == name
        assert OpSpec.parse(op.name) == op
        assert OpSpec(op.kind, op.kernel, op.expansion, op.dilation, op.groups).name == name


def test_parse_fields():
    op = OpSpec.parse("mb_k5_t6_d2_g12")
    assert (op.kind, op.kernel, op.expansion, op.dilation, op.groups) == ("mb", 5, 6, 2, (1, 2))
    assert OpSpec.parse("rec_k7_t2") == OpSpec("rec", 7, 2)
    assert OpSpec("mb", 3, 1, 1, (1, 1)).name == "mb_k3_t1"  # defaults are not printed


@pytest.mark.parametrize("name", [
    "foo", "", "mb_k3", "mb_k3_t", "mbk3_t1", "conv_k3_t1", "mb_k4_t1", "mb_k0_t1", "mb_k3_t0",
    "mb_k3_t1_d0", "mb_k3_t1_d1", "mb_k3_t1_g11", "mb_k3_t1_g02", "rec_k5_t1_d2", "normal_k3_t1_g12",
    "mb_k3_t1_g12_d2", "MB_k3_t1", "mb_k03_t1", "mb_k3_t1 extra",
])
def test_bad_names_raise_value_error_naming_the_name(name):
    with pytest.raises(ValueError) as err:
        OpSpec.parse(name)
    assert repr(name) in str(err.value) or name in str(err.value)


def test_bad_opspec_fields():
    with pytest.raises(ValueError, match="kind"):
        OpSpec("conv", 3, 1)
    with pytest.raises(ValueError, match="kernel"):
        OpSpec("mb", 2, 1)
    with pytest.raises(ValueError, match="dilation"):
        OpSpec("dual", 3, 1, dilation=2)


# ---------------------------------------------------------------- custom pools


def test_custom_pool_from_string_and_list():
    names = ["mb_k3_t3_d2", "mb_k5_t3_g12", "rec_k5_t2", "normal_k3_t1", "dual_k3_t1", "mb_k3_t1"]
    from_str = get_pool(",".join(names))
    from_str_spaces = get_pool(" , ".join(names) + ",")
    from_list = get_pool(names)
    for pool in (from_str, from_str_spaces, from_list):
        assert isinstance(pool, Pool)
        assert pool.names == tuple(names)
        assert pool.index("rec_k5_t2") == 2
    assert from_list.to_json() == names
    assert get_pool("mac27").to_json() == "mac27"
    assert get_pool(from_list) is from_list


def test_custom_pool_duplicates_rejected():
    with pytest.raises(ValueError, match="mb_k3_t1"):
        get_pool("mb_k3_t1,rec_k5_t1,mb_k3_t1")
    with pytest.raises(ValueError, match="rec_k5_t1"):
        get_pool(["rec_k5_t1", "rec_k5_t1"])


def test_custom_pool_bad_inputs():
    with pytest.raises(ValueError, match="nopool"):
        get_pool("nopool")
    with pytest.raises(ValueError, match="mb_k4_t1"):
        get_pool("mb_k3_t1,mb_k4_t1")
    with pytest.raises(ValueError, match="empty"):
        get_pool([])
    with pytest.raises(ValueError, match="mb_k5_t1"):
        get_pool("mac27").index("mb_k5_t1_d2")


# ---------------------------------------------------------------- analytic cost


def test_op_cost_mb_hand_computed():
    # mb_k3_t3, cin 16 -> cout 24, stride 2, 8x8 input: mid = 48, output 4x4.
    # expand 1x1: MACs 8*8*48*16 = 49152, params 48*16 + 2*48 (BN) = 864
    # dw 3x3 s2:  MACs 4*4*48*9 = 6912,   params 48*9 + 2*48 = 528
    # project:    MACs 4*4*24*48 = 18432, params 24*48 + 2*24 = 1200
    cost = op_cost(OpSpec.parse("mb_k3_t3"), 8, 8, 16, 24, 2)
    assert cost == Cost(49152 + 6912 + 18432, 864 + 528 + 1200)
    assert cost == Cost(74496, 2592)


def test_op_cost_rec_odd_size_hand_computed():
    # rec_k5_t2, cin 8 -> cout 8, stride 2, 7x7 input: mid = 16, output ceil(7/2) = 4.
    # expand:        MACs 7*7*16*8 = 6272,       params 16*8 + 32 = 160
    # 1x5 s(1,2):    MACs 7*4*16*16*5 = 35840,   params 16*16*5 + 32 = 1312
    # 5x1 s(2,1):    MACs 4*4*16*16*5 = 20480,   params 1312
    # project:       MACs 4*4*8*16 = 2048,       params 8*16 + 16 = 144
    cost = op_cost(OpSpec.parse("rec_k5_t2"), 7, 7, 8, 8, 2)
    assert cost == Cost(6272 + 35840 + 20480 + 2048, 160 + 1312 + 1312 + 144)


def test_op_cost_grouped_se_hand_computed():
    # mb_k3_t1_g22, cin = cout = 16, stride 1, 4x4, with SE: mid = 16, SE reduction 16 // 4 = 4.
    # expand g2:   MACs 4*4*16*8 = 2048,  params 16*8 + 32 = 160
    # dw 3x3:      MACs 4*4*16*9 = 2304,  params 16*9 + 32 = 176
    # SE reduce:   MACs 16*4 = 64,        params 64 + 4 (bias) = 68
    # SE expand:   MACs 4*16 = 64,        params 64 + 16 (bias) = 80
    # project g2:  MACs 4*4*16*8 = 2048,  params 16*8 + 32 = 160
    cost = op_cost(OpSpec.parse("mb_k3_t1_g22"), 4, 4, 16, 16, 1, se=True)
    assert cost == Cost(2048 + 2304 + 64 + 64 + 2048, 160 + 176 + 68 + 80 + 160)


def test_op_cost_normal_dual_hand_computed():
    # normal_k3_t2, cin 8 -> cout 16, stride 1, 5x5: mid 16.
    # expand 5*5*16*8 = 3200 (params 128+32); kxk 5*5*16*16*9 = 57600 (2304+32); project 5*5*16*16 = 6400 (256+32)
    assert op_cost(OpSpec.parse("normal_k3_t2"), 5, 5, 8, 16, 1) == Cost(3200 + 57600 + 6400, 160 + 2336 + 288)
    # dual_k3_t1, cin = cout = 8, stride 2, 6x6: mid 8, out 3x3.
    # expand 6*6*8*8 = 2304 (64+16); kxk1 6*6*8*8*9 = 20736 (576+16); kxk2 3*3*8*8*9 = 5184 (592);
    # project 3*3*8*8 = 576 (80)
    assert op_cost(OpSpec.parse("dual_k3_t1"), 6, 6, 8, 8, 2) == Cost(2304 + 20736 + 5184 + 576, 80 + 592 + 592 + 80)


def test_dilation_does_not_change_cost():
    plain = op_cost(OpSpec.parse("mb_k3_t6"), 14, 14, 24, 40, 2)
    assert op_cost(OpSpec.parse("mb_k3_t6_d2"), 14, 14, 24, 40, 2) == plain
    assert op_cost(OpSpec.parse("mb_k3_t6_d3"), 14, 14, 24, 40, 2) == plain
