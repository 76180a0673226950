"""Tests for nse_tf.train and tools/train.py: augmentation, data order independent of resumes, a killed
run that resumes to the same weights, refusal to mix runs, flag errors, and the JAX backend."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from nse_tf.data.arrays import DatasetError, ImageArrays, load_arrays
from nse_tf.nets.batch_norm import batch_norm_layers
from nse_tf.nets.child import build_child
from nse_tf.space.architecture import Architecture, NetworkSpec
from nse_tf.train.augment import augment_batch, make_training_dataset
from nse_tf.train.bn_recalibration import recalibrate_batch_norm
from nse_tf.train.checkpoints import seed_generators
from nse_tf.train.config import CHECKPOINT_STATE_NAME, RESULT_NAME, WEIGHTS_NAME, TrainConfig, TrainError
from nse_tf.train.loop import train
from nse_tf.train.run_dir import read_history
from tests.helpers import TINY, TINY_SPACE, randomise_weights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = TrainConfig(epochs=2, batch_size=64, lr=0.05, warmup_epochs=0.5, ema_momentum=0.9, dropout=0.1,
                     erase_probability=0.3, seed=1)


@pytest.fixture(scope="module")
def small_data() -> ImageArrays:
    full = load_arrays("fashion_mnist")
    return ImageArrays(full.x_train[:256], full.y_train[:256], full.x_test[:128], full.y_test[:128], "fmnist-small")


def test_augment_keeps_shape_and_content():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(16, 28, 28, 1)).astype(np.uint8)
    out = augment_batch(images, TrainConfig(flip=True, crop_padding=2), np.random.default_rng(1))
    assert out.shape == images.shape and out.dtype == np.float32
    # A crop from a zero-padded image: every output is an input shifted by at most 2 pixels (maybe flipped).
    for original, cropped in zip(images.astype(np.float32), out):
        candidates = []
        for img in (original, original[:, ::-1]):
            padded = np.pad(img, ((2, 2), (2, 2), (0, 0)))
            candidates += [padded[dy:dy + 28, dx:dx + 28] for dy in range(5) for dx in range(5)]
        assert any(np.array_equal(cropped, c) for c in candidates)
    plain = augment_batch(images, TrainConfig(flip=False, crop_padding=0), np.random.default_rng(1))
    np.testing.assert_array_equal(plain, images.astype(np.float32))


def test_random_erasing_changes_a_rectangle_only():
    images = np.zeros((64, 28, 28, 1), np.uint8)
    out = augment_batch(images, TrainConfig(flip=False, crop_padding=0, erase_probability=1.0),
                        np.random.default_rng(2))
    for img in out[..., 0]:
        rows, cols = np.nonzero(img)
        assert len(rows) > 0
        assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)


def test_batches_depend_only_on_seed_epoch_and_index():
    x = (np.arange(40 * 28 * 28).reshape(40, 28, 28, 1) % 256).astype(np.uint8)
    y = np.arange(40) % 10
    config = TrainConfig(batch_size=8, seed=3)
    from_start = make_training_dataset(x, y, 10, config)
    from_epoch2 = make_training_dataset(x, y, 10, config, start_epoch=2)
    assert from_start.num_batches is None and from_start.steps_per_epoch() == 5
    for i in range(5):
        np.testing.assert_array_equal(from_start[10 + i][0], from_epoch2[i][0])
        np.testing.assert_array_equal(from_start[10 + i][1], from_epoch2[i][1])
    # Every epoch visits each image once, in a new order.
    labels0 = np.concatenate([from_start[i][1].argmax(1) for i in range(5)])
    labels1 = np.concatenate([from_start[5 + i][1].argmax(1) for i in range(5)])
    assert sorted(labels0) == sorted(labels1) == sorted(y) and not np.array_equal(labels0, labels1)


def test_config_errors_name_the_setting():
    for kwargs, name in [({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"), ({"label_smoothing": 1.5}, "label_smoothing"),
                         ({"optimizer": "rmsprop"}, "optimizer"), ({"ema_momentum": 1.0}, "ema_momentum")]:
        with pytest.raises(TrainError, match=name):
            TrainConfig(**kwargs)
    assert TrainConfig.from_dict(RECIPE.to_dict()) == RECIPE


def test_batch_norm_recalibration_averages_the_batches_and_leaves_the_rest(small_data):
    model = build_child(TINY)
    randomise_weights(model, seed=3)
    images = small_data.x_train[:128].astype(np.float32)
    recalibrate_batch_norm(model, images[:64], 64)
    # One batch: the moving statistics are that batch's, so inference equals training mode on it.
    inference = keras.ops.convert_to_numpy(model(images[:64], training=False))
    np.testing.assert_allclose(inference, keras.ops.convert_to_numpy(model(images[:64], training=True)), atol=1e-4)
    # Two batches: the stem BN's moving mean is the mean of the two batch means of its input.
    recalibrate_batch_norm(model, images, 64)
    stem = keras.Model(model.inputs, model.get_layer("stem_conv").output)
    batch_means = [keras.ops.convert_to_numpy(stem(images[i:i + 64])).mean(axis=(0, 1, 2)) for i in (0, 64)]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.get_layer("stem_bn").moving_mean),
                               (batch_means[0] + batch_means[1]) / 2, rtol=1e-4, atol=1e-4)
    assert {layer.momentum for layer in batch_norm_layers(model)} == {0.9}
    # Dropout's RNG is where it was: recalibrating does not change the rest of a run.
    with_dropout = build_child(TINY, dropout=0.5)
    before = [np.asarray(g.state.value).tolist() for g in seed_generators(with_dropout)]
    recalibrate_batch_norm(with_dropout, images, 64)
    after = [np.asarray(g.state.value).tolist() for g in seed_generators(with_dropout)]
    assert before and before == after


def weights_of(path: str) -> list[np.ndarray]:
    model = build_child(TINY)
    model.load_weights(path)
    return model.get_weights()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, small_data):
    run_dir = str(tmp_path_factory.mktemp("full"))
    result = train(TINY, RECIPE, run_dir, small_data, verbose=0)
    return run_dir, result


def test_training_writes_weights_result_and_history(uninterrupted, small_data):
    run_dir, result = uninterrupted
    assert os.path.exists(os.path.join(run_dir, WEIGHTS_NAME))
    assert not [n for n in os.listdir(run_dir) if "checkpoint" in n]  # deleted once finished
    with open(os.path.join(run_dir, RESULT_NAME)) as f:
        saved = json.load(f)
    assert saved["top1"] == result.top1 and 0.0 <= result.top1 <= 1.0 and result.top5 >= result.top1
    assert [row["epoch"] for row in read_history(run_dir)] == ["0", "1"]
    [process] = saved["processes"]  # one process ran both epochs, and says where
    assert process["backend"] == "tensorflow" and process["device"] == f"cpu: {os.cpu_count()} cores"
    assert process["epochs"] == [1, 2] and process["seconds"] > 0
    # The saved weights (EMA, no optimizer slots) reproduce the reported accuracy.
    from nse_tf.nets.inference import evaluate_arrays

    model = build_child(TINY)
    model.load_weights(os.path.join(run_dir, WEIGHTS_NAME))
    assert evaluate_arrays(model, small_data.x_test, small_data.y_test)["top1"] == result.top1
    # The last validation (EMA weights, BN re-estimated for them) is what the saved model scores.
    assert abs(float(read_history(run_dir)[-1]["val_top1"]) - result.top1) <= 1 / 128


def test_resume_after_an_epoch_matches_uninterrupted(tmp_path, uninterrupted, small_data):
    full_dir, full_result = uninterrupted
    run_dir = str(tmp_path / "resumed")
    # Stop after the first epoch: train a one-epoch prefix by killing fit through a callback.

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    original_fit = keras.Model.fit

    def fit_then_stop(self, *args, callbacks=(), **kwargs):
        return original_fit(self, *args, callbacks=list(callbacks) + [Stop()], **kwargs)

    keras.Model.fit = fit_then_stop
    try:
        with pytest.raises(KeyboardInterrupt):
            train(TINY, RECIPE, run_dir, small_data, verbose=0)
    finally:
        keras.Model.fit = original_fit
    with open(os.path.join(run_dir, CHECKPOINT_STATE_NAME)) as f:
        state = json.load(f)
    assert state["epochs_done"] == 1 and [p["epochs"] for p in state["processes"]] == [[1, 1]]
    assert sorted(n for n in os.listdir(run_dir) if "checkpoint" in n) == ["checkpoint-1.weights.h5",
                                                                          CHECKPOINT_STATE_NAME]
    corrupt = str(tmp_path / "corrupt")
    shutil.copytree(run_dir, corrupt)
    with open(os.path.join(corrupt, CHECKPOINT_STATE_NAME), "w") as f:
        f.write('{"epochs_do')
    with pytest.raises(TrainError, match="checkpoint.json: unreadable checkpoint state"):
        train(TINY, RECIPE, corrupt, small_data, verbose=0)
    resumed = train(TINY, RECIPE, run_dir, small_data, verbose=0)
    assert [p["epochs"] for p in resumed.processes] == [[1, 1], [2, 2]]  # each process's stretch of epochs
    for a, b in zip(weights_of(os.path.join(full_dir, WEIGHTS_NAME)), weights_of(os.path.join(run_dir, WEIGHTS_NAME))):
        np.testing.assert_allclose(a, b, atol=2e-5)
    assert abs(resumed.top1 - full_result.top1) <= 1 / 128


@pytest.mark.slow  # end to end; CI's 15 minutes (run with -m slow)
def test_a_full_disk_during_a_checkpoint_write_is_a_clear_error_and_loses_nothing(tmp_path, uninterrupted,
                                                                                  small_data, monkeypatch):
    import errno

    full_dir, full_result = uninterrupted
    run_dir = str(tmp_path / "full-disk")
    original_save = keras.Model.save_weights

    def save_until_the_disk_fills(self, filepath, *args, **kwargs):
        if "checkpoint-2" in str(filepath):
            with open(filepath, "wb") as f:
                f.write(b"\x89HDF\r\n")  # a partial file, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return original_save(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", save_until_the_disk_fills)
    with pytest.raises(TrainError, match=r"cannot write the checkpoint of epoch 2 \(No space left on device\); "
                                         r"epoch 1's checkpoint is intact: free the space and rerun to resume"):
        train(TINY, RECIPE, run_dir, small_data, verbose=0)
    monkeypatch.setattr(keras.Model, "save_weights", original_save)
    assert sorted(os.listdir(run_dir)) == sorted(["checkpoint-1.weights.h5", CHECKPOINT_STATE_NAME, "history.csv",
                                                  "network.json", "train_config.json", "tb"])
    with open(os.path.join(run_dir, CHECKPOINT_STATE_NAME)) as f:
        assert json.load(f)["epochs_done"] == 1
    resumed = train(TINY, RECIPE, run_dir, small_data, verbose=0)  # space freed: the rerun resumes
    assert [p["epochs"] for p in resumed.processes][-1] == [2, 2]
    for a, b in zip(weights_of(os.path.join(full_dir, WEIGHTS_NAME)), weights_of(os.path.join(run_dir, WEIGHTS_NAME))):
        np.testing.assert_allclose(a, b, atol=2e-5)


@pytest.mark.slow  # end to end; CI's 15 minutes (run with -m slow)
def test_train_killed_while_writing_a_checkpoint_resumes_to_the_same_weights(tmp_path, uninterrupted, small_data):
    """SIGKILL at the moment epoch 2's checkpoint state is renamed into place (its weights file already is):
    the rerun resumes from epoch 1 and ends with the uninterrupted run's weights."""
    full_dir, _ = uninterrupted
    data_path = tmp_path / "data.npz"
    np.savez(data_path, x_train=small_data.x_train, y_train=small_data.y_train, x_test=small_data.x_test,
             y_test=small_data.y_test)
    TINY.save(tmp_path / "tiny.json")
    r = RECIPE
    args = [f"--arch={tmp_path / 'tiny.json'}", f"--run_dir={tmp_path / 'run'}", f"--dataset=npz:{data_path}",
            f"--epochs={r.epochs}", f"--batch_size={r.batch_size}", f"--lr={r.lr}", f"--warmup_epochs={r.warmup_epochs}",
            f"--ema_momentum={r.ema_momentum}", f"--dropout={r.dropout}", f"--erase_probability={r.erase_probability}",
            f"--seed={r.seed}", "--verbose=0"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    killed = subprocess.run([sys.executable, os.path.join(REPO, "tests", "kill_at_replace.py"), CHECKPOINT_STATE_NAME,
                             "2", os.path.join(REPO, "tools", "train.py"), *args], capture_output=True, text=True,
                            env=env, timeout=600, cwd=REPO)
    assert killed.returncode == -9, killed.stderr[-3000:]
    with open(tmp_path / "run" / CHECKPOINT_STATE_NAME) as f:
        assert json.load(f)["epochs_done"] == 1
    result = run_cli(*args, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming" in result.stdout + result.stderr
    for a, b in zip(weights_of(os.path.join(full_dir, WEIGHTS_NAME)), weights_of(str(tmp_path / "run" / WEIGHTS_NAME))):
        np.testing.assert_allclose(a, b, atol=2e-5)


def test_finished_run_is_not_retrained_and_runs_do_not_mix(uninterrupted, small_data):
    run_dir, result = uninterrupted
    mtime = os.path.getmtime(os.path.join(run_dir, WEIGHTS_NAME))
    again = train(TINY, RECIPE, run_dir, small_data, verbose=0)
    assert again.top1 == result.top1 and os.path.getmtime(os.path.join(run_dir, WEIGHTS_NAME)) == mtime
    with pytest.raises(TrainError, match="different train .*lr"):
        train(TINY, dataclasses.replace(RECIPE, lr=0.2), run_dir, small_data, verbose=0)
    other = NetworkSpec(TINY_SPACE, Architecture.from_cells([[1]] * 6, TINY_SPACE.get_pool()), "tiny")
    with pytest.raises(TrainError, match="different network"):
        train(other, RECIPE, run_dir, small_data, verbose=0)


def test_shape_and_class_mismatch_are_refused(tmp_path, small_data):
    with pytest.raises(TrainError, match="classes"):
        train(TINY.replace_space(num_classes=5), RECIPE, str(tmp_path / "a"), small_data, verbose=0)
    with pytest.raises(TrainError, match="32x32x1"):
        train(TINY.replace_space(input_size=32), RECIPE, str(tmp_path / "b"), small_data, verbose=0)


def run_cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", "train.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("args, flag", [
    (["--run_dir=/tmp/x"], "--arch"),
    (["--arch=NSENet-27", "--run_dir=/tmp/x", "--lr=-1"], "--lr"),
    (["--arch=no-such-net", "--run_dir=/tmp/x"], "--arch"),
    (["--arch=NSENet-27", "--run_dir=/tmp/x", "--dataset=cifar"], "--dataset"),
    (["--arch=NSENet-27", "--run_dir=/tmp/x", "--threads=-1"], "--threads"),
])
def test_cli_flag_errors(args, flag):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("train.py: error:")]
    assert len(lines) == 1 and lines[0].startswith(f"train.py: error: {flag}:"), result.stderr[-2000:]


def test_cpu_threads_size_tensorflows_pools():
    """In a fresh process (TensorFlow fixes its pools when it runs its first op)."""
    code = ("import tensorflow as tf\n"
            "from nse_tf.train.device import set_cpu_threads\n"
            "set_cpu_threads(1)\n"
            "tf.constant(1.0) + 1.0\n"
            "print(tf.config.threading.get_intra_op_parallelism_threads(),"
            " tf.config.threading.get_inter_op_parallelism_threads())\n")
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["1", "1"]


@pytest.mark.slow  # end to end; CI's 15 minutes (run with -m slow)
def test_jax_backend_trains_and_its_weights_load_under_tensorflow(tmp_path, small_data):
    """``KERAS_BACKEND=jax tools/train.py`` runs without TensorFlow code; TF reproduces its accuracy."""
    data_path = tmp_path / "data.npz"
    np.savez(data_path, x_train=small_data.x_train, y_train=small_data.y_train, x_test=small_data.x_test,
             y_test=small_data.y_test)
    TINY.save(tmp_path / "tiny.json")
    # As on the GPU machine: TensorFlow cannot be imported at all.
    blocked = tmp_path / "blocked" / "tensorflow"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('TensorFlow is not installed here')\n")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(tmp_path / "blocked") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               XLA_FLAGS="--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")
    result = run_cli(f"--arch={tmp_path / 'tiny.json'}", f"--run_dir={tmp_path / 'run'}", f"--dataset=npz:{data_path}",
                     "--epochs=1", "--warmup_epochs=0.5", "--batch_size=64", "--verbose=0", env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "run" / RESULT_NAME) as f:
        saved = json.load(f)
    assert saved["backend"] == "jax"
    from nse_tf.nets.inference import evaluate_arrays

    model = build_child(TINY)
    model.load_weights(str(tmp_path / "run" / WEIGHTS_NAME))
    assert abs(evaluate_arrays(model, small_data.x_test, small_data.y_test)["top1"] - saved["top1"]) <= 1 / 128


def test_heldout_arrays_carve_the_search_split_and_replace_the_test_split():
    from nse_tf.data.arrays import heldout_arrays
    from nse_tf.data.idx import heldout_split

    rng = np.random.default_rng(0)
    data = ImageArrays(rng.integers(0, 256, (50, 4, 4, 1), dtype=np.uint8), np.arange(50) % 10,
                       np.zeros((5, 4, 4, 1), np.uint8), np.zeros(5, int), "toy")
    split = heldout_arrays(data, 12, 1000)
    train_idx, heldout_idx = heldout_split(50, 12, 1000)  # what a search's round 1 (seed 0 + 1000) holds out
    np.testing.assert_array_equal(split.x_test, data.x_train[heldout_idx])
    np.testing.assert_array_equal(split.y_train, data.y_train[train_idx])
    assert len(split.x_train) == 38 and split.name == "toy:heldout=12,seed=1000"
    with pytest.raises(DatasetError, match="heldout_examples"):
        heldout_arrays(data, 50, 0)
    with pytest.raises(DatasetError, match="heldout_examples"):
        heldout_arrays(data, 0, 0)
