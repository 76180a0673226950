"""Tests for nse_tf.nets.child and nse_tf.nets.layers: forward shapes, the cell combination rule, the strided dilated
depthwise conv, and the same network under Keras 3 (TF), tf_keras and Keras 3 (JAX)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from nse_tf.nets.child import build_child
from nse_tf.nets.layers import Namespace, StridedDilatedDepthwiseConv2D
from nse_tf.space.architecture import Architecture, NetworkSpec
from nse_tf.space.macro import get_space
from tests.helpers import randomise_weights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# index:   0              1               2            3               4             5
POOL = ("mb_k3_t3_d2", "mb_k5_t3_g12", "rec_k5_t2", "normal_k3_t1", "dual_k3_t1", "mb_k3_t1")
SPACE = get_space("small", pool=POOL, r_strides=(1, 2, 2, 2))  # 15 cells: N R(s1) N N R(s2) N N R(s2) N N E N R(s2) N E
MAIN_CELLS = [
    [0, 2, 3],     # 0 N
    [1, 5],        # 1 R stride 1
    [],            # 2 N (skipped)
    [4],           # 3 N
    [0, 2, 3, 4],  # 4 R stride 2 at 28x28: dilated op, even size
    [1],           # 5 N
    [],            # 6 N (skipped)
    [0, 5],        # 7 R stride 2 at 14x14
    [2],           # 8 N
    [3, 4],        # 9 N
    [1, 2],        # 10 E
    [],            # 11 N (skipped)
    [0, 1, 4],     # 12 R stride 2 at 7x7: dilated op, odd size
    [5],           # 13 N
    [3],           # 14 E (single branch)
]


def make_spec(cells, space=SPACE, name="test-net") -> NetworkSpec:
    return NetworkSpec(space, Architecture.from_cells(cells, space.get_pool()), name)


def without_strided_dilation(cells, space=SPACE):
    pool = space.get_pool()
    return [[i for i in ops if not (cell.stride == 2 and pool.ops[i].dilation > 1)]
            for cell, ops in zip(space.cells(), cells)]


def images(n: int = 2, size: int = 28, channels: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, channels)).astype("float32")


def assert_close(a, b, tol: float = 1e-4) -> None:
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    assert a.shape == b.shape
    assert float(np.std(b)) > 1e-3, "reference output is (nearly) constant: the comparison would be vacuous"
    scale = max(1.0, float(np.abs(b).max()))
    assert float(np.abs(a - b).max()) < tol * scale, float(np.abs(a - b).max()) / scale


@pytest.fixture(scope="module")
def main_model():
    keras.utils.set_random_seed(0)
    model = build_child(make_spec(MAIN_CELLS))
    randomise_weights(model, seed=1)
    return model


# ---------------------------------------------------------------- forward


def test_forward_output_shape(main_model):
    x = images(3)
    y = np.asarray(main_model(x, training=False))
    assert y.shape == (3, 10)
    assert np.all(np.isfinite(y))
    assert main_model.input_shape == (None, 28, 28, 1)
    assert main_model.output_shape == (None, 10)
    names = {layer.name for layer in main_model.layers}
    assert "cell04_R_mb_k3_t3_d2_dw_conv" in names and "cell04_R_combine" in names
    assert isinstance(main_model.get_layer("cell04_R_mb_k3_t3_d2_dw_conv"), StridedDilatedDepthwiseConv2D)
    assert isinstance(main_model.get_layer("cell12_R_mb_k3_t3_d2_dw_conv"), StridedDilatedDepthwiseConv2D)
    assert main_model.get_layer("cell12_R_mb_k3_t3_d2_dw_conv").output.shape[1:3] == (4, 4)
    assert not any(n.startswith(("cell02_", "cell06_", "cell11_")) for n in names)  # empty N cells add nothing
    assert "cell14_E_combine" not in names  # a single branch needs no combine


def test_cell_combination_rule(main_model):
    m = main_model
    pool = SPACE.get_pool()

    def branch(cell, i):
        return m.get_layer(f"{cell}_{pool.ops[i].name}_project_bn").output

    outputs = {
        "x0": m.get_layer("stem_act").output,
        "c0": m.get_layer("cell00_N_combine").output,
        "b0": [branch("cell00_N", i) for i in MAIN_CELLS[0]],
        "c1": m.get_layer("cell01_R_combine").output,
        "b1": [branch("cell01_R", i) for i in MAIN_CELLS[1]],
        "c3": m.get_layer("cell03_N_combine").output,
        "b3": [branch("cell03_N", i) for i in MAIN_CELLS[3]],
        "c4": m.get_layer("cell04_R_combine").output,
        "b4": [branch("cell04_R", i) for i in MAIN_CELLS[4]],
        "b14": branch("cell14_E", 3),
        "head_in": m.get_layer("head_conv").input,
    }
    probe = keras.Model(m.input, outputs)
    v = {k: (np.asarray(t) if not isinstance(t, list) else [np.asarray(e) for e in t])
         for k, t in probe(images(2, seed=3), training=False).items()}
    # N cell: (x + sum_b op_b(x)) / (|B| + 1)
    assert_close(v["c0"], (v["x0"] + sum(v["b0"])) / (len(v["b0"]) + 1), 1e-5)
    # R cell: sum_b op_b(x) / |B|
    assert_close(v["c1"], sum(v["b1"]) / len(v["b1"]), 1e-5)
    assert_close(v["c4"], sum(v["b4"]) / len(v["b4"]), 1e-5)
    # cell 2 is an empty N cell: cell 3 sees cell 1's output unchanged (identity)
    assert_close(v["c3"], (v["c1"] + sum(v["b3"])) / 2, 1e-5)
    # single-branch E cell: its output is the branch
    assert_close(v["head_in"], v["b14"], 1e-6)
    assert v["c4"].shape == (2, 14, 14, 24)


def test_empty_n_cells_are_skipped():
    all_empty = [[] if c.kind == "N" else [5] for c in SPACE.cells()]
    all_one = [[5] for _ in SPACE.cells()]
    empty_model = build_child(make_spec(all_empty))
    full_model = build_child(make_spec(all_one))
    n_cells = sum(c.kind == "N" for c in SPACE.cells())
    assert not any("_N_" in layer.name for layer in empty_model.layers)
    # each N cell with one branch adds 8 layers (3 conv-bn-act x 2 + conv-bn) and a combine layer
    assert len(full_model.layers) - len(empty_model.layers) == n_cells * 9
    assert np.asarray(empty_model(images(1), training=False)).shape == (1, 10)


# ---------------------------------------------------------------- StridedDilatedDepthwiseConv2D


def reference_depthwise(x: np.ndarray, kernel: np.ndarray, stride: int, dilation: int) -> np.ndarray:
    """TF 'same' padding for a strided conv, written out: pad, then gather taps by explicit slicing."""
    n, h, w, c = x.shape
    kh, kw = kernel.shape[:2]
    out = []
    pads = []
    for size, k in ((h, kh), (w, kw)):
        extent = (k - 1) * dilation + 1
        o = math.ceil(size / stride)
        total = max((o - 1) * stride + extent - size, 0)
        pads.append((total // 2, total - total // 2))
        out.append(o)
    xp = np.pad(x.astype("float64"), ((0, 0), pads[0], pads[1], (0, 0)))
    y = np.zeros((n, out[0], out[1], c))
    for a in range(kh):
        for b in range(kw):
            tap = xp[:, a * dilation: a * dilation + (out[0] - 1) * stride + 1: stride,
                     b * dilation: b * dilation + (out[1] - 1) * stride + 1: stride, :]
            y += tap * kernel[a, b, :, 0]
    return y


@pytest.mark.parametrize("h,w,kernel,dilation,stride", [
    (8, 8, 3, 2, 2), (7, 7, 3, 2, 2), (9, 10, 3, 3, 2), (10, 9, 5, 2, 2), (12, 12, 5, 3, 2), (11, 11, 3, 2, 3),
    (6, 7, 7, 2, 2), (8, 7, 3, 1, 2),
])
def test_strided_dilated_depthwise_matches_reference(h, w, kernel, dilation, stride):
    rng = np.random.default_rng(h * 100 + w)
    x = rng.normal(size=(2, h, w, 3)).astype("float32")
    layer = StridedDilatedDepthwiseConv2D(kernel, strides=stride, dilation_rate=dilation, use_bias=False)
    y = np.asarray(layer(x))
    k = np.asarray(layer.kernel)
    expected = reference_depthwise(x, k, stride, dilation)
    assert y.shape == expected.shape == (2, math.ceil(h / stride), math.ceil(w / stride), 3)
    assert layer.compute_output_shape((None, h, w, 3)) == (None,) + expected.shape[1:]
    assert_close(y, expected, 1e-5)
    if dilation == 1:  # the subsampling trick must agree with TF's own strided 'same' conv
        plain = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False)
        plain.build(x.shape)
        plain.set_weights([k])
        assert_close(y, np.asarray(plain(x)), 1e-5)
    clone = StridedDilatedDepthwiseConv2D.from_config(layer.get_config())
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    assert_close(np.asarray(clone(x)), y, 1e-6)


# ---------------------------------------------------------------- backends


def test_tf_keras_model_matches_keras3():
    """Strided dilated depthwise convs included: in tf_keras a dilated stride-1 conv, BN, ReLU, then Subsample
    (the one layer more, without weights)."""
    import tf_keras

    assert without_strided_dilation(MAIN_CELLS) != MAIN_CELLS  # the network holds a strided dilated conv
    spec = make_spec(MAIN_CELLS)
    keras.utils.set_random_seed(0)
    k3 = build_child(spec)
    randomise_weights(k3, seed=2)
    k2 = build_child(spec, Namespace.tf_keras())
    assert isinstance(k2, tf_keras.Model)
    assert sorted(layer.name for layer in k2.layers if not layer.name.endswith("_subsample")) == \
        sorted(layer.name for layer in k3.layers)
    for layer in k2.layers:
        if layer.name.endswith("_subsample"):
            continue
        source = k3.get_layer(layer.name).get_weights()
        assert [w.shape for w in layer.get_weights()] == [w.shape for w in source], layer.name
        if source:
            layer.set_weights(source)
    x = images(2, seed=4)
    assert_close(np.asarray(k2(x, training=False)), np.asarray(k3(x, training=False)))


JAX_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    from nse_tf.nets.child import build_child
    from nse_tf.space.architecture import NetworkSpec
    tmp = sys.argv[1]
    model = build_child(NetworkSpec.load(tmp + "/spec.json"))
    model.load_weights(tmp + "/model.weights.h5")
    np.save(tmp + "/y_jax.npy", np.asarray(model(np.load(tmp + "/x.npy"), training=False)))
""")

