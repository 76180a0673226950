"""nse_tf.export and tools/export.py: every format written atomically and checked against Keras on
Fashion-MNIST images (float files within float tolerance, the int8 file fed raw uint8 pixels), latency
measurement, and the CLI's one-line flag errors.

The model is tiny (a few thousand weights, dilated ops in stride-2 cells, grouped 1x1 convs) with random
weights at a scale that keeps activations O(1), so the logits are spread and top-1 agreement is a real
check. Exports cost about 5 s per TFLite file on two cores: the default run exports float32, int8 and ONNX
once per module; the other formats and the CLI end to end are `slow`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import pytest

from nse_tf.export import convert, exporter, runtimes, timing
from nse_tf.nets.child import build_child
from nse_tf.nets.layers import StridedDilatedDepthwiseConv2D
from nse_tf.space.architecture import Architecture, NetworkSpec
from nse_tf.space.macro import get_space
from tests.helpers import randomise_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "tools", "export.py")
FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
needs_data = pytest.mark.skipif(not os.path.exists(FMNIST), reason="dataset-fashion-mnist is not installed")

# Three stride-2 R cells (28 -> 14 -> 7 -> 4), each with a dilated op, so the export goes through
# StridedDilatedDepthwiseConv2D at even (28, 14) and odd (7) input sizes; the middle cell has grouped 1x1
# convs (which Keras runs under XLA on CPU). Small graphs convert faster.
POOL = ("mb_k3_t1", "mb_k3_t3_d2", "normal_k3_t1", "mb_k3_t3_g22")
SPACE = get_space("small", pool=POOL, layout="RRR", counts=(0, 0, 0), channels=(8, 8, 16, 16), r_strides=(2, 2, 2),
                  head_channels=32)
CELLS = [[0, 1], [1, 3], [0, 1, 2]]
FAST_FORMATS = ("float32", "int8", "onnx")


def tiny_spec(space=SPACE, name="tiny-net") -> NetworkSpec:
    return NetworkSpec(space, Architecture.from_cells(CELLS, space.get_pool()), name)


def max_rel_diff(result: exporter.ExportResult, reference: np.ndarray) -> float:
    return result.max_abs_diff / max(1.0, float(np.abs(reference).max()))


@pytest.fixture(scope="module")
def data():
    from nse_tf.data import load_fashion_mnist

    if not os.path.exists(FMNIST):
        pytest.skip("dataset-fashion-mnist is not installed")
    d = load_fashion_mnist()
    return d.x_train[:200], d.x_test[:200], d.y_test[:200]


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    m = build_child(tiny_spec())
    randomise_weights(m, seed=1)
    assert sum(isinstance(layer, StridedDilatedDepthwiseConv2D) for layer in m.layers) == 3
    return m


@pytest.fixture(scope="module")
def reference(model, data):
    return runtimes.keras_logits(model, data[1])


def _export(model, data, out_dir, formats, scratch_root):
    """export_model with the process's temp directory pointed at ``scratch_root`` (so what it leaves
    there is seen without other processes' files); returns the results by format and the leftovers."""
    calibration, images, labels = data
    os.makedirs(scratch_root, exist_ok=True)
    saved, tempfile.tempdir = tempfile.tempdir, os.fspath(scratch_root)
    try:
        results = exporter.export_model(model, out_dir, formats, calibration, images, labels, name="tiny")
    finally:
        tempfile.tempdir = saved
    leftovers = [n for n in os.listdir(scratch_root) if n.startswith("nse-export-")]  # not autograph's files
    return {r.format: r for r in results}, leftovers


