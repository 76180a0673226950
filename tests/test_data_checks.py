"""Issue 31's data faults, refused at load with one line naming the file, array or class: npz pixels that are NaN,
infinite, complex, out of 0-255 or scaled to 0-1 (unless that scale is meant), npz splits of two image sizes,
classes without training images, empty class folders, test-only classes, and images whose data is truncated or
garbled (named by path before the search's pipeline, which decodes only as it trains, reads them).
Nothing here imports TensorFlow or Keras: numpy arrays and PNGs written by Pillow, so the file runs in seconds."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from PIL import Image

from nse_tf.data import checks, folders, images
from nse_tf.data.arrays import load_arrays
from nse_tf.data.idx import DataFileError, DatasetError


# ---- npz: pixels, sizes, classes ----

def write_npz(path, x_train=None, y_train=None, x_test=None, y_test=None) -> str:
    """An npz dataset of 6 training and 3 test 4x4 grey images of 3 classes; any array may be replaced."""
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (6, 4, 4, 1), dtype=np.uint8), "y_train": np.arange(6) % 3,
              "x_test": rng.integers(0, 256, (3, 4, 4, 1), dtype=np.uint8), "y_test": np.arange(3)}
    given = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    arrays.update({k: v for k, v in given.items() if v is not None})
    np.savez(path, **arrays)
    return f"npz:{path}"


def floats(values, shape=(6, 4, 4, 1)) -> np.ndarray:
    x = np.full(shape, 100.0, np.float32)
    x.flat[:len(values)] = values
    return x


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": floats([np.nan, np.nan])}, r"x_train: 2 NaN pixel value\(s\)"),
    ({"x_test": floats([np.inf], (3, 4, 4, 1))}, r"x_test: 1 infinite pixel value\(s\)"),
    ({"x_train": floats([np.nan, -np.inf])}, "x_train: 1 NaN, 1 infinite"),
    ({"x_train": np.full((6, 4, 4, 1), 3 + 1j)}, "x_train: complex pixels"),
    ({"x_train": np.full((6, 4, 4, 1), 1020, np.int64)}, "x_train: integer pixels from 1020 to 1020; they must lie "
                                                         "in 0-255"),
    ({"x_test": np.full((3, 4, 4, 1), -1, np.int16)}, "x_test: integer pixels from -1"),
    ({"x_train": floats([-0.5])}, "x_train: float pixels from -0.5 to 100; they must lie in 0-255"),
    ({"x_train": floats([300.0])}, "float pixels from 100 to 300"),
    ({"x_train": np.full((6, 4, 4, 1), 0.5, np.float32)}, "x_train: float pixels all lie in 0-0.5, as if scaled to "
                                                          "0-1.*multiply them by 255 .*allow_0_1_pixels"),
    ({"x_train": np.ones((6, 4, 4, 1), bool)}, "x_train: pixels of dtype bool"),
    ({"x_test": np.zeros((3, 5, 4, 1), np.uint8)}, "x_train holds 4x4x1 images but x_test 5x4x1"),
    ({"x_test": np.zeros((3, 4, 4, 3), np.uint8)}, "x_train holds 4x4x1 images but x_test 4x4x3"),
    ({"y_test": np.array([0, 1, 3])}, r"y_test holds label\(s\) 3 that no training image has \(y_train's labels: "
                                      r"0, 1, 2\)"),
    ({"y_train": np.array([0, 2, 4, 0, 2, 4]), "y_test": np.array([0, 2, 4])},
     r"y_train has no images of class\(es\) 1, 3 \(its labels run 0-4\)"),
    ({"y_train": np.array([1, 2, 3, 1, 2, 3]), "y_test": np.array([1, 2, 3])}, r"class\(es\) 0 "),
], ids=["nan", "inf", "nan and inf", "complex", "int 1020", "int negative", "float negative", "float 300",
        "scaled 0-1", "bool", "test size", "test channels", "test-only label", "label gaps", "labels from 1"])
def test_bad_npz_arrays_are_refused_naming_the_array(tmp_path, arrays, message):
    dataset = write_npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(DatasetError, match=message) as caught:
        load_arrays(dataset)
    assert str(tmp_path / "d.npz") in str(caught.value) and "\n" not in str(caught.value)


def test_0_1_pixels_load_when_that_scale_is_meant(tmp_path):
    dataset = write_npz(tmp_path / "d.npz", x_train=np.full((6, 4, 4, 1), 0.5, np.float32),
                        x_test=np.full((3, 4, 4, 1), 1.0, np.float32))
    data = load_arrays(dataset, allow_0_1_pixels=True)
    assert data.x_train.max() == 0.5 and data.num_classes == 3
    with pytest.raises(TypeError, match="allow_0_1_pixels"):
        load_arrays(dataset, allow_0_1_pixels="yes")


def test_good_npz_arrays_still_load(tmp_path):
    """uint8, int64 in 0-255, and float pixels in 0-255 (not all below 1)."""
    for x_train in (None, np.full((6, 4, 4, 1), 255, np.int64), floats([0.0, 254.5])):
        data = load_arrays(write_npz(tmp_path / "d.npz", x_train=x_train))
        assert data.x_train.shape == (6, 4, 4, 1) and data.num_classes == 3
    data = load_arrays(write_npz(tmp_path / "three.npz", x_train=np.zeros((6, 4, 4), np.uint8),
                                 x_test=np.zeros((3, 4, 4), np.uint8)))  # (N, H, W): one channel added to both
    assert data.x_test.shape == (3, 4, 4, 1)


def test_the_checks_scan_no_array_sized_temporary_on_the_good_path():
    """min and max see NaN (it propagates) and infinities, so the counting only runs for a bad array."""
    checks.check_pixels(np.zeros((2, 3, 3, 1), np.uint8) + 7, "x")
    with pytest.raises(DatasetError, match="x: 1 NaN"):
        checks.check_pixels(np.array([[[[np.nan]], [[2.0]]]]), "x")


# ---- folder: empty classes, test-only classes, damaged images ----

def png(path, value: int = 40, size=(6, 8)) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full(size, value, np.uint8)).save(path)
    return str(path)


def small_folder(root) -> str:
    """train/ and test/ of classes a and b, two 6x8 grey PNGs each in train, one in test."""
    for split, count in (("train", 2), ("test", 1)):
        for name in ("a", "b"):
            for i in range(count):
                png(os.path.join(root, split, name, f"{i}.png"), 40 * i)
    return str(root)


def test_a_good_folder_loads(tmp_path):
    data = load_arrays(f"folder:{small_folder(tmp_path)}")
    assert data.class_names == ("a", "b") and data.x_train.shape == (4, 6, 8, 1) and len(data.y_test) == 2


@pytest.mark.parametrize("split", ["train", "test"])
def test_an_empty_class_folder_is_refused_naming_it(tmp_path, split):
    root = small_folder(tmp_path)
    os.makedirs(os.path.join(root, split, "c"))
    if split == "test":
        png(os.path.join(root, "train", "c", "0.png"))
    (tmp_path / split / "c" / "notes.txt").write_text("no image here")
    with pytest.raises(DatasetError, match=re.escape(f"class folder '{tmp_path / split / 'c'}' has no images")
                       + ".*remove the folder"):
        load_arrays(f"folder:{root}")


def test_a_class_only_in_test_is_refused_naming_it(tmp_path):
    root = small_folder(tmp_path)
    png(os.path.join(root, "test", "c", "0.png"))
    with pytest.raises(DatasetError, match=re.escape(f"class folder '{tmp_path / 'test' / 'c'}' is not a class of "
                                                     "the training folder") + r".*\['a', 'b'\]\): add its training"):
        load_arrays(f"folder:{root}")


def truncate(path: str, keep: float = 0.5) -> None:
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(raw[:int(len(raw) * keep)])


def flip_idat_crc(path: str) -> None:
    """A PNG whose IDAT checksum is wrong: libpng (TensorFlow's decoder) refuses it, Pillow's decoder does not."""
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    start = raw.find(b"IDAT")
    length = int.from_bytes(raw[start - 4:start], "big")
    raw[start + 4 + length] ^= 0xFF
    with open(path, "wb") as f:
        f.write(raw)


def garble(path: str) -> None:
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    raw[len(raw) // 2:len(raw) // 2 + 8] = b"\x00garble\x00"
    with open(path, "wb") as f:
        f.write(raw)


@pytest.mark.parametrize("fmt, damage", [
    ("PNG", truncate), ("PNG", flip_idat_crc), ("PNG", garble), ("JPEG", truncate), ("GIF", truncate),
    ("BMP", truncate),
], ids=["png truncated", "png checksum", "png garbled", "jpeg truncated", "gif truncated", "bmp truncated"])
def test_a_damaged_image_is_named_by_its_path_at_listing(tmp_path, fmt, damage):
    """The listing both readers share refuses it, so the search stops before training, naming the file."""
    root = small_folder(tmp_path)
    rng = np.random.default_rng(0)
    bad = str(tmp_path / "train" / "b" / f"bad.{fmt.lower()}")
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(bad, fmt)
    damage(bad)
    with pytest.raises(DataFileError, match=re.escape(f"image '{bad}' cannot be decoded") + ".*remove or replace it"):
        folders.list_folder(root, f"folder:{root}")
    with pytest.raises(DataFileError, match=re.escape(f"image '{bad}' cannot be decoded")):
        load_arrays(f"folder:{root}")


def test_verified_images_are_not_read_again_unless_they_change(tmp_path, monkeypatch):
    """The search lists its folder every round; a file rewritten since is verified again."""
    root = small_folder(tmp_path)
    folders.list_folder(root, "x")
    seen: list[str] = []
    monkeypatch.setattr(images, "verify_image", seen.append)
    folders.list_folder(root, "x")
    assert seen == []
    path = png(tmp_path / "train" / "a" / "0.png", 200, (6, 9))
    folders.list_folder(root, "x")
    assert seen == [path]


def test_the_header_check_names_a_non_image_before_any_image_is_verified(tmp_path):
    """The bad-input catalogue's folder holds header-only PNGs beside a file that is no image at all: that file
    is the one named, as before the data was verified."""
    root = tmp_path / "images"
    for i in range(2):
        (root / "cat").mkdir(parents=True, exist_ok=True)
        (root / "cat" / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (root / "cat" / "broken.png").write_bytes(b"this is no image")
    with pytest.raises(DataFileError, match="broken.png' is not a JPEG, PNG, GIF or BMP"):
        folders.list_folder(str(root), "x")

