"""Tests for nse_tf.data: IDX reading, held-out split, tf.data pipelines."""

from __future__ import annotations

import dataclasses
import gzip
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from nse_tf.data import idx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_FMNIST = idx.DEFAULT_FASHION_MNIST_DIR
HAVE_REAL_FMNIST = all(
    os.path.exists(os.path.join(REAL_FMNIST, s + ".gz"))
    for s in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
)

# ---------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: ">u1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def write(path, data: bytes, gz: bool) -> str:
    path = str(path) + (".gz" if gz else "")
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
        f.write(data)
    return path


def fake_fmnist(root, n_train: int = 40, n_test: int = 12, gz_train: bool = True,
                gz_test: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """Writes a tiny Fashion-MNIST look-alike (train gzipped, test not)."""
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }
    names = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
    for key, stem in names.items():
        write(os.path.join(root, stem), idx_bytes(arrays[key]), gz_train if "train" in key else gz_test)
    return arrays


# ---------------------------------------------------------------- idx.py (numpy only)


@pytest.mark.parametrize("code", [0x08, 0x0B, 0x0C, 0x0D])
def test_parse_idx_round_trip(code):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    out = idx.parse_idx(idx_bytes(array, code))
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, array)
    assert out.dtype.isnative


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_gzipped_and_plain(tmp_path, gz):
    array = np.arange(10, dtype=np.uint8)
    path = write(tmp_path / "labels", idx_bytes(array), gz)
    np.testing.assert_array_equal(idx.read_idx(path), array)


def test_bad_magic_names_file(tmp_path):
    path = write(tmp_path / "bad", b"\x01\x02\x08\x01" + b"\x00" * 8, gz=False)
    with pytest.raises(ValueError, match="bad IDX magic") as e:
        idx.read_idx(path)
    assert path in str(e.value)


def test_truncated_body_and_header(tmp_path):
    good = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    path = write(tmp_path / "short", good[:-5], gz=True)
    with pytest.raises(ValueError, match="truncated") as e:
        idx.read_idx(path)
    assert path in str(e.value)
    with pytest.raises(ValueError, match="truncated IDX header"):
        idx.parse_idx(good[:9], name="x")
    with pytest.raises(ValueError, match="trailing"):
        idx.parse_idx(good + b"\x00", name="x")


def test_truncated_gzip_stream(tmp_path):
    path = write(tmp_path / "cut", idx_bytes(np.zeros((50, 28, 28), np.uint8)), gz=True)
    raw = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="cut"):
        idx.read_idx(path)


def test_load_fashion_mnist_synthetic(tmp_path):
    arrays = fake_fmnist(tmp_path)
    data = idx.load_fashion_mnist(str(tmp_path))
    assert data.x_train.shape == (40, 28, 28, 1) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (12, 28, 28, 1)
    assert data.y_train.dtype in (np.int64, np.int32)
    np.testing.assert_array_equal(data.x_train[..., 0], arrays["x_train"])
    np.testing.assert_array_equal(data.y_test, arrays["y_test"])
    assert len(data.class_names) == data.num_classes == 10


def test_label_count_mismatch(tmp_path):
    fake_fmnist(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(3, np.uint8)), gz=False)
    with pytest.raises(ValueError, match="12 images but .* 3 labels"):
        idx.load_fashion_mnist(str(tmp_path))


def test_missing_files_message(tmp_path):
    with pytest.raises(idx.DataNotFoundError) as e:
        idx.load_fashion_mnist(str(tmp_path / "nowhere"))
    assert isinstance(e.value, FileNotFoundError)
    msg = str(e.value)
    assert "apt-get install -y dataset-fashion-mnist" in msg
    assert str(tmp_path / "nowhere") in msg and "train-images-idx3-ubyte" in msg
    fake_fmnist(tmp_path)
    os.remove(tmp_path / "t10k-images-idx3-ubyte")
    with pytest.raises(idx.DataNotFoundError, match="t10k-images-idx3-ubyte") as e:
        idx.load_fashion_mnist(str(tmp_path))
    assert "train-images" not in str(e.value)


def test_heldout_split():
    a_train, a_held = idx.heldout_split(1000, 100, seed=3)
    b_train, b_held = idx.heldout_split(1000, 100, seed=3)
    np.testing.assert_array_equal(a_held, b_held)
    np.testing.assert_array_equal(a_train, b_train)
    assert len(a_held) == 100 and len(a_train) == 900
    assert not set(a_train) & set(a_held)
    assert sorted(set(a_train) | set(a_held)) == list(range(1000))
    assert list(a_held) == sorted(a_held)
    _, c_held = idx.heldout_split(1000, 100, seed=4)
    assert not np.array_equal(a_held, c_held)
    with pytest.raises(ValueError, match="heldout"):
        idx.heldout_split(10, 10, seed=0)


