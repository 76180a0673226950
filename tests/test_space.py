"""Tests for nse_tf.space: make_divisible, cell layouts of the preset spaces, validation, dict round trip."""

from __future__ import annotations

import json

import pytest

from nse_tf.space.macro import SPACES, MacroSpace, get_space, make_divisible, parse_int_list


def reference_make_divisible(v: float) -> int:
    """The method's formula: n = max(8, int(v + 4) // 8 * 8), plus 8 if n < 0.9 v."""
    n = max(8, int(v + 4) // 8 * 8)
    return n + 8 if n < 0.9 * v else n


@pytest.mark.parametrize("value,expected", [
    (24 * 1.04, 24),      # 24.96 -> int(28.96) = 28 -> 24; 24 >= 0.9 * 24.96
    (40 * 1.04, 40),      # 41.6 -> 45 -> 40
    (80 * 1.04, 80),      # 83.2 -> 87 -> 80
    (96 * 1.04, 96),      # 99.84 -> 103 -> 96
    (192 * 1.04, 200),    # 199.68 -> 203 -> 200
    (320 * 1.04, 336),    # 332.8 -> int(336.8) = 336 -> 336
    (192 * 1.045, 200),   # 200.64 -> int(204.64) = 204 -> 200
    (320 * 1.045, 336),   # 334.4 -> 338 -> 336
    (3, 8),               # floor of 8
    (12, 16),             # int(16) -> 16
    (11.9, 16),           # int(15.9) = 15 -> 8; 8 < 0.9 * 11.9 = 10.71 -> 8 + 8 = 16
    (100, 104),           # int(104) -> 104
    (99, 96),             # int(103) -> 96; 96 >= 89.1
])
def test_make_divisible(value, expected):
    assert make_divisible(value) == reference_make_divisible(value) == expected


def test_make_divisible_matches_formula_on_a_grid():
    for base in (16, 24, 32, 40, 64, 80, 96, 128, 192, 256, 320):
        for scale in (0.25, 0.35, 0.5, 0.75, 1.0, 1.04, 1.045, 1.3, 1.5):
            assert make_divisible(base * scale) == reference_make_divisible(base * scale), (base, scale)


def _summary(space):
    return [(c.kind, c.cin, c.cout, c.stride, c.input_hw[0]) for c in space.cells()]


def test_imagenet_mac_cells():
    space = SPACES["imagenet_mac"]
    cells = space.cells()
    assert len(cells) == 22
    assert space.stem_hw == 112
    expected = (
        [("N", 16, 16, 1, 112), ("R", 16, 24, 2, 112)]
        + [("N", 24, 24, 1, 56)] * 3 + [("R", 24, 40, 2, 56)]
        + [("N", 40, 40, 1, 28)] * 3 + [("R", 40, 80, 2, 28)]
        + [("N", 80, 80, 1, 14)] * 3 + [("E", 80, 96, 1, 14)]
        + [("N", 96, 96, 1, 14)] * 3 + [("R", 96, 192, 2, 14)]
        + [("N", 192, 192, 1, 7)] * 3 + [("E", 192, 320, 1, 7)]
    )
    assert _summary(space) == expected
    assert [c.index for c in cells] == list(range(22))
    assert cells[0].name == "cell00_N" and cells[21].name == "cell21_E"
    assert [c.may_be_empty for c in cells] == [c.kind == "N" for c in cells]
    assert space.last_channels == 320
    assert len(space.get_pool()) == 27


def test_imagenet_latency_cells():
    space = SPACES["imagenet_latency"]
    assert len(space.cells()) == 21
    expected = (
        [("N", 16, 16, 1, 112), ("R", 16, 32, 2, 112)]
        + [("N", 32, 32, 1, 56)] * 3 + [("R", 32, 64, 2, 56)]
        + [("N", 64, 64, 1, 28)] * 3 + [("R", 64, 128, 2, 28)]
        + [("N", 128, 128, 1, 14)] * 7 + [("R", 128, 256, 2, 14)]
        + [("N", 256, 256, 1, 7)] * 3
    )
    assert _summary(space) == expected
    assert len(space.get_pool()) == 19


def test_small_space_ends_at_2x2():
    space = SPACES["small"]
    cells = space.cells()
    assert space.stem_hw == 28
    assert [c.stride for c in cells if c.kind == "R"] == [2, 2, 2, 2]
    last = cells[-1]
    assert last.kind == "E" and last.input_hw == (2, 2) and last.cout == 160
    assert sorted({c.input_hw[0] for c in cells}, reverse=True) == [28, 14, 7, 4, 2]


def test_r_strides_keep_resolution():
    space = get_space("small", r_strides=(1, 2, 2, 2))
    assert [c.stride for c in space.cells() if c.kind == "R"] == [1, 2, 2, 2]
    assert space.cells()[-1].input_hw == (4, 4)


def test_scale_applies_to_all_but_stem():
    space = MacroSpace(scale=1.04)
    assert space.scaled_channels == (16, 24, 40, 80, 96, 200, 336)
    space = MacroSpace(scale=1.045)  # 96 * 1.045 = 100.32 -> int(104.32) // 8 * 8 = 104
    assert space.scaled_channels == (16, 24, 40, 80, 104, 200, 336)
    space = MacroSpace(scale=0.5)
    assert space.scaled_channels[0] == 16
    assert space.scaled_channels[1:] == tuple(reference_make_divisible(c * 0.5) for c in space.channels[1:])


def test_r_strides_and_stem_stride():
    space = get_space("imagenet_mac", r_strides=(2, 1, 2, 2), stem_stride=1, input_size=32)
    sizes = [(c.kind, c.stride, c.input_hw[0]) for c in space.cells() if c.kind != "N"]
    assert sizes == [("R", 2, 32), ("R", 1, 16), ("R", 2, 16), ("E", 1, 8), ("R", 2, 8), ("E", 1, 4)]
    # default: every R cell stride 2; odd sizes round up
    space = get_space("imagenet_mac", input_size=225)
    assert space.stem_hw == 113
    assert [c.input_hw[0] for c in space.cells() if c.kind == "R"] == [113, 57, 29, 15]


def test_custom_layout_and_optional_last_count():
    space = MacroSpace(layout="RRE", counts=(0, 1, 0), channels=(8, 16, 24, 32), input_size=16)
    assert _summary(space) == [("R", 8, 16, 2, 8), ("N", 16, 16, 1, 4), ("R", 16, 24, 2, 4), ("E", 24, 32, 1, 2)]
    space = MacroSpace(layout="RRE", counts=(0, 1, 0, 2), channels=(8, 16, 24, 32), input_size=16)
    assert [c.kind for c in space.cells()] == ["R", "N", "R", "E", "N", "N"]


@pytest.mark.parametrize("overrides,field", [
    (dict(counts=(1, 2, 3)), "counts"),
    (dict(counts=(1, 2, 3, 4, 5, 6, 7, 8)), "counts"),
    (dict(counts=(1, -1, 3, 3, 3, 3)), "counts"),
    (dict(layout="NXR"), "layout"),
    (dict(layout=""), "counts"),
    (dict(channels=(16, 24, 40)), "channels"),
    (dict(channels=(16, 24, 40, 0, 96, 192, 320)), "channels"),
    (dict(stem_stride=3), "stem_stride"),
    (dict(r_strides=(2, 2)), "r_strides"),
    (dict(r_strides=(2, 3, 2, 2)), "r_strides"),
    (dict(scale=0.0), "scale"),
    (dict(input_size=4), "input_size"),
    (dict(num_classes=1), "num_classes"),
    (dict(activation="gelu"), "activation"),
    (dict(mean=(1.0, 2.0)), "mean"),
    (dict(pool="mac99"), "mac99"),
    (dict(pool="mb_k3_t1,mb_k4_t1"), "mb_k4_t1"),
])
def test_validation_errors_name_the_field(overrides, field):
    with pytest.raises(ValueError) as err:
        get_space("imagenet_mac", **overrides)
    assert field in str(err.value)


def test_unknown_space_and_field():
    with pytest.raises(ValueError, match="nospace"):
        get_space("nospace")
    with pytest.raises(ValueError, match="widht"):
        get_space("small", widht=2)
    with pytest.raises(ValueError, match="bogus"):
        MacroSpace.from_dict({**SPACES["small"].to_dict(), "bogus": 1})


@pytest.mark.parametrize("space", [
    *SPACES.values(),
    MacroSpace(scale=1.04, se=True, activation="swish", r_strides=(2, 2, 1, 2)),
    MacroSpace(pool=("mb_k3_t3_d2", "rec_k5_t2", "dual_k3_t1")),
    MacroSpace(pool=["mb_k3_t3_d2", "rec_k5_t2"]),
], ids=lambda s: f"{s.layout}-{s.input_size}-{s.pool if isinstance(s.pool, str) else 'custom'}")
def test_to_dict_from_dict_round_trip(space):
    data = space.to_dict()
    data = json.loads(json.dumps(data))  # JSON-clean
    back = MacroSpace.from_dict(data)
    assert back == space
    assert back.to_dict() == space.to_dict()
    assert back.cells() == space.cells()
    assert back.get_pool() == space.get_pool()


def test_round_trip_of_comma_string_pool_keeps_ops():
    space = MacroSpace(pool="mb_k3_t3_d2,rec_k5_t2,dual_k3_t1")
    back = MacroSpace.from_dict(json.loads(json.dumps(space.to_dict())))
    assert back.to_dict() == space.to_dict()
    assert back.get_pool().names == space.get_pool().names
    assert back.cells() == space.cells()


def test_parse_int_list():
    assert parse_int_list("1, 2,3,") == (1, 2, 3)
    assert parse_int_list([4, "5"]) == (4, 5)
