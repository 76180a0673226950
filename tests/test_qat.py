"""Quantization-aware training (issue 18): every operation kind of the pools through the tf_keras build, tfmot's
quantize_apply, a resumable fine-tuning and the full-int8 conversion, on a tiny network."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nse_tf.data.arrays import ImageArrays, load_arrays
from nse_tf.nets.child import build_child
from nse_tf.space.architecture import Architecture, NetworkSpec
from nse_tf.space.macro import get_space
from nse_tf.train import qat
from nse_tf.train.config import TrainConfig, TrainError
from tests.helpers import randomise_weights

# mb with groups (1x1 convs of 2 groups), mb dilated in stride-2 R cells, rec, normal and dual; an N cell of three;
# large kernels, which the TFLite files run tiled: k7 at stride 1, k11 at stride 2 on 28x28 and on 4x4 (where the
# tiles that read only padding are left out)
POOL = ("mb_k3_t3", "mb_k3_t1_d2", "mb_k3_t3_g22", "rec_k5_t1", "normal_k3_t1", "dual_k3_t1", "mb_k7_t3", "mb_k11_t1")
SPACE = get_space("small", pool=POOL, counts=(1, 0, 0, 0, 0, 0), channels=(8, 16, 16, 16, 16, 16, 16),
                  head_channels=32)
SPEC = NetworkSpec(SPACE, Architecture.from_cells([[0, 3, 6], [1, 2, 7], [4, 5], [1], [2], [7], [3]],
                                                  SPACE.get_pool()), "qat-probe")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained():
    model = build_child(SPEC)
    randomise_weights(model, 3)
    return model


@pytest.fixture(scope="module")
def small_data():
    full = load_arrays("fashion_mnist")
    return ImageArrays(full.x_train[:128], full.y_train[:128], full.x_test[:100], full.y_test[:100], "fmnist-small")


def test_the_tf_keras_build_computes_what_the_keras3_network_does(trained, small_data):
    """Strided dilated depthwise convs included (a dilated stride-1 conv, BN and ReLU, then Subsample), and large
    kernels as tiles with their BN folded in, or, on request, plain."""
    copy = qat.tf_keras_copy(SPEC, trained)
    plain = qat.tf_keras_copy(SPEC, trained, tile_large_depthwise=False)
    x = small_data.x_test[:8].astype(np.float32)
    expected = np.asarray(trained(x, training=False))
    np.testing.assert_allclose(copy(x, training=False).numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(plain(x, training=False).numpy(), expected, atol=1e-4)
    assert any(type(layer).__name__ == "Subsample" for layer in copy.layers)
    names, plain_names = {layer.name for layer in copy.layers}, {layer.name for layer in plain.layers}
    assert "cell00_N_mb_k7_t3_dw_bn" in plain_names and "cell00_N_mb_k7_t3_dw_bn" not in names
    assert {f"cell00_N_mb_k7_t3_dw_conv_tile{i}" for i in range(3)} | {"cell00_N_mb_k7_t3_dw_conv_sum"} <= names
    assert all(f"cell01_R_mb_k11_t1_dw_conv_tile{i}" in names for i in range(6))
    # 4x4 under 11x11 at stride 2: the outer strips of two rows (tiles 0, 4 and 5) read only padding
    assert [i for i in range(6) if f"cell05_R_mb_k11_t1_dw_conv_tile{i}" in names] == [1, 2, 3]
    assert max(np.prod(layer.kernel_size) for layer in copy.layers if type(layer).__name__ == "DepthwiseConv2D") <= 25


def test_qat_fine_tunes_resumes_and_converts_to_an_int8_file_that_matches_it(trained, small_data, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from nse_tf.export.runtimes import tflite_input_quantization, tflite_logits

    recipe = TrainConfig(epochs=1, warmup_epochs=0.0, flip=True, crop_padding=2)
    config = qat.QatConfig(epochs=2, batch_size=64, lr=0.01, num_calibration=32)
    model = qat.quantize(qat.tf_keras_copy(SPEC, trained))
    lines = []
    # one epoch, then a "restart": a fresh quantized model finds the finished run and restores its checkpoint
    one = qat.QatConfig(epochs=1, batch_size=64, lr=0.01, num_calibration=32)
    qat.fine_tune(model, small_data, recipe, one, str(tmp_path / "one"), log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("QAT epoch 1/1")
    with pytest.raises(TrainError, match="other settings"):
        qat.fine_tune(model, small_data, recipe, config, str(tmp_path / "one"))
    state = json.loads((tmp_path / "one" / qat.STATE_NAME).read_text())
    assert state["epochs_done"] == 1
    lines.clear()
    again = qat.quantize(qat.tf_keras_copy(SPEC, trained))
    qat.fine_tune(again, small_data, recipe, one, str(tmp_path / "one"), log=lines.append)
    assert lines == []  # finished: nothing retrained, the checkpoint restored
    x = small_data.x_test.astype(np.float32)
    np.testing.assert_allclose(again(x[:16], training=False).numpy(), model(x[:16], training=False).numpy(), atol=1e-5)

    calibration = small_data.x_train[:32]
    path = tmp_path / "int8_qat.tflite"
    path.write_bytes(qat.convert(model, calibration))
    assert tflite_input_quantization(str(path)) == (1.0, 0)  # raw uint8 pixels in
    interpreter = Interpreter(model_path=str(path))
    shapes = {t["index"]: tuple(t["shape"]) for t in interpreter.get_tensor_details()}
    depthwise_taps = [int(np.prod(shapes[op["inputs"][1]][1:3])) for op in interpreter._get_ops_details()
                      if op["op_name"] == "DEPTHWISE_CONV_2D"]
    # 5 small depthwise convs, then the tiles (XNNPACK runs them fast): k7 in 3, k11 in 6 on 28x28 and 3 on 4x4
    assert max(depthwise_taps) <= 25 and len(depthwise_taps) == 5 + 3 + 6 + 3
    keras_logits, lite_logits = model(x, training=False).numpy(), tflite_logits(str(path), x)
    # the int8 file computes what the QAT model computes, up to its quantization steps (a network this barely
    # trained has near-tied classes, so argmax agreement is a loose check and the logits the tight one)
    spread = np.ptp(keras_logits)
    assert np.abs(keras_logits - lite_logits).mean() < 0.05 * spread
    assert np.abs(keras_logits - lite_logits).max() < 0.2 * spread
    assert np.mean(keras_logits.argmax(1) == lite_logits.argmax(1)) >= 0.75


def test_qat_settings_and_entries_it_cannot_take_are_one_line_errors(tmp_path):
    with pytest.raises(TrainError, match="epochs must be >= 1"):
        qat.QatConfig(epochs=0)
    with pytest.raises(TrainError, match="lr must be positive"):
        qat.QatConfig(lr=0.0)
    tool = [sys.executable, os.path.join(ROOT, "tools", "qat.py")]
    cases = [(["--model=NSENet-27"], "qat.py: error: --model: zoo entry NSENet-27 has no trained weights"),
             (["--model=mobilenetv2-style-fmnist.e60_flip"],
              "qat.py: error: --model: mobilenetv2-style-fmnist.e60_flip is a flip-averaged configuration of "
              "mobilenetv2-style-fmnist.e60; fine-tune the single-pass entry"),
             (["--model=mobilenetv2-style-fmnist", "--epochs=0"], "qat.py: error: --epochs: epochs must be >= 1, got 0")]
    for args, line in cases:
        out = subprocess.run(tool + args + [f"--run_dir={tmp_path}"], capture_output=True, text=True)
        assert out.returncode == 2 and out.stderr.strip().splitlines()[-1] == line, out.stderr[-800:]