@pytest.fixture(scope="module")
def fast_export(model, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("fast")
    results, scratch = _export(model, data, out, FAST_FORMATS, tmp_path_factory.mktemp("scratch"))
    return out, results, scratch


# ------------------------------------------------------------------------------------ arguments


def test_unknown_format_names_it_and_lists_the_valid_ones(tmp_path, model):
    with pytest.raises(ValueError) as err:
        exporter.export_model(model, tmp_path / "out", ["float32", "int4"])
    assert "'int4'" in str(err.value)
    for fmt in convert.FORMATS:
        assert fmt in str(err.value)
    assert not os.path.exists(tmp_path / "out")  # refused before anything is written
    assert convert.check_formats(["onnx", " float32", "onnx"]) == ("onnx", "float32")
    with pytest.raises(ValueError, match="no export format"):
        convert.check_formats([])


def test_int8_needs_calibration_images(tmp_path, model):
    with pytest.raises(ValueError, match="representative"):
        exporter.export_model(model, tmp_path, ["int8"])


# -------------------------------------------------------------------------- the default formats


@needs_data
def test_float32_tflite_matches_keras(fast_export, reference, data):
    out, results, _ = fast_export
    r = results["float32"]
    assert r.path == os.path.join(out, "tiny_float32.tflite") and r.size_bytes == os.path.getsize(r.path)
    assert float(np.std(reference)) > 0.1  # spread logits: the comparisons below are not vacuous
    assert max_rel_diff(r, reference) < 1e-4, r
    assert r.top1_agreement == 1.0 and r.top1 == r.keras_top1 and r.num_verified == len(data[1])
    assert r.input_quantization is None
    np.testing.assert_allclose(runtimes.tflite_logits(r.path, data[1][:5]), reference[:5],
                               atol=1e-4 * np.abs(reference).max())


@needs_data
def test_int8_takes_raw_uint8_pixels_and_keeps_top1(fast_export, reference, data):
    from ai_edge_litert.interpreter import Interpreter

    _, results, _ = fast_export
    r = results["int8"]
    assert r.input_quantization == (1.0, 0)  # raw pixels are the quantized input, no arithmetic on the phone
    interpreter = Interpreter(model_path=r.path)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert inp["dtype"] == np.uint8 and out["dtype"] == np.float32
    interpreter.allocate_tensors()  # batch 1, as a phone runs it
    raw = data[1][:20]
    assert raw.dtype == np.uint8
    logits = []
    for image in raw:
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        logits.append(interpreter.get_tensor(out["index"])[0])
    np.testing.assert_array_equal(np.argmax(logits, -1), runtimes.tflite_logits(r.path, raw).argmax(-1))
    assert r.top1_agreement >= 0.9, r
    assert abs(r.top1 - r.keras_top1) <= 0.03, r
    assert max_rel_diff(r, reference) < 0.5, r  # quantized, yet the same function
    float_size = results["float32"].size_bytes
    assert r.size_bytes < float_size


@needs_data
def test_onnx_matches_keras(fast_export, reference):
    import onnx
    import onnxruntime as ort

    _, results, _ = fast_export
    r = results["onnx"]
    session = ort.InferenceSession(r.path, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]  # no captured constants as extra inputs
    assert [o.name for o in session.get_outputs()] == ["logits"]
    graph = onnx.load(r.path).graph
    assert not [n.op_type for n in graph.node if "PartitionedCall" in n.op_type]  # the grouped convs' XLA calls
    groups = [a.i for n in graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    assert 2 in groups
    assert max_rel_diff(r, reference) < 1e-4, r
    assert r.top1_agreement == 1.0


@needs_data
def test_export_leaves_only_the_artifacts(fast_export):
    out, results, scratch = fast_export
    assert sorted(os.listdir(out)) == sorted(["tiny_float32.tflite", "tiny_int8.tflite", "tiny.onnx"])
    assert list(results) == list(FAST_FORMATS)  # results in FORMATS order
    assert not scratch, scratch  # the scratch SavedModel the TFLite files came from is gone


@needs_data
def test_latency_of_a_tflite_file(fast_export):
    _, results, _ = fast_export
    for fmt in ("float32", "int8"):
        lat = timing.tflite_latency_ms(results[fmt].path, runs=20, warmup=2)
        assert 0 < lat["min_ms"] <= lat["median_ms"] <= lat["p90_ms"] and lat["mean_ms"] > 0
        assert lat["runs"] == 20 and lat["num_threads"] == 1 and lat["xnnpack"] is True
    assert timing.tflite_latency_ms(results["int8"].path, runs=3, warmup=0, xnnpack=False)["median_ms"] > 0
    with pytest.raises(ValueError, match="runs"):
        timing.tflite_latency_ms(results["float32"].path, runs=0)


# ------------------------------------------------------------------------------- atomic writes


class _FailingExport:
    """A stand-in model whose SavedModel export writes part of its files and then fails."""

    def export(self, path, format, verbose=None):
        os.makedirs(path)
        with open(os.path.join(path, "saved_model.pb"), "w") as f:
            f.write("half")
        raise RuntimeError("export failed midway")


def test_saved_model_write_is_atomic(tmp_path):
    final = tmp_path / "m_saved_model"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="midway"):
        convert.write_saved_model(_FailingExport(), str(final))
    assert os.listdir(tmp_path) == ["m_saved_model"] and os.listdir(final) == ["old.txt"]  # old tree intact

    class _Good:
        def export(self, path, format, verbose=None):
            os.makedirs(os.path.join(path, "variables"))
            with open(os.path.join(path, "saved_model.pb"), "w") as f:
                f.write("new")

    convert.write_saved_model(_Good(), str(final))
    assert os.listdir(tmp_path) == ["m_saved_model"]  # no staging or old trees left
    assert sorted(os.listdir(final)) == ["saved_model.pb", "variables"]


def test_failed_write_keeps_the_previous_file(tmp_path, model, monkeypatch):
    (tmp_path / "tiny.onnx").write_bytes(b"previous")
    monkeypatch.setattr(exporter, "onnx_bytes", lambda model: b"new model bytes")

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)  # dies after writing the temp file, before the rename
    with pytest.raises(OSError, match="disk full"):
        exporter.export_model(model, tmp_path, ["onnx"], name="tiny")
    assert os.listdir(tmp_path) == ["tiny.onnx"] and (tmp_path / "tiny.onnx").read_bytes() == b"previous"
    monkeypatch.undo()
    monkeypatch.setattr(exporter, "onnx_bytes", lambda model: b"new model bytes")
    (result,) = exporter.export_model(model, tmp_path, ["onnx"], name="tiny")
    assert os.listdir(tmp_path) == ["tiny.onnx"] and (tmp_path / "tiny.onnx").read_bytes() == b"new model bytes"
    assert result.size_bytes == len(b"new model bytes") and result.max_abs_diff is None


