"""tfmot magnitude pruning (issue 18): the wrapped layers, the ramp to the target sparsity during the resumable
fine-tuning, the stripped network's .tflite, and the tool's one-line errors; on the tiny network of test_qat."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nse_tf.train import pruning, qat
from nse_tf.train.config import TrainConfig, TrainError
from tests.test_qat import ROOT, SPEC, small_data, trained  # noqa: F401  (fixtures)


def test_only_convolutions_and_the_classifier_are_wrapped_for_pruning(trained):  # noqa: F811
    import tf_keras

    model = pruning.prunable(qat.tf_keras_copy(SPEC, trained), pruning.PruneConfig(epochs=1), steps_per_epoch=10)
    wrapped = [layer.layer for layer in model.layers if type(layer).__name__ == "PruneLowMagnitude"]
    kinds = {type(layer) for layer in wrapped}
    assert kinds == {tf_keras.layers.Conv2D, tf_keras.layers.Dense}
    assert sum(isinstance(layer, tf_keras.layers.DepthwiseConv2D) for layer in model.layers) > 0  # left as they are
    assert {layer.name for layer in wrapped} == {layer.name for layer in pruning.strip(model).layers
                                                 if type(layer) in pruning.pruned_kinds()}


@pytest.mark.slow
def test_pruning_reaches_its_sparsity_on_convs_and_classifier_only_and_converts(trained, small_data, tmp_path):  # noqa: F811
    import tf_keras

    from nse_tf.export.runtimes import tflite_logits

    recipe = TrainConfig(epochs=1, warmup_epochs=0.0)
    config = pruning.PruneConfig(epochs=2, batch_size=32, lr=0.01, num_calibration=32, sparsity=0.6)
    steps = len(small_data.x_train) // config.batch_size
    dense = qat.tf_keras_copy(SPEC, trained)
    depthwise_before = {layer.name: np.asarray(layer.depthwise_kernel).copy() for layer in dense.layers
                        if isinstance(layer, tf_keras.layers.DepthwiseConv2D)}
    assert pruning.kernel_sparsity(dense) < 0.05  # trained weights, before the fine-tuning
    model = pruning.prunable(dense, config, steps)
    wrapped = [layer for layer in model.layers if type(layer).__name__ == "PruneLowMagnitude"]
    assert wrapped and all(type(layer.layer) in pruning.pruned_kinds() for layer in wrapped)
    assert depthwise_before and not any(isinstance(layer.layer, tf_keras.layers.DepthwiseConv2D) for layer in wrapped)
    lines = []
    qat.fine_tune(model, small_data, recipe, config, str(tmp_path), log=lines.append,
                  callbacks=pruning.step_callbacks(), label="pruning")
    assert [line.split(":")[0] for line in lines] == ["pruning epoch 1/2", "pruning epoch 2/2"]
    stripped = pruning.strip(model)
    assert not any(type(layer).__name__ == "PruneLowMagnitude" for layer in stripped.layers)
    # the pruned kernels at the target (up to rounding of small kernels); the depthwise ones untouched
    assert abs(pruning.kernel_sparsity(stripped) - config.sparsity) < 0.03
    for layer in stripped.layers:
        if layer.name in depthwise_before:
            np.testing.assert_allclose(np.asarray(layer.depthwise_kernel) == 0, depthwise_before[layer.name] == 0)
    assert json.loads((tmp_path / qat.STATE_NAME).read_text())["epochs_done"] == 2
    x = small_data.x_test[:16].astype(np.float32)
    path = tmp_path / "pruned_float32.tflite"
    import tensorflow as tf

    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(stripped).convert())
    np.testing.assert_allclose(tflite_logits(str(path), x), stripped(x, training=False).numpy(), atol=1e-3)


def test_pruning_settings_are_one_line_errors(tmp_path):
    with pytest.raises(TrainError, match=r"sparsity must be in \(0, 1\)"):
        pruning.PruneConfig(sparsity=1.0)
    tool = [sys.executable, os.path.join(ROOT, "tools", "prune.py")]
    cases = [(["--model=NSENet-27"], "prune.py: error: --model: zoo entry NSENet-27 has no trained weights"),
             (["--model=mobilenetv2-style-fmnist", "--sparsity=1.5"],
              "prune.py: error: --sparsity: sparsity must be in (0, 1), got 1.5"),
             (["--model=mobilenetv2-style-fmnist", "--epochs=0"],
              "prune.py: error: --epochs: epochs must be >= 1, got 0")]
    for args, line in cases:
        out = subprocess.run(tool + args + [f"--run_dir={tmp_path}"], capture_output=True, text=True)
        assert out.returncode == 2 and out.stderr.strip().splitlines()[-1] == line, out.stderr[-800:]
