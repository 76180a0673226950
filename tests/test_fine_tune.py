"""Issue 32: fine-tuning a zoo entry (``tools/train.py --init_from``): the run starts from every weight of the entry
(a fresh classifier for other classes, the stem adapted to RGB), records the entry and its weights' sha256, trains
the classifier alone for its frozen epochs, and resumes across the frozen/unfrozen boundary as if never stopped."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

import nse_tf
from nse_tf.data.arrays import ImageArrays
from nse_tf.data.idx import load_fashion_mnist
from nse_tf.nets.child import build_child
from nse_tf.nets.transfer import CLASSIFIER, retarget
from nse_tf.train import loop
from nse_tf.train.config import CONFIG_NAME, WEIGHTS_NAME, TrainConfig, TrainError
from nse_tf.train.fine_tune import FineTuning, phase_at, phases
from nse_tf.zoo import registry

ENTRY = "mobilenetv2-style-fmnist"
SHAPE = (32, 32, 3)
CLASSES = (0, 2, 7)  # T-shirt/top, Pullover, Sneaker


@pytest.fixture(scope="module")
def rgb_data() -> ImageArrays:
    """64 training and 30 test images of three Fashion-MNIST classes, as 32x32 RGB (padded, grey repeated)."""
    data = load_fashion_mnist()

    def take(x, y, count):
        keep = np.flatnonzero(np.isin(y, CLASSES))[:count]
        images = np.pad(x[keep], ((0, 0), (2, 2), (2, 2), (0, 0)))
        return np.repeat(images, 3, axis=-1), np.searchsorted(CLASSES, y[keep])

    x_train, y_train = take(data.x_train, data.y_train, 64)
    x_test, y_test = take(data.x_test, data.y_test, 30)
    return ImageArrays(x_train, y_train, x_test, y_test, "rgb-slice", ("t-shirt", "pullover", "sneaker"))


def source(freeze_epochs: int) -> tuple:
    """What ``tools/train.py --init_from`` builds: the entry's network for the data, and its FineTuning."""
    entry = registry.get_entry(ENTRY)
    spec = retarget(entry.network_spec(), len(CLASSES), SHAPE)
    sha = registry.sha256_file(entry.weights_file())
    return spec, FineTuning(ENTRY, sha, freeze_epochs, lambda: nse_tf.create_model(
        ENTRY, pretrained=True, num_classes=len(CLASSES), input_shape=SHAPE))


RECIPE = TrainConfig(epochs=1, batch_size=32, lr=0.01, warmup_epochs=0.0, ema_momentum=None, dropout=0.0)


def test_init_from_loads_the_entry_freezes_its_backbone_and_records_it(tmp_path, rgb_data):
    spec, fine_tuning = source(freeze_epochs=1)
    run = str(tmp_path / "run")
    loop.train(spec, RECIPE, run, rgb_data, dataset_name="rgb-slice", fine_tuning=fine_tuning, verbose=0)
    with open(os.path.join(run, CONFIG_NAME)) as f:
        saved = json.load(f)
    assert saved["init_from"] == {"entry": ENTRY, "weights_sha256": registry.get_entry(ENTRY).config.files[
        registry.WEIGHTS_NAME], "freeze_epochs": 1}
    trained = build_child(spec)
    trained.load_weights(os.path.join(run, WEIGHTS_NAME))
    start = fine_tuning.load()
    for layer in trained.layers:  # one frozen epoch: every weight is the entry's (BN statistics too) but the head's
        if layer.weights and layer.name != CLASSIFIER:
            for a, b in zip(layer.get_weights(), start.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(a, b, err_msg=layer.name)
    other = dataclasses.replace(fine_tuning, weights_sha256="0" * 64)
    with pytest.raises(TrainError, match="different init_from"):  # a rerun from other weights is refused
        loop.train(spec, RECIPE, run, rgb_data, dataset_name="rgb-slice", fine_tuning=other, verbose=0)
    with pytest.raises(TrainError, match="different init_from"):  # and so is one from scratch
        loop.train(spec, RECIPE, run, rgb_data, dataset_name="rgb-slice", verbose=0)


def test_a_run_killed_after_its_frozen_epochs_resumes_as_if_never_stopped(tmp_path, rgb_data, monkeypatch):
    spec, fine_tuning = source(freeze_epochs=1)
    recipe = dataclasses.replace(RECIPE, epochs=2)
    whole = str(tmp_path / "whole")
    loop.train(spec, recipe, whole, rgb_data, fine_tuning=fine_tuning, verbose=0)

    original = loop.epoch_checkpoint_callback

    def stop_after_first_epoch(run_dir, processes):
        callback = original(run_dir, processes)
        save = callback.on_epoch_end

        def on_epoch_end(epoch, logs=None):
            save(epoch, logs)
            raise KeyboardInterrupt  # killed once epoch 1 (the frozen one) is checkpointed

        callback.on_epoch_end = on_epoch_end
        return callback

    resumed = str(tmp_path / "resumed")
    monkeypatch.setattr(loop, "epoch_checkpoint_callback", stop_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        loop.train(spec, recipe, resumed, rgb_data, fine_tuning=fine_tuning, verbose=0)
    monkeypatch.setattr(loop, "epoch_checkpoint_callback", original)
    assert loop.checkpointed_epochs(resumed) == 1
    loop.train(spec, recipe, resumed, rgb_data, fine_tuning=fine_tuning, verbose=0)
    a, b = build_child(spec), build_child(spec)
    a.load_weights(os.path.join(whole, WEIGHTS_NAME))
    b.load_weights(os.path.join(resumed, WEIGHTS_NAME))
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(x, y, atol=2e-5)


def test_phases_split_the_schedule_at_the_frozen_epochs():
    config = TrainConfig(epochs=10, warmup_epochs=2.0)
    assert phases(config) == [phases(config)[0]] and phases(config)[0].recipe == config
    frozen, rest = phases(config, 3)
    assert (frozen.start, frozen.end, frozen.frozen, frozen.recipe.epochs, frozen.recipe.warmup_epochs) == \
        (0, 3, True, 3, 0.0)
    assert (rest.start, rest.end, rest.frozen, rest.recipe.epochs, rest.recipe.warmup_epochs) == (3, 10, False, 7, 2.0)
    assert [p.frozen for p in phases(config, 10)] == [True]
    plan = phases(config, 3)
    assert [phase_at(plan, done) for done in (0, 1, 3, 4, 10)] == [0, 0, 0, 1, 1]
    with pytest.raises(TrainError, match="freeze_epochs"):
        phases(config, 11)
    with pytest.raises(TrainError, match="freeze_epochs"):
        FineTuning(ENTRY, "0" * 64, -1)