# Every op kind once, dilated ops in stride-2 cells at even (28) and odd (7) sizes; small, because
# JAX compiles every initializer and eager op on first use (about 0.1 s each on this machine).
JAX_SPACE = get_space("small", pool=POOL, counts=(2, 0, 0, 0, 0, 0), r_strides=(1, 2, 2, 2))  # N N R(s1) R(s2) R(s2) E R(s2) E
JAX_CELLS = [[], [0, 3], [1, 5], [0, 2, 4], [0], [1, 2], [0, 3], [4]]


@pytest.mark.slow  # end to end; CI's 15 minutes (run with -m slow)
def test_jax_backend_matches_tensorflow(tmp_path):
    spec = make_spec(JAX_CELLS, JAX_SPACE)
    keras.utils.set_random_seed(0)
    model = build_child(spec)
    randomise_weights(model, seed=3)
    spec.save(tmp_path / "spec.json")
    model.save_weights(str(tmp_path / "model.weights.h5"))
    x = images(2, seed=5)
    np.save(tmp_path / "x.npy", x)
    y_tf = np.asarray(model(x, training=False))
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               XLA_FLAGS="--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
               PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(tmp_path)], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_close(np.load(tmp_path / "y_jax.npy"), y_tf)


@pytest.mark.parametrize("namespace", ["keras3", "tf_keras"])
def test_depthwise_kernels_start_at_pytorch_he_normal_fan_out(namespace):
    # The reference's kaiming_normal_(mode="fan_out") counts channels x k x k for a depthwise kernel; Keras's
    # fan_out of a (k, k, C, 1) kernel is k x k, which started them sqrt(C) too large (C = 96 here: ~10x).
    from nse_tf.nets.layers import conv_bn

    ns = getattr(Namespace, namespace)()
    channels, k = 96, 5
    conv, bn = conv_bn(ns, "t", channels, k, depthwise=True)
    dense = conv_bn(ns, "d", channels, 1)[0]
    inputs = ns.Input((8, 8, channels))
    model = ns.Model(inputs, dense(bn(conv(inputs))))
    depthwise_std = float(np.std(model.get_layer("t_conv").get_weights()[0]))
    dense_std = float(np.std(model.get_layer("d_conv").get_weights()[0]))
    assert depthwise_std == pytest.approx(math.sqrt(2.0 / (channels * k * k)), rel=0.1)
    assert dense_std == pytest.approx(math.sqrt(2.0 / channels), rel=0.1)  # 1x1: fan_out = C_out, unchanged
