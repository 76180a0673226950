"""The latency model that predicts (issue 18): the correction's features, its fit and its scores."""

from __future__ import annotations

import numpy as np
import pytest

from nse_tf.cost import latency_prediction, latency_table
from nse_tf.space.macro import MacroSpace

# One N cell, then one R cell (28 -> 14), two operations: as tests/test_latency.py
SPACE = MacroSpace(layout="R", counts=(1, 0), channels=(8, 16), pool=("mb_k3_t1", "mb_k3_t3"), input_size=28,
                   input_channels=1, num_classes=10, stem_stride=1, head_channels=32, mean=(72.9,), std=(90.0,))
TABLE = latency_table.LatencyTable(space=SPACE.to_dict(), op_ms=[[0.10, 0.30], [0.20, 0.50]], add_ms=[0.01, 0.02],
                                   fixed_ms=1.0, device="test", num_threads=1, runs=1)
ARCHS = [[[], [0]], [[0], [0]], [[0, 1], [0]], [[], [0, 1]], [[1], [1]], [[0, 1], [0, 1]], [[0], [1]], [[1], [0, 1]]]


def test_features_charge_the_averages_and_the_extra_branches():
    # N cell with one branch averages two tensors (x and it); the R cell with one branch does not average
    f = latency_prediction.features(TABLE, SPACE, [[0], [1]])
    assert f[0] == pytest.approx(1.0 + 0.10 + 0.01 + 0.50) and f[1] == pytest.approx(0.01) and f[2] == 0.0
    f = latency_prediction.features(TABLE, SPACE, [[0, 1], [0, 1]])
    assert f[1] == pytest.approx(0.01 + 0.02) and f[2] == pytest.approx(0.01 + 0.02) and f[3] == 4 and f[4] == 1
    assert latency_prediction.features(TABLE, SPACE, [[], [0]])[1] == 0.0  # an empty N cell passes x through


def test_fit_recovers_a_linear_law_and_scores_held_out_networks(tmp_path):
    truth = np.array([1.2, 3.0, 1.5, 0.004, 0.05])
    measured = [float(latency_prediction.features(TABLE, SPACE, a) @ truth) for a in ARCHS]
    correction = latency_prediction.fit(TABLE, SPACE, ARCHS[:6], measured[:6])
    np.testing.assert_allclose(correction.weights, truth, rtol=1e-6)
    predicted = [correction.predict(TABLE, SPACE, a) for a in ARCHS[6:]]
    scores = latency_prediction.accuracy(predicted, measured[6:])
    assert scores["within_10pct"] == 1.0 and scores["rmse_ms"] < 1e-9 and scores["kendall_tau"] == 1.0
    path = str(tmp_path / "correction.json")
    correction.save(path)
    assert latency_prediction.LatencyCorrection.load(path) == correction
    off = latency_prediction.accuracy([1.0, 2.0, 3.3], [1.0, 2.25, 3.0])
    assert off["within_10pct"] == pytest.approx(2 / 3) and off["n"] == 3
    with pytest.raises(ValueError, match="at least 5 measured networks"):
        latency_prediction.fit(TABLE, SPACE, ARCHS[:3], measured[:3])


def test_repeat_agreement_scores_odd_rounds_against_even_ones():
    # network 0: odd rounds 1.0, even rounds 1.0 (agree); network 1: odd 1.2 against even 1.0 (20% off)
    rounds = [[1.0, 1.0, 1.0, 1.0], [1.0, 1.2, 1.0, 1.2], [2.0, 2.1, 2.0, 2.1]]
    repeat = latency_prediction.repeat_agreement(rounds)
    assert repeat["within_10pct"] == pytest.approx(2 / 3) and repeat["n"] == 3
    assert repeat["rmse_ms"] == pytest.approx(np.sqrt((0.2 ** 2 + 0.1 ** 2) / 3))
    assert latency_prediction.repeat_agreement([[1.0], [2.0, 2.0]]) is None  # a network timed once
