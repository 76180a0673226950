"""Issue 32: retraining reads a ``folder:`` dataset without TensorFlow (Pillow and numpy), exactly as the search's
tf.data pipeline reads it: the same classes, labels, order and held-out split, and the same pixels (the
pipeline's float values rounded) whatever the sizes, channels and formats of the images."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nse_tf.data import images
from nse_tf.data.arrays import DatasetError, heldout_arrays, load_arrays
from nse_tf.data.idx import DataFileError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(path, pixels: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels)
    (image.convert(mode) if mode else image).save(path, fmt)


def mixed_folder(root, size=(12, 10)) -> str:
    """train/ and test/ of 3 classes: RGB PNGs of several sizes, an RGBA PNG, a grey PNG, a palette PNG."""
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 4), ("test", 2)):
        for c, name in enumerate(("b_dog", "a_cat", "c_cow")):  # listed sorted: a_cat, b_dog, c_cow
            for i in range(per_class):
                h, w = (size if i == 0 else (size[0] + 2 * i + c, size[1] + i))
                write(os.path.join(root, split, name, f"{i}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    write(os.path.join(root, "train", "a_cat", "rgba.png"), rng.integers(0, 256, (*size, 4), dtype=np.uint8))
    write(os.path.join(root, "train", "b_dog", "grey.png"), rng.integers(0, 256, (*size, 1), dtype=np.uint8))
    write(os.path.join(root, "test", "c_cow", "palette.png"), rng.integers(0, 256, (*size, 3), dtype=np.uint8),
          mode="P")
    return f"folder:{root}"


def pipeline_images(dataset: str, image_size=None, heldout=1, seed=0):
    """What the search's pipeline gives: (train_plain, heldout, test) as (images, labels), and its class names."""
    from nse_tf.data.pipeline import DataConfig, load_splits

    splits = load_splits(DataConfig(dataset, image_size=image_size, heldout_examples=heldout, seed=seed,
                                    batch_size=4, augment=False))

    def gather(ds):
        pairs = list(ds.unbatch().as_numpy_iterator())
        return np.asarray([x for x, _ in pairs]), np.asarray([y for _, y in pairs])

    return gather(splits.train_plain), gather(splits.heldout), gather(splits.test), splits.class_names


@pytest.mark.parametrize("image_size", [None, 16])
def test_a_folder_reads_as_the_search_reads_it(tmp_path, image_size):
    dataset = mixed_folder(tmp_path)
    data = load_arrays(dataset, image_size=image_size)
    (x_tr, y_tr), (x_ho, y_ho), (x_te, y_te), classes = pipeline_images(dataset, image_size, heldout=3, seed=5)
    assert data.class_names == classes == ("a_cat", "b_dog", "c_cow") and data.num_classes == 3
    assert data.x_train.dtype == np.uint8 and data.x_train.shape[1:] == ((12, 10, 3) if image_size is None
                                                                          else (16, 16, 3))
    split = heldout_arrays(data, 3, 5)
    np.testing.assert_array_equal(split.y_train, y_tr)
    np.testing.assert_array_equal(split.y_test, y_ho)
    np.testing.assert_array_equal(data.y_test, y_te)
    # Without a size every image is brought to the first one's size and rounded in both readers: equal. With
    # one the pipeline's antialiased resize stays float: rounded here, so at most half a grey level away.
    tolerance = 0 if image_size is None else 0.5 + 1e-3
    for mine, theirs in ((split.x_train, x_tr), (split.x_test, x_ho), (data.x_test, x_te)):
        assert np.abs(mine.astype(np.float32) - theirs).max() <= tolerance


def test_large_grey_images_are_centre_cropped_as_the_search_does(tmp_path):
    """Over 64 pixels a side the pipeline evaluates on a centre crop of the image enlarged by 1/0.875; RGB
    PNGs in a grey folder become grey as TensorFlow's PNG decoder makes them."""
    rng = np.random.default_rng(1)
    for i in range(3):
        write(tmp_path / "x" / f"{i}.png", rng.integers(0, 256, (70, 66, 1), dtype=np.uint8))
        write(tmp_path / "y" / f"{i}.png", rng.integers(0, 256, (72 + i, 66, 3), dtype=np.uint8))
    dataset = f"folder:{tmp_path}"
    for image_size in (None, 68):
        data = load_arrays(dataset, image_size=image_size)
        (x_tr, y_tr), (x_ho, y_ho), _, _ = pipeline_images(dataset, image_size, heldout=1)
        split = heldout_arrays(data, 1, 0)
        assert split.x_train.shape[1:] == ((70, 66, 1) if image_size is None else (68, 68, 1))
        np.testing.assert_array_equal(split.y_train, y_tr)
        assert np.abs(split.x_train.astype(np.float32) - x_tr).max() <= 0.5 + 1e-3
        assert np.abs(split.x_test.astype(np.float32) - x_ho).max() <= 0.5 + 1e-3


