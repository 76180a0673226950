"""Per-epoch checkpoints of a retraining (atomic, resumable, with the processes that ran it)."""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

import numpy as np

from nse_tf.train.config import CHECKPOINT_STATE_NAME, TrainError
from nse_tf.utils.atomic import atomic_write_json, staged


def epoch_checkpoint_callback(run_dir: str, processes: list[dict[str, Any]]) -> Any:
    """A Keras callback that checkpoints model, optimizer and RNG states after every epoch.

    ``processes[-1]`` is this process's record (backend, device, epochs, seconds); it advances with
    each checkpoint and is saved in the same atomic write, so a resumed run knows where every epoch ran.
    """
    import keras

    record, started = processes[-1], time.time()

    class EpochCheckpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            record["epochs"][1] = epoch + 1
            record["seconds"] = round(time.time() - started, 1)
            save_checkpoint(self.model, run_dir, epoch + 1, processes)

    return EpochCheckpoint()


def seed_generators(model: Any) -> list[Any]:
    return [g for layer in model._flatten_layers() for g in getattr(layer, "_seed_generators", [])]


def save_checkpoint(model: Any, run_dir: str, epochs_done: int, processes: list[dict[str, Any]]) -> None:
    """``checkpoint-<epoch>.weights.h5`` (model and optimizer), then the JSON that names it, both atomic;
    older checkpoints go only after that, so a kill at any moment leaves one consistent checkpoint.

    The JSON also holds the dropout RNG states (not part of Keras weights files), so a resumed run
    draws the same dropout masks as an uninterrupted one, and the records of the processes so far.
    """
    name = f"checkpoint-{epochs_done}.weights.h5"
    seeds = [np.asarray(g.state.value).tolist() for g in seed_generators(model)]
    try:
        with staged(os.path.join(run_dir, name)) as path:
            model.save_weights(path, overwrite=True)
        atomic_write_json(os.path.join(run_dir, CHECKPOINT_STATE_NAME),
                          {"epochs_done": epochs_done, "weights": name, "seeds": seeds, "processes": processes})
    except OSError as err:  # a full disk, a lost mount: the previous checkpoint and its JSON are untouched
        previous = f"epoch {epochs_done - 1}'s checkpoint is intact" if epochs_done > 1 else "nothing is lost"
        raise TrainError(f"{run_dir}: cannot write the checkpoint of epoch {epochs_done} "
                         f"({err.strerror or err}); {previous}: free the space and rerun to resume") from None
    remove_checkpoints(run_dir, keep=name)


def remove_checkpoints(run_dir: str, keep: str | None = None) -> None:
    for name in os.listdir(run_dir):
        if name.startswith("checkpoint-") and name.endswith(".weights.h5") and name != keep:
            os.remove(os.path.join(run_dir, name))
        elif name.startswith(".staging-checkpoint-"):  # what a killed write left
            shutil.rmtree(os.path.join(run_dir, name), ignore_errors=True)


def restore_checkpoint(model: Any, run_dir: str) -> tuple[int, list[dict[str, Any]]]:
    """Epochs already done (0 for a fresh run) and the records of the processes that ran them; the
    model and its optimizer hold their state. (Checkpoints from before the records have none.)"""
    state_path = os.path.join(run_dir, CHECKPOINT_STATE_NAME)
    if not os.path.exists(state_path):
        return 0, []
    generators = seed_generators(model)
    try:
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
        epochs_done, weights, seeds = int(state["epochs_done"]), state["weights"], state["seeds"]
        processes = list(state.get("processes", []))
        if len(seeds) != len(generators):
            raise ValueError(f"{len(seeds)} RNG states for {len(generators)} random layers")
    except (ValueError, KeyError, TypeError) as err:
        raise TrainError(f"{state_path}: unreadable checkpoint state ({err}); delete the run directory to "
                         "start over") from None
    model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(run_dir, weights))
    for generator, seed in zip(generators, seeds):
        generator.state.assign(np.asarray(seed, dtype=generator.state.dtype))
    return epochs_done, processes
