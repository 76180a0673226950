"""A path of the supernet and the child network of that path compute the same function, and the
fused layers/optimiser the supernet uses are exact stand-ins for Keras's own."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import nse_tf
from nse_tf.nets.child import build_child
from nse_tf.nets.layers import FusedBatchNormalization
from nse_tf.search.supernet import Supernet
from nse_tf.space.architecture import Architecture, NetworkSpec
from nse_tf.train.optimizers import FusedSGD
from nse_tf.train.schedules import WarmupCosine


def _randomise(net: Supernet, rng: np.random.Generator) -> None:
    for v in net.weights:
        if v.path == net.alpha.path:
            continue
        value = rng.normal(size=v.shape) * (0.2 if "kernel" in v.path else 0.1)
        if "variance" in v.path or "gamma" in v.path:
            value = np.abs(value) + 1.0
        v.assign(value.astype("float32"))


def test_supernet_path_equals_child_network():
    space = nse_tf.get_space("small", counts=(1, 1, 0, 0, 0, 0), channels=(8,) * 7, head_channels=16)
    rng = np.random.default_rng(0)
    subspaces = [sorted(rng.choice(27, 3, replace=False).tolist()) for _ in space.cells()]
    net = Supernet(space, subspaces)
    net.build_all()
    _randomise(net, rng)
    masks = net.all_on()
    masks[:, 1] = False
    masks[0, :] = False  # an N cell switched off entirely
    cells = [[sub[j] for j in range(len(sub)) if masks[c, j]] for c, sub in enumerate(subspaces)]
    child = build_child(NetworkSpec(space, Architecture(tuple(tuple(c) for c in cells))))
    by_name = {layer.name: layer for layer in net._flatten_layers(include_self=False, recursive=True)
               if layer.weights}
    with_weights = [layer for layer in child.layers if layer.weights and layer.name != "preprocess"]
    for layer in with_weights:
        layer.set_weights(by_name[layer.name].get_weights())  # every child layer exists in the supernet by name
    x = rng.uniform(0, 255, size=(4, 28, 28, 1)).astype("float32")
    expected = child(x, training=False).numpy()
    got = net.forward_sampled(tf.constant(x), tf.constant(masks), training=False).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_fused_batch_norm_matches_keras():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, size=(8, 5, 5, 6)).astype("float32")
    fused, plain = FusedBatchNormalization(momentum=0.9, epsilon=1e-5), keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5)
    fused.build(x.shape), plain.build(x.shape)
    for layer in (fused, plain):
        layer.gamma.assign(rng.uniform(0.5, 1.5, 6).astype("float32"))
        layer.beta.assign(np.linspace(-1, 1, 6).astype("float32"))
    plain.set_weights(fused.get_weights())
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=1e-4)
    np.testing.assert_allclose(fused.moving_mean, plain.moving_mean, atol=1e-5)
    # The moving variance takes the unbiased batch variance (PyTorch's convention), Keras the biased one.
    n = 8 * 5 * 5
    unbiased = x.reshape(-1, 6).var(axis=0, ddof=1)
    np.testing.assert_allclose(fused.moving_variance, 0.9 + 0.1 * unbiased, rtol=1e-4)
    np.testing.assert_allclose(plain.moving_variance, 0.9 + 0.1 * unbiased * (n - 1) / n, rtol=1e-4)
    # Inference differs only through that factor n/(n-1) in the variance.
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), rtol=3e-3, atol=5e-3)
    # A second step blends into non-trivial moving statistics (the kernel's exponential_avg_factor).
    x2 = rng.normal(-1.0, 0.5, size=x.shape).astype("float32")
    old_mean, old_variance = np.array(fused.moving_mean), np.array(fused.moving_variance)
    fused(x2, training=True), plain(x2, training=True)
    np.testing.assert_allclose(fused.moving_mean, plain.moving_mean, atol=1e-5)
    np.testing.assert_allclose(fused.moving_mean, 0.9 * old_mean + 0.1 * x2.reshape(-1, 6).mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(fused.moving_variance,
                               0.9 * old_variance + 0.1 * x2.reshape(-1, 6).var(axis=0, ddof=1), rtol=1e-4)
    # Compiled, with a ReLU after it (Grappler fuses BN + ReLU): the same blend.
    old_mean, old_variance = np.array(fused.moving_mean), np.array(fused.moving_variance)
    tf.function(lambda images: tf.nn.relu(fused(images, training=True)))(tf.constant(x))
    np.testing.assert_allclose(fused.moving_mean, 0.9 * old_mean + 0.1 * x.reshape(-1, 6).mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(fused.moving_variance,
                               0.9 * old_variance + 0.1 * x.reshape(-1, 6).var(axis=0, ddof=1), rtol=1e-4)


@pytest.mark.parametrize("nesterov", [True, False])
def test_fused_sgd_matches_keras_sgd(nesterov):
    results = []
    for cls in (keras.optimizers.SGD, FusedSGD):
        rng = np.random.default_rng(2)
        variables = [keras.Variable(rng.normal(size=(3, 4)).astype("float32")),
                     keras.Variable(rng.normal(size=(5,)).astype("float32"))]
        opt = cls(WarmupCosine(0.4, 10, 2, 0.1), momentum=0.9, nesterov=nesterov)

        @tf.function(autograph=False)
        def step(i: tf.Tensor) -> None:
            grads = [tf.cos(v) * tf.cast(i, tf.float32) for v in variables]
            opt.apply_gradients(zip(grads, variables))

        for i in range(6):
            step(tf.constant(i))
        results.append([v.numpy() for v in variables])
    for fused, plain in zip(results[1], results[0]):
        np.testing.assert_allclose(fused, plain, rtol=1e-6, atol=1e-6)