def test_mean_std():
    assert idx.mean_std("fashion_mnist") == ((72.9404,), (90.0212,))
    assert idx.mean_std("tfds:cifar10")[0] == (125.3, 123.0, 113.9)
    imagenet = ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    assert idx.mean_std("tfds:imagenet2012") == imagenet
    assert idx.mean_std("tfds:imagenette/320px-v2") == imagenet
    assert idx.mean_std("folder:/x") == imagenet
    assert idx.mean_std("folder:/x", channels=1) == ((127.5,), (127.5,))


@pytest.mark.skipif(not HAVE_REAL_FMNIST, reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_mean_std_matches_files():
    x = idx.load_fashion_mnist().x_train
    (mean,), (std,) = idx.mean_std("fashion_mnist")
    assert abs(x.mean(dtype=np.float64) - mean) < 1e-3
    assert abs(x.std(dtype=np.float64) - std) < 1e-3


def test_idx_and_package_import_without_tensorflow():
    """The JAX retraining path has no TensorFlow: these imports must not need it."""
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "import nse_tf.data.idx, nse_tf.data\n"
        "assert nse_tf.data.mean_std('fashion_mnist')\n"
        "assert 'DataConfig' in dir(nse_tf.data)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- pipeline.py

# TensorFlow and tensorflow-datasets are requirements: a missing one fails these tests, it never skips them.
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from nse_tf.data.pipeline import DataConfig, load_splits  # noqa: E402


def first(ds):
    x, y = next(iter(ds))
    return x.numpy(), y.numpy()


def check_batch(x, y, shape, num_classes):
    assert x.shape == shape and x.dtype == np.float32
    assert y.dtype == np.int32 and y.shape == (shape[0],)
    assert x.min() >= 0.0 and x.max() <= 255.0
    assert y.min() >= 0 and y.max() < num_classes


def count(ds) -> int:
    return sum(int(y.shape[0]) for _, y in ds)


def test_lazy_package_names():
    import nse_tf.data as data

    assert data.DataConfig is DataConfig and data.load_splits is load_splits
    with pytest.raises(AttributeError):
        data.no_such_name  # noqa: B018


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"batch_size": 0}, "batch_size must be positive, got 0"),
        ({"heldout_examples": -1}, "heldout_examples"),
        ({"shuffle_buffer": 0}, "shuffle_buffer"),
        ({"image_size": 0}, "image_size"),
        ({"seed": -2}, "seed"),
        ({"augment": "yes"}, "augment"),
        ({"dataset": "mnist"}, "unknown dataset 'mnist'.*tfds:<name>.*folder:<path>"),
        ({"dataset": "tfds:"}, "unknown dataset"),
    ],
)
def test_data_config_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        DataConfig(**kwargs)


def test_synthetic_idx_pipeline(tmp_path):
    arrays = fake_fmnist(tmp_path, n_train=40, n_test=12)
    config = DataConfig(data_dir=str(tmp_path), heldout_examples=8, batch_size=4, augment=False, seed=1)
    s = load_splits(config)
    assert s.input_shape == (28, 28, 1) and s.num_classes == 10
    assert (s.num_train, s.num_heldout, s.num_test) == (32, 8, 12)
    assert s.num_train + s.num_heldout == 40
    assert (count(s.train_plain), count(s.heldout), count(s.test)) == (32, 8, 12)
    _, held_idx = idx.heldout_split(40, 8, seed=1)
    held = np.concatenate([x for x, _ in s.heldout.as_numpy_iterator()])
    np.testing.assert_array_equal(held[..., 0], arrays["x_train"][held_idx].astype(np.float32))
    train_pixels = {x.tobytes() for b, _ in s.train_plain.as_numpy_iterator() for x in b}
    assert not train_pixels & {x.tobytes() for x in held}
    # Infinite streams: more batches than one pass holds, fixed batch shape.
    for ds in (s.train, s.heldout_repeat):
        batches = list(ds.take(5).as_numpy_iterator())
        assert all(x.shape == (4, 28, 28, 1) for x, _ in batches)
    # Without augmentation a training batch holds unchanged training images.
    x, _ = first(s.train)
    assert {img.tobytes() for img in x} <= train_pixels


def test_heldout_too_large(tmp_path):
    fake_fmnist(tmp_path, n_train=10)
    with pytest.raises(ValueError, match="heldout_examples=10"):
        load_splits(DataConfig(data_dir=str(tmp_path), heldout_examples=10))