# --------------------------------------------------------------------------------- slow: the rest


@pytest.mark.slow
@needs_data
def test_saved_model_float16_dynamic_range(model, data, reference, tmp_path):
    results, scratch = _export(model, data, tmp_path / "out", ["dynamic_range", "float16", "saved_model"],
                               tmp_path / "scratch")
    assert list(results) == ["saved_model", "float16", "dynamic_range"] and not scratch
    assert sorted(os.listdir(tmp_path / "out")) == ["tiny_dynamic_range.tflite", "tiny_float16.tflite",
                                                    "tiny_saved_model"]
    assert max_rel_diff(results["saved_model"], reference) < 1e-5
    assert max_rel_diff(results["float16"], reference) < 1e-2, results["float16"]
    assert results["float16"].top1_agreement >= 0.97
    # dynamic range quantizes only weight tensors of >= 1024 elements: a coarse check
    assert max_rel_diff(results["dynamic_range"], reference) < 0.5
    assert results["dynamic_range"].top1_agreement >= 0.9
    for r in results.values():
        assert r.input_quantization is None


@pytest.mark.slow
@needs_data
def test_int8_input_is_raw_pixels_whatever_the_calibration_range(model, data, tmp_path):
    calibration = (data[0][:50].astype(np.float32) * 0.5 + 40).astype(np.uint8)  # pixels 40..167 only
    results = exporter.export_model(model, tmp_path, ["int8"], calibration, name="dim")
    assert results[0].input_quantization == (1.0, 0)


# -------------------------------------------------------------------------------------------- CLI


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("args, flag", [
    (["--arch=NSENet-27", "--formats=float32,int4"], "--formats"),
    (["--arch=no-such-net"], "--arch"),
    (["--formats=float32"], "--arch"),
    (["--arch=NSENet-27", "--weights=/nonexistent/m.weights.h5"], "--weights"),
    (["--arch=NSENet-27", "--num_calibration=0"], "--num_calibration"),
    (["--arch=NSENet-27", "--no_such_flag=1"], "--no_such_flag"),
    (["--arch=NSENet-27", "--num_verify=many"], "--num_verify"),
])
def test_cli_bad_flag_is_one_line_naming_it(tmp_path, args, flag):
    result = run_cli(f"--out_dir={tmp_path / 'out'}", *args)
    lines = [line for line in result.stderr.splitlines() if line.startswith("export.py: error:")]
    assert result.returncode == 2 and len(lines) == 1 and flag in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "out")


def test_cli_requires_out_dir():
    result = run_cli("--arch=NSENet-27")
    assert result.returncode == 2 and "export.py: error: --out_dir" in result.stderr


@pytest.mark.slow
@needs_data
def test_cli_exports_and_reports(tmp_path):
    spec_path = tmp_path / "tiny.json"
    tiny_spec().save(spec_path)
    out = tmp_path / "out"
    result = run_cli(f"--arch={spec_path}", f"--out_dir={out}", "--formats=float32,int8", "--num_calibration=50",
                     "--num_verify=100", "--latency", "--latency_runs=10")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "random initial weights" in result.stderr
    assert "Fashion-MNIST" in result.stdout and "int8" in result.stdout
    assert sorted(os.listdir(out)) == ["export_report.json", "tiny-net_float32.tflite", "tiny-net_int8.tflite"]
    report = json.loads((out / "export_report.json").read_text())
    assert report["random_init"] and [r["format"] for r in report["results"]] == ["float32", "int8"]
    for r in report["results"]:
        assert r["num_verified"] == 100 and r["latency"]["median_ms"] > 0 and r["top1"] is not None
    assert report["results"][1]["input_quantization"] == {"scale": 1.0, "zero_point": 0}


@pytest.mark.slow
def test_cli_random_images_for_other_input_shapes(tmp_path):
    space = SPACE.replace(input_size=32, input_channels=3, mean=(127.0,), std=(64.0,))
    spec_path = tmp_path / "rgb.json"
    tiny_spec(space, name="rgb").save(spec_path)
    out = tmp_path / "out"
    result = run_cli(f"--arch={spec_path}", f"--out_dir={out}", "--formats=onnx", "--num_verify=20")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "uniform random" in result.stdout and "n/a" in result.stdout
    report = json.loads((out / "export_report.json").read_text())
    (r,) = report["results"]
    assert r["top1"] is None and r["keras_top1"] is None and r["top1_agreement"] == 1.0
