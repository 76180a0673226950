"""Issue 32: every model the project returns saves to ``.keras`` and loads back with ``keras.models.load_model``
(safe mode, no Lambda layers) to the same outputs: the listed zoo names (entries, tags, flip averaging, recipes
of seeds), published networks (built small), searched architectures and a strided dilated branch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import nse_tf
from nse_tf.nets import saving
from nse_tf.nets.child import build_child
from nse_tf.nets.flip_average import MeanOfHalves, MirrorStack
from nse_tf.nets.layers import FusedBatchNormalization, StridedDilatedDepthwiseConv2D
from nse_tf.space.architecture import Architecture, NetworkSpec
from nse_tf.space.published import published_names
from tests.helpers import TINY, TINY_SPACE, randomise_weights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEARCHED = os.path.join(REPO, "results", "fashion_mnist_nse_latency", "chosen", "best.json")


def round_trip(model, path) -> keras.Model:
    model.save(str(path))
    loaded = keras.models.load_model(str(path), safe_mode=True)
    assert type(loaded) is type(model) and loaded.name == model.name
    layers = [layer for m in (loaded, *[l for l in loaded.layers if isinstance(l, keras.Model)]) for layer in m.layers]
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in layers)
    return loaded


def same_outputs(model, loaded) -> None:
    x = np.random.default_rng(0).uniform(0, 255, (2, *model.input_shape[1:])).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


@pytest.mark.parametrize("name", nse_tf.list_models())
def test_every_listed_model_round_trips_through_a_keras_file(name, tmp_path):
    small = dict(num_classes=10, input_shape=(32, 32, 3)) if name in published_names() else {}  # 224x224 is slow
    pretrained = name in nse_tf.list_models(pretrained=True)
    model = nse_tf.create_model(name, pretrained=pretrained, **small)
    loaded = round_trip(model, tmp_path / "m.keras")
    same_outputs(model, loaded)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def dilated_at_stride_two() -> NetworkSpec:
    space = TINY_SPACE.replace(pool=("mb_k3_t3_d2", "mb_k3_t1"))
    return NetworkSpec(space, Architecture.from_cells([[0], [1], [0, 1], [0], [1], [0]], space.get_pool()), "dil")


@pytest.mark.parametrize("source", ["searched", "dilated", "tiny-rgb-backbone"])
def test_searched_children_and_backbones_round_trip(source, tmp_path):
    if source == "searched":
        model = nse_tf.create_model(SEARCHED)
    elif source == "dilated":
        model = build_child(dilated_at_stride_two())
        assert any(isinstance(layer, StridedDilatedDepthwiseConv2D) for layer in model.layers)
    else:
        model = nse_tf.create_model(TINY, input_shape=(16, 16, 3), include_top=False, pooling="max")
    randomise_weights(model, seed=1)  # BN statistics too, so that every variable matters
    same_outputs(model, round_trip(model, tmp_path / "m.keras"))


@pytest.mark.parametrize("layer", [
    StridedDilatedDepthwiseConv2D(5, strides=2, dilation_rate=3, use_bias=False, name="sd"),
    FusedBatchNormalization(momentum=0.8, epsilon=1e-4, name="fbn"), MirrorStack(name="m"), MeanOfHalves(name="h"),
], ids=lambda layer: type(layer).__name__)
def test_custom_layers_are_registered_and_their_config_is_complete(layer):
    assert keras.saving.get_registered_name(type(layer)) == f"nse_tf>{type(layer).__name__}"
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(again) is type(layer) and again.get_config() == layer.get_config()


def test_modules_of_registered_classes_import_nothing_that_imports_keras():
    """``nets.saving`` imports them while Keras loads, maybe from inside one of them (half-imported then): at
    their top they import Keras and modules free of it only (their other imports sit in functions)."""
    def top_imports(module: str) -> set[str]:
        with open(os.path.join(REPO, *module.split(".")) + ".py", encoding="utf-8") as f:
            tree = ast.parse(f.read())
        found = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
        return found

    for module in saving.KERAS_MODULES:
        for dep in top_imports(module):
            if dep.startswith("nse_tf"):
                assert "keras" not in top_imports(dep), f"{module} imports {dep}, which imports Keras"


def test_a_keras_file_loads_in_a_fresh_process_whichever_module_imports_keras_first(tmp_path):
    """``import nse_tf`` imports no Keras; its classes register when Keras is imported, here from inside
    ``nse_tf.nets.layers`` (the worst order: the module half-imported)."""
    model = nse_tf.create_model("mobilenetv2-style-fmnist.e60_flip", pretrained=True)
    x = np.random.default_rng(0).uniform(0, 255, (2, 28, 28, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.asarray(model(x)))
    model.save(str(tmp_path / "m.keras"))
    code = ("import sys, nse_tf\n"
            "assert 'keras' not in sys.modules\n"
            "import nse_tf.nets.layers, keras, numpy as np\n"
            f"m = keras.models.load_model({str(tmp_path / 'm.keras')!r})\n"
            f"y = np.asarray(m(np.load({str(tmp_path / 'x.npy')!r})))\n"
            f"np.testing.assert_array_equal(y, np.load({str(tmp_path / 'y.npy')!r}))\n"
            "print(type(m).__name__)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0 and result.stdout.strip() == "ImageModel", result.stderr[-3000:]