def test_augmentation_shape_range_determinism(tmp_path):
    fake_fmnist(tmp_path, n_train=40)
    cfg = DataConfig(data_dir=str(tmp_path), heldout_examples=4, batch_size=8, seed=7)
    a = list(load_splits(cfg).train.take(2).as_numpy_iterator())
    b = list(load_splits(cfg).train.take(2).as_numpy_iterator())
    for (xa, ya), (xb, yb) in zip(a, b):
        check_batch(xa, ya, (8, 28, 28, 1), 10)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    c = list(load_splits(dataclass_replace(cfg, seed=8)).train.take(2).as_numpy_iterator())
    assert not np.array_equal(a[0][0], c[0][0])
    plain = load_splits(dataclass_replace(cfg, augment=False))
    plain_pixels = {x.tobytes() for b, _ in plain.train_plain.as_numpy_iterator() for x in b}
    # Translation/flip change most images (zero padding shows at the border).
    assert sum(img.tobytes() not in plain_pixels for img in a[0][0]) >= 4


def dataclass_replace(cfg, **changes):
    return dataclasses.replace(cfg, **changes)


def test_small_recipe_resize(tmp_path):
    fake_fmnist(tmp_path)
    s = load_splits(DataConfig(data_dir=str(tmp_path), heldout_examples=4, batch_size=4, image_size=32))
    assert s.input_shape == (32, 32, 1)
    check_batch(*first(s.train), (4, 32, 32, 1), 10)
    check_batch(*first(s.test), (4, 32, 32, 1), 10)


@pytest.mark.skipif(not HAVE_REAL_FMNIST, reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_smoke():
    s = load_splits(DataConfig(heldout_examples=1000, batch_size=64))
    assert (s.num_train, s.num_heldout, s.num_test) == (59000, 1000, 10000)
    assert s.input_shape == (28, 28, 1) and s.num_classes == 10
    assert s.class_names[0] == "T-shirt/top"
    for ds in (s.train, s.heldout_repeat, s.heldout, s.test, s.train_plain):
        check_batch(*first(ds), (64, 28, 28, 1), 10)
    assert count(s.heldout) == 1000
    x, _ = first(s.test)
    assert x.max() > 200  # raw pixel values, not normalised


def test_tfds_cifar10_mock():
    with tfds.testing.mock_data(num_examples=12):
        s = load_splits(DataConfig("tfds:cifar10", heldout_examples=4, batch_size=4))
        assert s.input_shape == (32, 32, 3) and s.num_classes == 10
        assert len(s.class_names) == 10
        for ds in (s.train, s.heldout_repeat, s.heldout, s.test):
            check_batch(*first(ds), (4, 32, 32, 3), 10)
        with pytest.raises(ValueError, match="no_such_dataset"):
            load_splits(DataConfig("tfds:no_such_dataset"))


TINY_BUILDER = '''
import numpy as np
import tensorflow_datasets as tfds


class NseTinyImages(tfds.core.GeneratorBasedBuilder):
    """Six-class 8x8 grey images, generated: a registered builder that lives in a package, like tfds's own."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, supervised_keys=("image", "label"), features=tfds.features.FeaturesDict(
            {"image": tfds.features.Image(shape=(8, 8, 1)), "label": tfds.features.ClassLabel(num_classes=6)}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(30, 0), "test": self._generate_examples(12, 1)}

    def _generate_examples(self, n, seed):
        rng = np.random.default_rng(seed)
        for i in range(n):
            yield i, {"image": rng.integers(0, 256, (8, 8, 1), dtype=np.uint8), "label": i % 6}
'''


def test_a_tfds_dataset_is_prepared_through_the_real_builder_path(tmp_path):
    """Preparing a registered dataset (what --dataset=tfds:cifar10 does first, before any download) imports
    importlib_resources inside tensorflow-datasets, which does not depend on it: requirements.txt must."""
    package = tmp_path / "nse_tfds_fixture"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tiny.py").write_text(TINY_BUILDER)
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import nse_tfds_fixture.tiny\n"
            "from nse_tf.data.pipeline import DataConfig, load_splits\n"
            "s = load_splits(DataConfig('tfds:nse_tiny_images', heldout_examples=6, batch_size=4, data_dir=sys.argv[2]))\n"
            "x, y = next(iter(s.train))\n"
            "print(s.input_shape, s.num_classes, s.num_train, s.num_heldout, s.num_test, tuple(x.shape))\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(tmp_path / "tfds")], cwd=REPO,
                            capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-2] == "(8, 8, 1) 6 24 6 12 (4, 8, 8, 1)"
    assert (tmp_path / "tfds" / "nse_tiny_images" / "1.0.0").is_dir()


