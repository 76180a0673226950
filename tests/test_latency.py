"""The latency lookup table and the latency cost model: what the latency search penalises and windows."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from nse_tf.cost import conversion, latency_table, measurement, pieces
from nse_tf.cost import model as cost_model
from nse_tf.space.macro import MacroSpace

# One N cell, then one R cell (28 -> 14): the smallest space with both kinds.
SPACE = MacroSpace(layout="R", counts=(1, 0), channels=(8, 16), pool=("mb_k3_t1", "mb_k3_t3"), input_size=28,
                   input_channels=1, num_classes=10, stem_stride=1, head_channels=32, mean=(72.9,), std=(90.0,))


def hand_table(space: MacroSpace = SPACE) -> latency_table.LatencyTable:
    return latency_table.LatencyTable(space=space.to_dict(), op_ms=[[0.10, 0.30], [0.20, 0.50]],
                                      add_ms=[0.01, 0.02], fixed_ms=1.0, device="test", num_threads=1, runs=1)


def test_latency_model_charges_one_add_per_residual_and_per_extra_branch():
    model = cost_model.latency_model(hand_table(), SPACE)
    assert model.unit == "ms"
    # N cell empty, R cell one op: no add at all.
    assert model.architecture_cost([[], [0]]) == pytest.approx(1.0 + 0.20)
    # N cell with two branches: x + a + b is two adds; R cell with two branches: a + b is one add.
    assert model.architecture_cost([[0, 1], [0, 1]]) == pytest.approx(1.0 + 0.10 + 0.30 + 2 * 0.01 + 0.20 + 0.50
                                                                      + 0.02)
    assert model.bounds(SPACE) == pytest.approx((1.2, 1.0 + 0.4 + 0.02 + 0.7 + 0.04 - 0.02))


def test_macs_model_is_the_analytic_count():
    from nse_tf.space.analytic import network_cost
    from nse_tf.space.architecture import Architecture, NetworkSpec

    spec = NetworkSpec(SPACE, Architecture.from_cells([[0, 1], [1]], SPACE.get_pool()), "x")
    model = cost_model.macs_model(SPACE)
    assert model.unit == "M MACs"
    assert model.architecture_cost([[0, 1], [1]]) == pytest.approx(network_cost(spec).macs / 1e6)


def test_table_round_trips_and_refuses_another_space(tmp_path):
    path = str(tmp_path / "table.json")
    latency_table.save(hand_table(), path)
    assert latency_table.load(path, SPACE) == hand_table()
    other = SPACE.replace(channels=(8, 24))
    with pytest.raises(latency_table.LatencyTableError,
                       match=r"table\.json: measured for another space \(channels differ\)"):
        latency_table.load(path, other)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(format="other"), "not an nse_tf latency table"),
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d.pop("add_ms"), r"corrupted latency table \(KeyError: 'add_ms'\)"),
    (lambda d: d["op_ms"][1].__setitem__(0, float("nan")), "finite and >= 0"),
    (lambda d: d["op_ms"][1].pop(), "cell01_R has 1 operations, the pool 2"),
])
def test_bad_table_is_one_clear_error_naming_the_file(tmp_path, edit, message):
    data = hand_table().to_json()
    edit(data)
    path = tmp_path / "table.json"
    path.write_text(json.dumps(data))
    with pytest.raises(latency_table.LatencyTableError, match=message) as info:
        latency_table.load(str(path), SPACE)
    assert str(path) in str(info.value)


def stub_timer(monkeypatch, convert=None):
    """Pieces "convert" to their parameter count and "time" at 0.001 ms per parameter + 0.05 ms per invoke; the
    models converted, in order, and the timer's calls."""
    converted, timed = [], []

    def write_piece(model, piece, tflite_format, workdir):
        if convert is not None:
            convert(model, piece, tflite_format)
        converted.append(model)
        path = os.path.join(workdir, f"{piece.name}.tflite")
        with open(path, "w") as f:
            f.write(str(model.count_params()))
        return path

    def interleaved_ms(paths, num_threads, runs, warmup, rounds):
        timed.append((list(paths), rounds))
        return {p: 0.05 + 0.001 * int(open(p).read()) for p in paths}

    monkeypatch.setattr(measurement, "_write_piece", write_piece)
    monkeypatch.setattr(measurement, "_interleaved_ms", interleaved_ms)
    return converted, timed


