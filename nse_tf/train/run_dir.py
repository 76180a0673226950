"""A retraining's run directory: the guard that it holds this network and recipe, its history, and loading the trained model back."""

from __future__ import annotations

import csv
import os
from typing import Any

from nse_tf.space.architecture import NetworkSpec
from nse_tf.train.config import (CONFIG_NAME, HISTORY_NAME, NETWORK_NAME, RESULT_NAME, WEIGHTS_NAME,
                                 RunMismatchError, TrainConfig, TrainError)
from nse_tf.utils.atomic import atomic_write_json, atomic_write_text
from nse_tf.utils.state_files import NUMBER, damaged, read_json


# Settings a run records only where they are set (a run without them keeps today's config file), and a rerun
# must match: the size its images were read at, and the zoo entry it was fine-tuned from.
OPTIONAL_SETTINGS = ("image_size", "init_from")


def check_run_dir(run_dir: str, spec: NetworkSpec, config: TrainConfig, dataset: str,
                  settings: dict[str, Any] | None = None) -> None:
    """A run directory belongs to one network, recipe and dataset (and ``settings``, of ``OPTIONAL_SETTINGS``):
    a rerun must not mix them."""
    path = os.path.join(run_dir, CONFIG_NAME)
    optional = {k: v for k, v in (settings or {}).items() if v is not None}
    unknown = set(optional) - set(OPTIONAL_SETTINGS)
    if unknown:
        raise ValueError(f"unknown run settings {sorted(unknown)}")
    wanted = {"train": config.to_dict(), "network": spec.to_dict(), "dataset": dataset, **optional}
    if not os.path.exists(path):
        from nse_tf.nets.layers import INITIALIZATION

        os.makedirs(run_dir, exist_ok=True)
        atomic_write_json(path, {**wanted, "initialization": INITIALIZATION})  # how this run's weights started
        spec.save(os.path.join(run_dir, NETWORK_NAME))
        return
    saved = read_run_config(run_dir)
    for key in ("network", "dataset", "train", *OPTIONAL_SETTINGS):
        if saved.get(key) != wanted.get(key):
            diff = key
            if key == "train":
                diff = ", ".join(k for k in wanted[key] if saved[key].get(k) != wanted[key][k])
            raise RunMismatchError(f"{run_dir} holds a run with a different {key} ({diff}); "
                             "use a new --run_dir or the original settings")


# What to do about a damaged file of a run directory.
CONFIG_FIX = "delete it and rerun the run's tools/train.py command with its original flags (it is rewritten from them)"
RESULT_FIX = "delete it and rerun the command that trained the run (it trains again)"
RESULT_MISSING = "the run has not finished: rerun its tools/train.py command to finish it"
# The fields a reader relies on, with their JSON types.
CONFIG_FIELDS = {"network": dict, "train": dict, "dataset": str}
RESULT_FIELDS = {"top1": NUMBER, "top5": NUMBER, "epochs": int, "seconds": NUMBER, "backend": str}


def read_run_config(run_dir: str) -> dict[str, Any]:
    """The run's ``train_config.json``: network, recipe, dataset and the optional settings it was trained with; a
    damaged or mistyped one is a TrainError line naming it (FileNotFoundError where it is absent)."""
    path = os.path.join(run_dir, CONFIG_NAME)
    return read_json(path, CONFIG_FIX, fields=CONFIG_FIELDS, error=TrainError)


def read_result(run_dir: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """A finished run's ``result.json``, holding ``fields`` (default: every one ``TrainResult`` takes) with their
    types; a missing, damaged or mistyped one is a TrainError line naming it."""
    path = os.path.join(run_dir, RESULT_NAME)
    result = read_json(path, RESULT_FIX, fields=RESULT_FIELDS if fields is None else fields, error=TrainError,
                       missing=RESULT_MISSING)
    processes = result.get("processes", [])
    if not isinstance(processes, list) or not all(isinstance(p, dict) for p in processes):
        raise damaged(path, "'processes' is not an array of objects", RESULT_FIX, TrainError)
    return result


def read_history(run_dir: str) -> list[dict[str, str]]:
    path = os.path.join(run_dir, HISTORY_NAME)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def trim_history(run_dir: str, epochs_done: int) -> None:
    """Drop the history rows of epochs after ``epochs_done`` (0-based ``epoch`` >= it): a run resumed from an
    earlier checkpoint than the newest (a damaged newest one, or a kill between the row and the checkpoint)
    trains them again, and CSVLogger appends their rows anew."""
    path = os.path.join(run_dir, HISTORY_NAME)
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().splitlines(keepends=True)
    if not lines:
        return
    header = next(csv.reader([lines[0]]))
    if "epoch" not in header:
        return
    column = header.index("epoch")
    kept = [lines[0]]
    for line in lines[1:]:
        row = next(csv.reader([line]), [])
        try:
            if int(row[column]) >= epochs_done:
                continue
        except (IndexError, ValueError):
            pass
        kept.append(line)
    if len(kept) < len(lines):
        atomic_write_text(path, "".join(kept))


def load_trained_run(run_dir: str, check_size: bool = True) -> tuple[Any, str]:
    """The trained model of a tools/train.py run directory and the dataset it was trained on; a network beyond
    the limits of ``nse_tf.space.limits`` is refused before it is built unless ``check_size`` is False."""
    from nse_tf.nets.child import build_child

    weights = os.path.join(run_dir, WEIGHTS_NAME)
    if not os.path.exists(weights):
        raise TrainError(f"{run_dir} has no {WEIGHTS_NAME}: training has not finished there")
    saved = read_run_config(run_dir)
    model = build_child(NetworkSpec.from_dict(saved["network"], source=os.path.join(run_dir, CONFIG_NAME),
                                              check_size=check_size))
    model.load_weights(weights)
    return model, saved["dataset"]
