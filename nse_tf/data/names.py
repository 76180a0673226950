"""The one grammar of dataset strings, read by both data stacks: the tf.data pipeline of the search and the
in-memory arrays of retraining (which must also run under JAX, where TensorFlow is absent). Each stack says
which kinds it reads, so one string means the same data everywhere and an unsupported kind is named alike."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from nse_tf.data.idx import DatasetError

FORMS = {
    "fashion_mnist": "'fashion_mnist' (the IDX files)",
    "npz": "'npz:<path>' (arrays x_train, y_train, x_test, y_test)",
    "tfds": "'tfds:<name>' (e.g. 'tfds:cifar10', 'tfds:imagenette', 'tfds:imagenet2012')",
    "folder": "'folder:<path>' (one sub-folder per class, optionally under train/ and test/)",
}
PIPELINE_KINDS = ("fashion_mnist", "tfds", "folder")  # nse_tf.data.pipeline (search, supernet benchmarks)
# nse_tf.data.arrays (retraining, evaluation, zoo entries): every kind the search reads, and npz
ARRAY_KINDS = ("fashion_mnist", "npz", "tfds", "folder")


@dataclasses.dataclass(frozen=True)
class DatasetName:
    """A parsed dataset string: its kind and the argument after ``<kind>:`` (empty for fashion_mnist)."""

    kind: str
    argument: str = ""


def accepted_forms(kinds: Sequence[str]) -> str:
    forms = [FORMS[k] for k in kinds]
    return forms[0] if len(forms) == 1 else ", ".join(forms[:-1]) + f", or {forms[-1]}"


def parse_dataset(value: object, kinds: Sequence[str] = tuple(FORMS), reader: str = "") -> DatasetName:
    """``value`` parsed; a string of no known form, or of a kind that ``reader`` (the stack) does not read, is
    a ``DatasetError`` listing what is accepted there."""
    if not isinstance(value, str):
        raise DatasetError(f"dataset must be a string, got {value!r}; accepted: {accepted_forms(kinds)}")
    kind, sep, argument = value.partition(":")
    if value == "fashion_mnist":
        name = DatasetName("fashion_mnist")
    elif sep and kind in FORMS and kind != "fashion_mnist" and argument.strip():
        name = DatasetName(kind, argument.strip())
    else:
        raise DatasetError(f"unknown dataset {value!r}; accepted: {accepted_forms(kinds)}")
    if name.kind not in kinds:
        raise DatasetError(f"dataset {value!r} is not read by {reader or 'this tool'}: use {accepted_forms(kinds)}")
    return name
