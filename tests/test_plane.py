"""The accuracy-latency plane's verdict (nse_tf.zoo.plane): a searched pick against the width family's curve."""

from __future__ import annotations

import pytest

from nse_tf.zoo.plane import PlaneRow, family_curve_at, group, verdicts


def row(method, entry, seed, top1, ms, alpha=None, budget=None):
    return PlaneRow(method, budget, alpha, entry, seed, top1, 1_000_000, ms, ms * 1.2)


FAMILY = [row("family", "fam-a035-s0", 0, 0.900, 0.040, 0.35), row("family", "fam-a035-s1", 1, 0.904, 0.042, 0.35),
          row("family", "fam-a05-s0", 0, 0.912, 0.060, 0.5), row("family", "fam-a05-s1", 1, 0.910, 0.060, 0.5),
          row("family", "fam-a10-s0", 0, 0.926, 0.160, 1.0), row("family", "fam-a10-s1", 1, 0.927, 0.160, 1.0)]


def test_family_groups_seeds_at_their_mean_time_and_better_seed():
    family = group(FAMILY, "family")
    assert [p.label for p in family] == ["fam-a035", "fam-a05", "fam-a10"]
    assert family[0].ms == pytest.approx(0.041) and family[0].high == 0.904 and family[0].low == 0.900


def test_curve_is_piecewise_linear_and_clamped_below_and_limited_above():
    family = group(FAMILY, "family")
    assert family_curve_at(family, 0.010) == 0.904  # faster than the smallest: that member
    assert family_curve_at(family, 0.110) == pytest.approx(0.912 + 0.5 * (0.927 - 0.912))
    assert family_curve_at(family, 0.165) == 0.927  # under 5% slower than the largest: flat
    assert family_curve_at(family, 0.170) is None  # more than 5% slower: does not count
    with pytest.raises(ValueError):
        family_curve_at([], 0.1)


def test_verdict_uses_the_picks_worse_seed():
    rows = FAMILY + [row("nse", "nse-a05-s0", 0, 0.921, 0.060, budget="a05"),
                     row("nse", "nse-a05-s1", 1, 0.913, 0.062, budget="a05"),
                     row("random", "rnd-a05-s0", 0, 0.930, 0.061, budget="a05"),
                     row("random", "rnd-a05-s1", 1, 0.909, 0.061, budget="a05")]
    by_method = {v["method"]: v for v in verdicts(rows)}
    assert by_method["nse"]["lower_seed_top1"] == 0.913
    assert by_method["nse"]["above_family"] is True  # 0.913 > the curve at 0.061 ms (about 0.9122)
    assert by_method["random"]["above_family"] is False  # its worse seed 0.909 is under it


def test_rows_are_checked():
    with pytest.raises(ValueError, match="method"):
        row("hand", "x-s0", 0, 0.9, 0.1)
    with pytest.raises(ValueError, match="alpha"):
        row("nse", "x-s0", 0, 0.9, 0.1, alpha=0.5)
