"""Test-time flip averaging (nse_tf.nets.flip_average): the averaged logits, the MACs of two passes, and TFLite
files that keep one graph of the network."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from nse_tf import count_macs, count_params
from nse_tf.nets.child import build_child
from nse_tf.nets.flip_average import flip_average
from tests.helpers import TINY, randomise_weights


@pytest.fixture(scope="module")
def network():
    model = build_child(TINY)
    randomise_weights(model, seed=3)
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (5, 28, 28, 1)).astype(np.float32)


def test_logits_are_the_mean_of_the_image_and_its_mirror(network, images):
    wrapped = flip_average(network)
    expected = (np.asarray(network(images)) + np.asarray(network(images[:, :, ::-1]))) / 2
    for batch in (images[:1], images):  # one image (a phone's batch) and several
        np.testing.assert_allclose(np.asarray(wrapped(batch)), expected[:len(batch)], atol=1e-5)
    assert not np.allclose(expected, np.asarray(network(images)), atol=1e-3)  # the mirror does change them


def test_macs_are_two_passes_and_the_weights_are_shared(network):
    wrapped = flip_average(network)
    assert count_macs(wrapped) == 2 * count_macs(network) > 0
    assert count_params(wrapped) == count_params(network)


def test_a_shared_layer_counts_once_per_call():
    inputs = keras.Input((4, 4, 3))
    dense = keras.layers.Dense(5)
    model = keras.Model(inputs, keras.layers.Add()([dense(inputs), dense(inputs)]))
    assert count_macs(model) == 2 * (4 * 4 * 3 * 5)


def test_tflite_files_match_and_keep_one_network(network, images, tmp_path):
    """float32 equals Keras; int8 keeps uint8 input at scale 1 and calibrates one copy of the network (a
    second call would get biases and activation scales of its own, and cost top-1)."""
    from ai_edge_litert.interpreter import Interpreter

    from nse_tf.export.exporter import export_model

    wrapped = flip_average(network)
    results = export_model(wrapped, tmp_path, formats=("float32", "int8"), representative_images=images,
                           verify_images=images)
    by_format = {r.format: r for r in results}
    assert by_format["float32"].max_abs_diff < 1e-4
    assert by_format["int8"].input_quantization == (1.0, 0)  # raw pixels feed it as they are
    for result in results:
        interpreter = Interpreter(model_path=result.path)
        ops = [op["op_name"] for op in interpreter._get_ops_details()]
        convs = sum(op in ("CONV_2D", "DEPTHWISE_CONV_2D") for op in ops)
        kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
        assert convs == sum(isinstance(layer, kinds) for layer in network.layers), result.format


@pytest.mark.slow  # end to end; CI's 15 minutes (run with -m slow)
def test_export_cli_exports_a_flip_averaged_zoo_entry_as_the_two_pass_model(tmp_path):
    """tools/export.py --arch=<entry made with --flip_average> exports what the entry's files hold."""
    import json
    import os
    import subprocess
    import sys

    from nse_tf.zoo import registry as zoo

    flipped = [name for name in zoo.list_models() if zoo.get_entry(name).flip_average]
    if not flipped:
        pytest.skip("no flip-averaged zoo entry")
    cli = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "export.py")
    result = subprocess.run([sys.executable, cli, f"--arch={flipped[0]}", f"--out_dir={tmp_path}", "--formats=float32",
                             "--num_verify=200"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "export_report.json").read_text())
    (exported,) = report["results"]
    assert report["flip_average"] and exported["path"].endswith("_flip_average_float32.tflite")
    assert exported["max_abs_diff"] < 1e-4 and exported["top1"] == exported["keras_top1"]
    # the entry's own float32 file gives the same logits on the same images
    from nse_tf.data.arrays import load_arrays
    from nse_tf.export.runtimes import tflite_logits

    images = load_arrays("fashion_mnist").x_test[:20]
    np.testing.assert_allclose(tflite_logits(exported["path"], images),
                               tflite_logits(zoo.tflite_path(flipped[0], "float32"), images), atol=1e-4)
