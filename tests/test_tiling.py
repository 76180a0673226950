"""Tiled large depthwise kernels (nse_tf.export.tiling): the same function as the plain layers, in pieces that
XNNPACK runs fast, and TFLite files of them that load and agree with Keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from nse_tf.export.tiling import MAX_TAPS, TiledDepthwiseConv2D, kernel_tiles, tile_large_depthwise
from nse_tf.nets.layers import StridedDilatedDepthwiseConv2D


@pytest.mark.parametrize("kernel", [1, 3, 5, 6, 7, 9, 11, 13])
def test_tiles_cover_every_tap_once_within_the_limit(kernel):
    seen = np.zeros((kernel, kernel), int)
    for r0, r1, c0, c1 in kernel_tiles(kernel):
        assert (r1 - r0) * (c1 - c0) <= MAX_TAPS
        seen[r0:r1, c0:c1] += 1
    assert (seen == 1).all()


def test_fewest_tiles():
    assert [len(kernel_tiles(k)) for k in (3, 5, 7, 9, 11)] == [1, 1, 3, 4, 6]


def conv_bn_model(kernel: int, stride: int, size: int, channels: int = 6, seed: int = 0) -> keras.Model:
    """Input -> depthwise conv -> BN with non-trivial statistics -> ReLU, with random weights."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input((size, size, channels))
    conv = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name="c_conv")
    bn = keras.layers.BatchNormalization(name="c_bn")
    outputs = keras.layers.ReLU()(bn(conv(inputs)))
    model = keras.Model(inputs, outputs)
    conv.set_weights([rng.normal(size=(kernel, kernel, channels, 1)).astype(np.float32)])
    bn.set_weights([rng.uniform(0.5, 2, channels), rng.normal(size=channels), rng.normal(size=channels),
                    rng.uniform(0.5, 3, channels)])
    return model


@pytest.mark.parametrize("kernel,stride,size", [(7, 1, 14), (7, 2, 14), (9, 2, 7), (11, 1, 7), (11, 2, 4),
                                                (7, 2, 5)])
def test_tiled_model_computes_the_same_function(kernel, stride, size):
    model = conv_bn_model(kernel, stride, size)
    tiled = tile_large_depthwise(model)
    assert tiled is not model
    assert [type(layer).__name__ for layer in tiled.layers].count("TiledDepthwiseConv2D") == 1
    assert "c_bn" in [layer.name for layer in tiled.layers]  # folded: a pass-through of the same name
    x = np.random.default_rng(1).normal(size=(3, size, size, 6)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(tiled.predict(x, verbose=0), expected, atol=1e-4 * max(1.0, np.abs(expected).max()))
    # the original model still works, with its own layers
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)


def test_small_kernels_and_other_convs_are_left_alone():
    model = conv_bn_model(5, 2, 8)
    assert tile_large_depthwise(model) is model
    inputs = keras.Input((8, 8, 4))
    dilated = StridedDilatedDepthwiseConv2D(7, strides=2, dilation_rate=2, use_bias=False)
    model = keras.Model(inputs, dilated(inputs))
    assert tile_large_depthwise(model) is model


def test_tiled_layer_round_trips_its_config():
    layer = TiledDepthwiseConv2D(9, strides=2, name="t")
    clone = TiledDepthwiseConv2D.from_config(layer.get_config())
    assert (clone.kernel_size, clone.strides, clone.tiles) == (9, 2, layer.tiles)


def test_exported_tflite_files_run_tiled_and_agree(tmp_path):
    """Both TFLite forms load under XNNPACK (a tile that sees only padding would give int8 a scale of 0, which
    XNNPACK refuses: such tiles are dropped), hold no depthwise kernel over 25 taps, and agree with Keras."""
    from ai_edge_litert import interpreter as litert

    from nse_tf.export.exporter import export_model

    rng = np.random.default_rng(2)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs / 255.0)  # 4x4
    x = keras.layers.DepthwiseConv2D(11, strides=2, padding="same", use_bias=False)(x)  # 3 of its 6 strips: padding
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(7, padding="same", use_bias=False)(x)  # on 2x2: 1 of its 3 strips padding
    logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, logits)
    images = rng.uniform(0, 255, size=(64, 8, 8, 1)).astype(np.float32)
    results = export_model(model, tmp_path, formats=("float32", "int8"), representative_images=images,
                           verify_images=images)
    for result in results:
        interpreter = litert.Interpreter(
            model_path=result.path, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
        shapes = {t["index"]: t["shape"] for t in interpreter.get_tensor_details()}
        depthwise = [op for op in interpreter._get_ops_details() if op["op_name"] == "DEPTHWISE_CONV_2D"]
        assert len(depthwise) == 3 + 2, result.format  # the tiles that read real input, none of the others
        assert all(int(np.prod(shapes[op["inputs"][1]][1:3])) <= MAX_TAPS for op in depthwise)
        assert result.top1_agreement >= (1.0 if result.format == "float32" else 0.9), result.format
    assert results[0].max_abs_diff < 1e-4


def test_a_bn_is_not_folded_when_the_conv_output_is_read_elsewhere():
    """The conv's own output is also a model output: folding the BN into it would change that output."""
    rng = np.random.default_rng(3)
    inputs = keras.Input((9, 9, 4))
    conv = keras.layers.DepthwiseConv2D(7, padding="same", use_bias=False)
    bn = keras.layers.BatchNormalization()
    raw = conv(inputs)
    model = keras.Model(inputs, [raw, bn(raw)])
    conv.set_weights([rng.normal(size=(7, 7, 4, 1)).astype(np.float32)])
    bn.set_weights([rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 3, 4)])
    tiled = tile_large_depthwise(model)
    x = rng.normal(size=(2, 9, 9, 4)).astype(np.float32)
    for got, expected in zip(tiled.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_allclose(got, expected, atol=1e-4)
    assert "BatchNormalization" in [type(layer).__name__ for layer in tiled.layers]