def test_jpeg_and_bmp_decode_close_to_tensorflow(tmp_path):
    """JPEG decoders may round the inverse DCT differently (TensorFlow's and Pillow's libjpeg): a few levels."""
    rng = np.random.default_rng(2)
    smooth = np.clip(np.cumsum(rng.integers(-8, 9, (16, 16, 3)), axis=1) + 128, 0, 255).astype(np.uint8)
    write(tmp_path / "a" / "0.jpg", smooth, "JPEG")
    write(tmp_path / "b" / "0.bmp", smooth, "BMP")
    data = load_arrays(f"folder:{tmp_path}")
    (x_tr, _), (x_ho, _), _, _ = pipeline_images(f"folder:{tmp_path}", heldout=1)
    theirs = np.concatenate([x_ho, x_tr]) if data.y_train[0] == 0 else np.concatenate([x_tr, x_ho])
    np.testing.assert_array_equal(data.x_train[1], smooth)  # BMP: lossless
    assert np.abs(data.x_train.astype(np.float32) - theirs).max() <= 4
    write(tmp_path / "grey" / "a" / "0.png", smooth[:, :, :1])  # the first image is grey: RGB JPEGs read as grey
    write(tmp_path / "grey" / "b" / "0.jpg", smooth, "JPEG")
    data = load_arrays(f"folder:{tmp_path / 'grey'}")
    (x_tr, _), (x_ho, _), _, _ = pipeline_images(f"folder:{tmp_path / 'grey'}", heldout=1)
    theirs = np.concatenate([x_ho, x_tr]) if data.y_train[0] == 0 else np.concatenate([x_tr, x_ho])
    assert data.x_train.shape == (2, 16, 16, 1) and np.abs(data.x_train.astype(np.float32) - theirs).max() <= 4


def test_resize_is_tensorflows_bilinear():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (9, 13, 2)).astype(np.uint8)
    import tensorflow as tf

    for out_hw in ((4, 5), (9, 13), (20, 7)):
        for antialias in (False, True):
            expected = tf.image.resize(image, out_hw, antialias=antialias).numpy()
            np.testing.assert_allclose(images.resize(image, out_hw, antialias), expected, atol=2e-3)


def test_a_bad_folder_names_its_file(tmp_path):
    write(tmp_path / "a" / "0.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "a" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # a PNG header, then nothing
    with pytest.raises(DataFileError, match="1.png' cannot be decoded"):
        load_arrays(f"folder:{tmp_path}")
    (tmp_path / "a" / "1.png").write_bytes(b"no image at all")
    with pytest.raises(DataFileError, match="1.png' is not a JPEG, PNG, GIF or BMP"):
        load_arrays(f"folder:{tmp_path}")
    with pytest.raises(FileNotFoundError, match="nope"):
        load_arrays(f"folder:{tmp_path / 'nope'}")
    os.makedirs(tmp_path / "empty" / "train" / "x")
    with pytest.raises(DatasetError, match="has no images"):
        load_arrays(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(DatasetError, match="image_size"):
        load_arrays("fashion_mnist", image_size=0)


def test_the_folder_reader_needs_no_tensorflow(tmp_path):
    """Retraining runs under JAX where TensorFlow is absent: reading a folder must not import it."""
    mixed_folder(tmp_path)
    code = ("import sys\nfrom nse_tf.data.arrays import load_arrays, heldout_arrays\n"
            f"d = load_arrays('folder:{tmp_path}', image_size=8)\nheldout_arrays(d, 2, 0)\n"
            "print(d.x_train.shape, d.x_test.shape, 'tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["(14,", "8,", "8,", "3)", "(7,", "8,", "8,", "3)", "False"]


def test_tfds_arrays_are_what_the_search_pipeline_gives(tmp_path, monkeypatch):
    """``tfds:`` (which may need TensorFlow) comes through the search's pipeline: the whole train split in its
    order, and the search's held-out split is its first images whatever the seed. A generated 6-class builder
    (tests/test_data.py's, under another name) is prepared in ``tmp_path``."""
    from tests.test_data import TINY_BUILDER

    package = tmp_path / "nse_arrays_fixture"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tiny.py").write_text(TINY_BUILDER.replace("NseTinyImages", "NseTinyArrays"))
    monkeypatch.syspath_prepend(str(tmp_path))
    import nse_arrays_fixture.tiny  # noqa: F401  (registers tfds:nse_tiny_arrays)

    data_dir = str(tmp_path / "tfds")
    data = load_arrays("tfds:nse_tiny_arrays", data_dir)
    from nse_tf.data.pipeline import DataConfig, load_splits

    splits = load_splits(DataConfig("tfds:nse_tiny_arrays", data_dir, heldout_examples=4, seed=3, batch_size=4,
                                    augment=False))

    def gather(ds):
        pairs = list(ds.unbatch().as_numpy_iterator())
        return np.asarray([x for x, _ in pairs]), np.asarray([y for _, y in pairs])

    assert data.x_train.shape == (30, 8, 8, 1) and data.x_test.shape == (12, 8, 8, 1) and data.num_classes == 6
    split = heldout_arrays(data, 4, 3)  # the first 4, whatever the seed, as the pipeline holds out
    for (images, labels), ds in (((split.x_train, split.y_train), splits.train_plain),
                                 ((split.x_test, split.y_test), splits.heldout),
                                 ((data.x_test, data.y_test), splits.test)):
        x, y = gather(ds)
        np.testing.assert_array_equal(images, x)
        np.testing.assert_array_equal(labels, y)