def test_measure_subtracts_the_invoke_overhead_and_shares_cells_of_one_shape(monkeypatch):
    """Stub timer = 0.001 ms per parameter + 0.05 ms per invoke: ops and adds come out without the 0.05,
    the fixed part keeps it once, and the two N cells of one shape get identical entries. Every piece is
    converted before any is timed, and all are timed together in interleaved rounds."""
    space = SPACE.replace(counts=(2, 0))
    calls, timed = stub_timer(monkeypatch)
    table = measurement.measure(space, runs=3, rounds=4)
    assert len(calls) == 1 + 2 * (2 + 1) + 2  # overhead, 2 shapes x (2 ops + add), stem and head
    assert len(timed) == 1 and len(timed[0][0]) == len(calls) and timed[0][1] == 4 and table.rounds == 4
    assert table.op_ms[0] == table.op_ms[1] and table.add_ms[0] == table.add_ms[1] == 0.0
    assert table.op_ms[0][1] > table.op_ms[0][0] > 0
    overhead_params = calls[0].count_params()
    assert table.op_ms[2][0] == pytest.approx(0.001 * (calls[4].count_params() - overhead_params))
    assert table.fixed_ms == pytest.approx(0.05 + 0.001 * (calls[-2].count_params() + calls[-1].count_params()
                                                           - overhead_params))
    table.check_matches(space, "measured")
    old = table.to_json()
    del old["rounds"]  # tables measured before rounds: one window per piece
    assert latency_table.LatencyTable.from_json(old, "old.json").rounds == 1


def test_an_int8_table_times_int8_files_and_is_kept_apart_from_float32(tmp_path, monkeypatch):
    """--latency_format=int8: every piece is converted with full integer quantization (int8 between pieces,
    uint8 pixels into the stem, float logits out of the head), and a table of one form never prices the other."""
    import tensorflow as tf

    seen = []

    def convert_and_record(model, piece, tflite_format):
        interpreter = tf.lite.Interpreter(model_content=conversion.convert_piece(model, piece, tflite_format))
        seen.append((interpreter.get_input_details()[0]["dtype"], interpreter.get_output_details()[0]["dtype"]))

    stub_timer(monkeypatch, convert_and_record)
    table = measurement.measure(SPACE, runs=3, tflite_format="int8")
    assert table.tflite_format == "int8" and "LiteRT int8" in table.device
    assert seen[-2] == (np.uint8, np.int8) and seen[-1] == (np.int8, np.float32)  # stem, head
    assert set(seen[:-2]) == {(np.int8, np.int8)}
    path = str(tmp_path / "int8.json")
    latency_table.save(table, path)
    assert latency_table.load(path, SPACE, "int8").op_ms == table.op_ms
    with pytest.raises(latency_table.LatencyTableError, match="measured for int8 TFLite files, not float32"):
        measurement.load_or_measure(path, SPACE, tflite_format="float32")
    legacy = table.to_json()
    del legacy["tflite_format"]  # tables measured before int8 tables existed
    (tmp_path / "old.json").write_text(json.dumps(legacy))
    assert latency_table.load(str(tmp_path / "old.json"), SPACE).tflite_format == "float32"


@pytest.mark.parametrize("cpuinfo, expected", [
    ("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx avx2 fma\n\nprocessor\t: 1\n"
     "model name\t: AMD EPYC\nflags\t\t: fpu sse avx avx2 fma\n", "AMD EPYC ({n} cores; avx2)"),
    ("model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t: avx2 avx512f avx512_vnni amx_int8 amx_tile\n",
     "Intel(R) Xeon(R) Platinum 8480+ ({n} cores; avx2 avx512f avx512_vnni amx_int8)"),
    ("processor\t: 0\nFeatures\t: fp asimd asimddp i8mm sve\nCPU part\t: 0xd40\n", "{m} ({n} cores; asimddp i8mm)"),
])
def test_timings_name_the_cpu_and_its_int8_extensions(tmp_path, cpuinfo, expected):
    """Whether int8 beats float32 depends on the CPU's SIMD extensions, so every timing record names them."""
    import platform

    from nse_tf.export.timing import cpu_description

    (tmp_path / "cpuinfo").write_text(cpuinfo)
    machine = platform.processor() or platform.machine()
    assert cpu_description(str(tmp_path / "cpuinfo")) == expected.format(n=os.cpu_count(), m=machine)
    assert cpu_description(str(tmp_path / "absent")) == f"{machine} ({os.cpu_count()} cores)"


