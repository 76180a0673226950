"""Issue 32: transfer from the zoo as timm and Keras Applications users expect (``nse_tf.nets.transfer``): another
class count keeps every weight but a fresh classifier, another input size or channel count keeps the rest with
the stem adapted, ``include_top=False`` gives the backbone; arguments are checked by type, naming themselves."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nse_tf
from nse_tf.data.arrays import load_arrays
from nse_tf.nets.child import build_child
from nse_tf.nets.flip_average import MeanOfHalves
from nse_tf.nets.transfer import adapt_input_kernel, adapt_statistic, retarget, transfer_weights
from nse_tf.space.published import published_spec
from nse_tf.zoo import registry
from tests.helpers import TINY, randomise_weights

BASELINE = "mobilenetv2-style-fmnist"


@pytest.fixture(scope="module")
def trained():
    return nse_tf.create_model(BASELINE, pretrained=True)


@pytest.fixture(scope="module")
def images():
    return load_arrays("fashion_mnist").x_test[:4].astype(np.float32)


def weights_by_layer(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def test_other_classes_keep_every_weight_but_a_fresh_classifier(trained):
    model = nse_tf.create_model(BASELINE, pretrained=True, num_classes=3)
    assert model.output_shape == (None, 3)
    old, new = weights_by_layer(trained), weights_by_layer(model)
    assert set(old) == set(new)
    for name in old:
        if name != "classifier":
            for a, b in zip(old[name], new[name]):
                np.testing.assert_array_equal(a, b, err_msg=name)
    kernel, bias = new["classifier"]
    fan_in, fan_out = kernel.shape
    assert np.all(bias == 0) and 0 < np.abs(kernel).max() <= math.sqrt(6 / (fan_in + fan_out))  # Glorot, as built


def test_three_channels_repeat_the_stem_so_grey_rgb_gives_the_trained_logits(trained, images):
    rgb = nse_tf.create_model(BASELINE, pretrained=True, input_shape=(28, 28, 3))
    stem = rgb.get_layer("stem_conv").get_weights()[0]
    np.testing.assert_allclose(stem, np.repeat(trained.get_layer("stem_conv").get_weights()[0], 3, axis=2) / 3,
                               rtol=1e-6)
    np.testing.assert_allclose(np.asarray(rgb(np.repeat(images, 3, axis=-1))), np.asarray(trained(images)),
                               rtol=1e-4, atol=1e-4)
    bigger = nse_tf.create_model(BASELINE, pretrained=True, num_classes=5, input_shape=(32, 32, 3))
    assert bigger.input_shape == (None, 32, 32, 3) and bigger.output_shape == (None, 5)
    np.testing.assert_array_equal(bigger.get_layer("head_conv").get_weights()[0],
                                  trained.get_layer("head_conv").get_weights()[0])


def test_one_channel_sums_the_stem_and_averages_mean_and_std():
    rgb = TINY.replace_space(input_channels=3, mean=(100.0, 100.0, 100.0), std=(50.0, 50.0, 50.0))
    source = build_child(rgb)
    randomise_weights(source, seed=2)
    grey = retarget(rgb, input_shape=(28, 28, 1))
    assert grey.space.mean == (100.0,) and grey.space.std == (50.0,)
    target = build_child(grey)
    assert transfer_weights(source, target) == []
    np.testing.assert_allclose(target.get_layer("stem_conv").get_weights()[0],
                               source.get_layer("stem_conv").get_weights()[0].sum(axis=2, keepdims=True), rtol=1e-6)
    x = np.random.default_rng(0).uniform(0, 255, (2, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(target(x)), np.asarray(source(np.repeat(x, 3, axis=-1))),
                               rtol=1e-4, atol=1e-4)
    imagenet = retarget(published_spec("NSENet-27"), input_shape=(32, 32, 1)).space  # 3 -> 1: the averages
    assert imagenet.mean == pytest.approx((sum((123.675, 116.28, 103.53)) / 3,))
    assert imagenet.std == pytest.approx((sum((58.395, 57.12, 57.375)) / 3,))


def test_kernel_and_statistics_adapt_as_timm():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 3, 4))
    np.testing.assert_allclose(adapt_input_kernel(kernel, 1), kernel.sum(axis=2, keepdims=True))
    np.testing.assert_allclose(adapt_input_kernel(kernel, 4), np.concatenate([kernel, kernel[:, :, :1]], 2) * 3 / 4)
    np.testing.assert_allclose(adapt_input_kernel(kernel[:, :, :1], 3), np.repeat(kernel[:, :, :1], 3, 2) / 3)
    assert adapt_statistic((72.9,), 3) == (72.9,)  # one value: the layer repeats it for every channel
    assert adapt_statistic((1.0, 2.0, 3.0), 1) == (2.0,) and adapt_statistic((1.0, 2.0, 3.0), 4) == (1, 2, 3, 1)


def test_include_top_false_gives_the_backbone_as_keras_applications(trained, images):
    maps = nse_tf.create_model(BASELINE, pretrained=True, include_top=False)
    avg = nse_tf.create_model(BASELINE, pretrained=True, include_top=False, pooling="avg")
    top = nse_tf.create_model(BASELINE, pretrained=True, include_top=False, pooling="max")
    head = trained.get_layer("head_conv").filters
    assert maps.output_shape[-1] == avg.output_shape[-1] == top.output_shape[-1] == head and len(maps.output_shape) == 4
    assert not any(layer.name == "classifier" for layer in avg.layers)
    features = np.asarray(maps(images))
    np.testing.assert_allclose(np.asarray(avg(images)), features.mean(axis=(1, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(top(images)), features.max(axis=(1, 2)), rtol=1e-5, atol=1e-5)
    logits = trained.get_layer("classifier")(avg(images))
    np.testing.assert_allclose(np.asarray(logits), np.asarray(trained(images)), rtol=1e-4, atol=1e-4)


def test_a_flip_averaged_entry_transfers_its_network_under_the_averaging():
    model = nse_tf.create_model("mobilenetv2-style-fmnist.e60_flip", pretrained=True, num_classes=4)
    assert model.output_shape == (None, 4) and isinstance(model.layers[-1], MeanOfHalves)
    backbone = nse_tf.create_model("mobilenetv2-style-fmnist.e60_flip", pretrained=True, include_top=False)
    assert not any(isinstance(layer, MeanOfHalves) for layer in backbone.layers)


def test_zoo_load_keeps_keras_applications_strictness_and_points_to_create_model():
    with pytest.raises(registry.ZooError, match=r"use weights=None .*create_model\('mobilenetv2-style-fmnist', "
                                                r"pretrained=True, num_classes=3\)"):
        registry.load(BASELINE, num_classes=3)
    with pytest.raises(registry.ZooError, match="1-channel images; use weights=None"):
        registry.load(BASELINE, input_shape=(28, 28, 3))


@pytest.mark.parametrize("call, error, argument", [
    (lambda: nse_tf.create_model(BASELINE, num_classes=2.7), TypeError, "num_classes"),
    (lambda: nse_tf.create_model(BASELINE, num_classes=3.0), TypeError, "num_classes"),
    (lambda: nse_tf.create_model(BASELINE, num_classes=True), TypeError, "num_classes"),
    (lambda: nse_tf.create_model("NSENet-27", num_classes=1), ValueError, "num_classes"),
    (lambda: nse_tf.create_model(BASELINE, input_shape=(32.9, 32.9, 3)), TypeError, "input_shape"),
    (lambda: nse_tf.create_model("NSENet-27", input_shape=(32.9, 32.9, 3)), TypeError, "input_shape"),
    (lambda: nse_tf.create_model(BASELINE, input_shape=(32, 32)), TypeError, "input_shape"),
    (lambda: nse_tf.create_model(BASELINE, input_shape="32x32x3"), TypeError, "input_shape"),
    (lambda: nse_tf.create_model(BASELINE, input_shape=(28, 32, 1)), ValueError, "input_shape must be square"),
    (lambda: nse_tf.create_model(TINY, input_shape=(4, 4, 1)), ValueError, "input_shape"),
    (lambda: nse_tf.create_model(None), TypeError, "name"),
    (lambda: nse_tf.create_model(3), TypeError, "name"),
    (lambda: nse_tf.create_model(BASELINE, pretrained="yes"), TypeError, "pretrained"),
    (lambda: nse_tf.create_model("NSENet-27", pretrained=True), registry.ZooError, r"pretrained=False"),
    (lambda: nse_tf.create_model(BASELINE, include_top=False, pooling="mean"), ValueError, "pooling"),
    (lambda: nse_tf.create_model(BASELINE, pooling="avg"), ValueError, "pooling"),
    (lambda: nse_tf.create_model(BASELINE, include_top=False, num_classes=3), ValueError, "num_classes"),
    (lambda: nse_tf.create_model(BASELINE, include_top=1), TypeError, "include_top"),
    (lambda: nse_tf.list_models(None), TypeError, "pattern"),
    (lambda: nse_tf.list_models(3), TypeError, "pattern"),
    # issue 31: a string where a number belongs is named with its type, in create_model and in zoo.load
    (lambda: nse_tf.create_model(BASELINE, num_classes="ten"), TypeError,
     r"num_classes must be a whole number \(int\), got 'ten' \(str\)"),
    (lambda: registry.load(BASELINE, num_classes="10"), TypeError,
     r"num_classes must be a whole number \(int\), got '10' \(str\)"),
    (lambda: registry.load(BASELINE, input_shape=(32, 32)), TypeError, "input_shape"),
    (lambda: nse_tf.create_model(BASELINE, input_shape=(28, 28, 1.5)), TypeError, "input_shape"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_arguments_are_refused_naming_the_argument(call, error, argument):
    with pytest.raises(error, match=argument):
        call()