def test_tfds_large_images_mock():
    with tfds.testing.mock_data(num_examples=6):
        with pytest.raises(ValueError, match="image_size must be set"):
            load_splits(DataConfig("tfds:imagenette", heldout_examples=2, batch_size=2))
        s = load_splits(DataConfig("tfds:imagenette", heldout_examples=2, batch_size=2, image_size=72))
        assert s.input_shape == (72, 72, 3)
        check_batch(*first(s.train), (2, 72, 72, 3), s.num_classes)
        check_batch(*first(s.test), (2, 72, 72, 3), s.num_classes)


def make_folder(root, classes=("cat", "dog"), per_class=5, size=(12, 10), channels=3, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (*size, channels), dtype=np.uint8)
            tf.io.write_file(os.path.join(root, c, f"{i}.png"), tf.io.encode_png(img))


def test_image_folder_train_test(tmp_path):
    make_folder(tmp_path / "train", per_class=5)
    make_folder(tmp_path / "test", per_class=2)
    s = load_splits(DataConfig(f"folder:{tmp_path}", heldout_examples=3, batch_size=2))
    assert s.class_names == ("cat", "dog") and s.num_classes == 2
    assert (s.num_train, s.num_heldout, s.num_test) == (7, 3, 4)
    assert s.input_shape == (12, 10, 3)
    for ds in (s.train, s.heldout_repeat, s.heldout, s.test):
        check_batch(*first(ds), (2, 12, 10, 3), 2)
    assert (count(s.train_plain), count(s.heldout), count(s.test)) == (7, 3, 4)


def test_image_folder_flat_grey_resized(tmp_path):
    make_folder(tmp_path, classes=("a", "b", "c"), per_class=2, size=(9, 9), channels=1)
    s = load_splits(DataConfig(f"folder:{tmp_path}", heldout_examples=2, batch_size=2, image_size=16))
    assert s.input_shape == (16, 16, 1) and s.num_test == 0 and s.num_train == 4
    check_batch(*first(s.train), (2, 16, 16, 1), 3)


def test_image_folder_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_splits(DataConfig(f"folder:{tmp_path / 'nope'}"))


def test_color_jitter_matches_torchvision_factors():
    from nse_tf.data.pipeline import color_jitter

    rng = np.random.default_rng(0)
    image = tf.constant(rng.uniform(40, 200, (16, 16, 3)).astype(np.float32))
    seed = tf.constant([3, 4], tf.int64)
    out = color_jitter(image, seed).numpy()
    np.testing.assert_array_equal(out, color_jitter(image, seed).numpy())  # stateless: same seed, same image
    assert out.min() >= 0.0 and out.max() <= 255.0 + 1e-3 and not np.allclose(out, image.numpy())
    # Only brightness: a pure scaling by a factor in [0.8, 1.2].
    bright = color_jitter(image, seed, (0.2, 0.0, 0.0, 0.0)).numpy()
    ratio = bright / image.numpy()
    assert np.allclose(ratio, ratio.flat[0], rtol=1e-5) and 0.8 <= ratio.flat[0] <= 1.2
    # No jitter at all: the image back (hue shift 0 is the identity up to rounding).
    np.testing.assert_allclose(color_jitter(image, seed, (0.0, 0.0, 0.0, 0.0)).numpy(), image.numpy(), atol=1e-3)
    # Saturation 0 factor range: a greyscale image stays grey.
    grey = tf.repeat(image[..., :1], 3, axis=-1)
    out = color_jitter(grey, seed, (0.0, 0.2, 0.2, 0.0)).numpy()
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-3)


def test_large_rgb_training_images_are_colour_jittered_and_small_ones_are_not(monkeypatch):
    from nse_tf.data import pipeline
    from nse_tf.data.pipeline import _Recipe

    rng = np.random.default_rng(1)
    image = tf.constant(rng.integers(0, 256, (80, 80, 3)).astype(np.uint8))
    seed = tf.constant([5, 6], tf.int64)
    large = _Recipe(out_hw=(72, 72), small=False, resize_small=False)
    jittered = large.augment(image, seed).numpy()
    assert jittered.shape == (72, 72, 3)
    monkeypatch.setattr(pipeline, "color_jitter", lambda image, seed: image)
    unjittered = large.augment(image, seed).numpy()  # the same crop and flip, without the jitter
    assert unjittered.shape == (72, 72, 3) and np.abs(jittered - unjittered).mean() > 1.0
    small = _Recipe(out_hw=(28, 28), small=True, resize_small=False)
    grey = tf.constant(rng.integers(0, 256, (28, 28, 1)).astype(np.uint8))
    # The small recipe is translation + flip only: its pixels are the source's (or zero padding).
    out = small.augment(grey, seed).numpy()
    assert set(np.unique(out)) <= set(np.unique(grey.numpy())) | {0.0}