def test_one_operation_is_timed_with_litert(tmp_path):
    """The real timer: a converted one-op model runs under LiteRT and gives a finite positive median (how fast it
    is belongs to benchmarks/, not to a unit test)."""
    piece = pieces.table_pieces(SPACE)[2]
    path = measurement._write_piece(pieces.build_piece(SPACE, piece), piece, "float32", str(tmp_path))
    ms = measurement._interleaved_ms([path], 1, 20, 2, 2)[path]
    assert isinstance(ms, float) and math.isfinite(ms) and ms > 0


def test_a_whole_network_converts_in_the_tables_int8_form(tmp_path):
    """A child network's input has a free batch dimension (the table's pieces have none): the int8 converter
    calibrates it at batch 1, uint8 pixels in and float logits out, as the zoo's int8 files."""
    from nse_tf.export.runtimes import litert_interpreter
    from nse_tf.nets.child import build_child
    from nse_tf.space.architecture import Architecture, NetworkSpec

    model = build_child(NetworkSpec(SPACE, Architecture.from_cells([[0], [1]], SPACE.get_pool()), "net"))
    path = tmp_path / "net.tflite"
    path.write_bytes(conversion.convert_network(model, "int8"))
    interpreter = litert_interpreter(str(path))
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    assert interpreter.get_output_details()[0]["dtype"] == np.float32


@pytest.mark.slow
def test_table_predicts_the_whole_networks_litert_latency(tmp_path):
    """Sum of table entries vs the exported child network, both on this CPU: within a factor of 2."""
    import tensorflow as tf

    from nse_tf.export.timing import tflite_latency_ms
    from nse_tf.nets.child import build_child
    from nse_tf.space.architecture import Architecture, NetworkSpec

    table = measurement.measure(SPACE, runs=200)
    cells = [[0, 1], [1]]
    predicted = cost_model.latency_model(table, SPACE).architecture_cost(cells)
    model = build_child(NetworkSpec(SPACE, Architecture.from_cells(cells, SPACE.get_pool()), "net"))
    path = tmp_path / "net.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    measured = tflite_latency_ms(str(path), runs=200)["median_ms"]
    assert 0.5 < predicted / measured < 2.0, (predicted, measured)
    assert np.all(np.asarray(table.op_ms) >= 0)


@pytest.mark.parametrize("unit", ["ms", "M MACs"])
def test_report_states_the_unit_and_a_latency_front_also_shows_macs(tmp_path, unit):
    from types import SimpleNamespace

    from nse_tf.search import report as reporting
    from nse_tf.search.evolution import ArchPoint, EvolutionState

    config = SimpleNamespace(run_dir=str(tmp_path), space=SPACE, penalty=SimpleNamespace(target=1.3),
                             evolution=SimpleNamespace(drift=0.1, window=None), data=SimpleNamespace(dataset="fashion_mnist"))
    # One finished round, read from a state file written before latency searches existed ("best_macs").
    state = EvolutionState(list(SPACE.get_pool().names), 2, 1, 0, 0, "done", [[0, 1], [1]], [[], []], [[0, 1], [1]],
                           [], [{"round": 0, "subspace_sizes": [2, 1], "active_ops_end": 3, "evaluated": 4,
                                 "front_size": 1, "best_accuracy": 0.5, "best_macs": 1.234, "eval_seconds": 1.0}])
    state = EvolutionState.from_json(state.to_json(), "an old state")
    assert "best_macs" not in state.history[0] and state.history[0]["best_cost"] == 1.234
    point = ArchPoint([[0, 1], [1]], 1.234, 0.5)
    path = tmp_path / "report.md"
    reporting.write_report(str(path), config, state, reporting.choose_architectures([point], 1.3),
                           SPACE.get_pool().names, unit)
    text = path.read_text()
    macs = cost_model.macs_model(SPACE).architecture_cost(point.cells)
    assert "(window +-0.1)" in text
    assert "| 1 | 1/1.5/2 | 3 | 4 | - | 1 |" in text  # a round recorded before its median was: a dash
    if unit == "ms":
        assert "target 1.3 ms" in text and "| file | ms | M MACs | held-out top-1 |" in text
        assert f"| chosen/front_0.json | 1.234 | {macs:.2f} | 0.5000 |" in text
    else:
        assert "target 1.3 M MACs" in text and "| chosen/front_0.json | 1.23 | 0.5000 |" in text
