"""Tests for the public API of nse_tf: build_model by published name, with overrides, from a JSON file."""

from __future__ import annotations

import numpy as np
import pytest

import nse_tf


def test_build_published_model_at_224():
    model = nse_tf.build_model("NSENet-27")
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 1000)
    assert model.name == "NSENet_27"


def test_build_model_with_overrides_runs():
    model = nse_tf.build_model("NSENet-27", input_size=32, num_classes=10)
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 10)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    y = np.asarray(model(x, training=False))
    assert y.shape == (2, 10) and np.all(np.isfinite(y))


def test_build_model_from_json_path(tmp_path):
    spec = nse_tf.published_spec("NSENet-GPU").replace_space(input_size=32, num_classes=5)
    path = tmp_path / "net.json"
    spec.save(path)
    for arg in (path, str(path)):
        assert nse_tf.resolve_spec(arg) == spec
    model = nse_tf.build_model(str(path), include_preprocessing=False)
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 5)
    assert "preprocess" not in {layer.name for layer in model.layers}
    assert nse_tf.count_params(model) > 0 and nse_tf.count_macs(model) > 0
    assert nse_tf.build_model(spec, num_classes=7).output_shape == (None, 7)


@pytest.mark.parametrize("call, error, argument", [
    (lambda: nse_tf.resolve_spec(None), TypeError, "arch_or_name must be a model name"),
    (lambda: nse_tf.build_model(3), TypeError, "arch_or_name must be a model name"),
    (lambda: nse_tf.resolve_spec("NSENet-27", num_classes=2.7), ValueError, "num_classes must be a whole number"),
    (lambda: nse_tf.resolve_spec("NSENet-27", num_classes="ten"), ValueError, "num_classes must be a whole number"),
    (lambda: nse_tf.resolve_spec("NSENet-27", input_size=32.9), ValueError, "input_size must be a whole number"),
    (lambda: nse_tf.resolve_spec("NSENet-27", input_channels=1.5), ValueError, "input_channels must be a whole"),
    (lambda: nse_tf.list_models("*", pretrained="yes"), TypeError, "pretrained must be True or False"),
    (lambda: nse_tf.list_models(include_seeds=1), TypeError, "include_seeds must be True or False"),
], ids=["resolve None", "build 3", "num_classes 2.7", "num_classes ten", "input_size 32.9", "channels 1.5",
        "pretrained yes", "include_seeds 1"])
def test_api_arguments_are_checked_by_type_and_named_before_anything_is_built(call, error, argument):
    """Issue 31: floats where whole numbers belong are refused, not cut; each error names its argument."""
    with pytest.raises(error, match=argument):
        call()


def test_unknown_name_raises_value_error():
    with pytest.raises(ValueError, match="NoSuchNet"):
        nse_tf.build_model("NoSuchNet")
    with pytest.raises(ValueError, match="missing.json"):
        nse_tf.build_model("/nonexistent/missing.json")
    with pytest.raises(ValueError, match="stem_stride"):
        nse_tf.build_model("NSENet-27", stem_stride=3)


def test_public_names():
    assert set(nse_tf.published_names()) == {"NSENet-27", "NSENet", "NSENet-GPU"}
    for name in nse_tf.__all__:
        assert hasattr(nse_tf, name), name
