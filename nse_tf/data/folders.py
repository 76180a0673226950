"""The layout of a ``folder:<path>`` dataset, read without TensorFlow: which images, which classes, which split.

The search's tf.data pipeline and the retraining's numpy arrays both list a folder here, so a searched pick
retrains on the same images in the same order with the same labels: classes are the sorted sub-folders of the
training tree, ``<root>/train/<class>/*`` with ``<root>/test`` (or ``val``, ``validation``) beside it, else
``<root>/<class>/*`` and no test split.
"""

from __future__ import annotations

import dataclasses
import os

from nse_tf.data.idx import DataFileError, DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TEST_FOLDER_NAMES = ("test", "val", "validation")
# The first bytes of the formats both readers decode: a file without them would otherwise fail mid-training
# (inside the input pipeline, with no file name).
IMAGE_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"GIF87a": "GIF", b"GIF89a": "GIF",
               b"BM": "BMP"}


@dataclasses.dataclass(frozen=True)
class FolderLayout:
    """Every image of a folder dataset with its label, in reading order (class by class, sorted paths)."""

    train_root: str
    test_root: str | None
    class_names: tuple[str, ...]
    train_paths: tuple[str, ...]
    train_labels: tuple[int, ...]
    test_paths: tuple[str, ...]
    test_labels: tuple[int, ...]


def list_class_folder(root: str) -> dict[str, list[str]]:
    """Maps class name -> sorted image paths for one <root>/<class>/* tree (hidden entries skipped)."""
    classes: dict[str, list[str]] = {}
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if entry.startswith(".") or not os.path.isdir(path):
            continue
        classes[entry] = sorted(
            os.path.join(path, f)
            for f in os.listdir(path)
            if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
        )
    return classes


def check_image_header(path: str) -> None:
    """A ``DataFileError`` naming ``path`` unless it starts as a JPEG, PNG, GIF or BMP file does."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as err:
        raise DataFileError(f"image {path!r}: cannot read it ({err.strerror})") from None
    if not any(head.startswith(magic) for magic in IMAGE_MAGIC):
        raise DataFileError(f"image {path!r} is not a JPEG, PNG, GIF or BMP file (it starts with {head[:8]!r}): "
                            "remove or replace it")


# (path, size, mtime) of images verified whole in this process: the search lists its folder again every round.
_VERIFIED: set[tuple[str, int, int]] = set()


def verify_images(paths: list[str]) -> None:
    """Every image's data whole (``images.verify_image``), or a ``DataFileError`` naming the first that is not;
    files verified before in this process and unchanged since are not read again."""
    from nse_tf.data.images import verify_image

    for path in paths:
        try:
            stat = os.stat(path)
        except OSError as err:
            raise DataFileError(f"image {path!r}: cannot read it ({err.strerror})") from None
        key = (path, stat.st_size, stat.st_mtime_ns)
        if key not in _VERIFIED:
            verify_image(path)
            _VERIFIED.add(key)


def check_classes_have_images(tree: dict[str, list[str]], where: str) -> None:
    """A class folder without images is refused: it would count as a class no image teaches (or tests)."""
    for name, files in tree.items():
        if not files:
            raise DatasetError(f"class folder {os.path.join(where, name)!r} has no images "
                               f"({', '.join(IMAGE_EXTENSIONS)}): add its images or remove the folder")


def list_folder(root: str, dataset: str) -> FolderLayout:
    """The layout of the folder ``root`` (named ``dataset`` in errors), every image checked before any is used
    (its header, then its data: ``verify_images``); an empty class folder, or a test class that training lacks,
    is refused."""
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder {root!r} (dataset={dataset!r}) does not exist")
    train_root = os.path.join(root, "train")
    test_root = None
    if os.path.isdir(train_root):
        test_root = next((os.path.join(root, t) for t in TEST_FOLDER_NAMES if os.path.isdir(os.path.join(root, t))),
                         None)
    else:
        train_root = root
    train_tree = list_class_folder(train_root)
    class_names = tuple(train_tree)
    if not class_names:
        raise DatasetError(f"image folder {train_root!r} has no class sub-folders")
    label_of = {name: i for i, name in enumerate(class_names)}

    def flatten(tree: dict[str, list[str]], where: str) -> tuple[list[str], list[int]]:
        paths: list[str] = []
        labels: list[int] = []
        for name, files in tree.items():
            if name not in label_of:
                raise DatasetError(f"class folder {os.path.join(where, name)!r} is not a class of the training "
                                   f"folder {train_root!r} (classes: {list(class_names)}): add its training "
                                   "images there, or remove it")
            paths += files
            labels += [label_of[name]] * len(files)
        return paths, labels

    test_tree = list_class_folder(test_root) if test_root else {}
    train_paths, train_labels = flatten(train_tree, train_root)
    test_paths, test_labels = flatten(test_tree, test_root) if test_root else ([], [])
    if not train_paths:
        raise DatasetError(f"image folder {train_root!r} has no images ({', '.join(IMAGE_EXTENSIONS)})")
    check_classes_have_images(train_tree, train_root)
    if test_root:
        check_classes_have_images(test_tree, test_root)
    for path in train_paths + test_paths:
        check_image_header(path)
    verify_images(train_paths + test_paths)
    return FolderLayout(train_root, test_root, class_names, tuple(train_paths), tuple(train_labels),
                        tuple(test_paths), tuple(test_labels))
