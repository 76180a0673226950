"""A retraining's run directory: the guard that it holds this network and recipe, its history, and loading the trained model back."""

from __future__ import annotations

import csv
import json
import os
from typing import Any

from nse_tf.space.architecture import NetworkSpec
from nse_tf.train.config import CONFIG_NAME, HISTORY_NAME, NETWORK_NAME, WEIGHTS_NAME, TrainConfig, TrainError
from nse_tf.utils.atomic import atomic_write_json


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
            raise TrainError(f"{run_dir} holds a run with a different {key} ({diff}); "
                             "use a new --run_dir or the original settings")


def read_run_config(run_dir: str) -> dict[str, Any]:
    """The run's ``train_config.json``: network, recipe, dataset and the optional settings it was trained with."""
    path = os.path.join(run_dir, CONFIG_NAME)
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise TrainError(f"{path}: not valid JSON ({err})") from None


def read_history(run_dir: str) -> list[dict[str, str]]:
    path = os.path.join(run_dir, HISTORY_NAME)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def load_trained_run(run_dir: str) -> tuple[Any, str]:
    """The trained model of a tools/train.py run directory and the dataset it was trained on."""
    from nse_tf.nets.child import build_child

    weights = os.path.join(run_dir, WEIGHTS_NAME)
    if not os.path.exists(weights):
        raise TrainError(f"{run_dir} has no {WEIGHTS_NAME}: training has not finished there")
    saved = read_run_config(run_dir)
    model = build_child(NetworkSpec.from_dict(saved["network"], source=os.path.join(run_dir, CONFIG_NAME)))
    model.load_weights(weights)
    return model, saved["dataset"]
