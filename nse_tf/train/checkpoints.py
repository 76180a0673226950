"""Per-epoch checkpoints of a retraining: the last two kept, each read back before an older one goes, and a resume
that falls back past a damaged newest one (atomic, resumable, with the processes that ran it).

``checkpoint.json`` names the newest checkpoint and the one before (``previous``), each with the dropout RNG states
and process records of its epoch and the size, sha256 and HDF5 groups its weights file was read back with. A
truncated, emptied, garbled or missing newest weights file is found before anything loads, and the run resumes from
the one before with one log line; if neither is intact, one line names the files."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import time
from typing import Any, Callable, Collection

import numpy as np

from nse_tf.train.config import CHECKPOINT_STATE_NAME, TrainError
from nse_tf.utils import state_files
from nse_tf.utils.atomic import atomic_write_json, staged

KEEP = 2  # the newest checkpoint, and the one before in case the newest is damaged
_FIX = "delete the run directory to start over"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One checkpoint as ``checkpoint.json`` records it. ``bytes``, ``sha256`` and ``groups`` (the weights file's
    top-level HDF5 groups) are what it was read back with; None in checkpoints from before they were recorded."""

    epochs_done: int
    weights: str
    seeds: list[Any]
    processes: list[dict[str, Any]]
    bytes: int | None = None
    sha256: str | None = None
    groups: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["groups"] = None if self.groups is None else list(self.groups)
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_json(cls, data: Any, path: str) -> "Checkpoint":
        fields = {"epochs_done": int, "weights": str, "seeds": list}
        if not isinstance(data, dict):
            raise state_files.damaged(path, f"a checkpoint is {state_files.json_type(data)}, not an object", _FIX,
                                      TrainError, "unreadable checkpoint state")
        state_files.check_fields(data, fields, path, _FIX, TrainError, "unreadable checkpoint state")
        weights = data["weights"]
        if os.path.basename(weights) != weights or not weights.endswith(".weights.h5"):
            raise state_files.damaged(path, f"it names {weights!r}, not a weights file of the run directory", _FIX,
                                      TrainError, "unreadable checkpoint state")
        processes = data.get("processes", [])
        if not isinstance(processes, list) or not all(isinstance(p, dict) for p in processes):
            raise state_files.damaged(path, "'processes' is not an array of objects", _FIX, TrainError,
                                      "unreadable checkpoint state")
        groups = data.get("groups")
        return cls(int(data["epochs_done"]), weights, data["seeds"], processes, data.get("bytes"),
                   data.get("sha256"), None if groups is None else tuple(groups))


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


def read_back(path: str) -> dict[str, Any]:
    """Open the Keras weights file ``path`` as HDF5 and read every dataset in it; its size, sha256 and top-level
    groups. OSError or ValueError when it is not whole (h5py raises both for truncated or garbled files)."""
    import h5py

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
        size = f.tell()
    count = 0
    with h5py.File(path, "r") as h5:
        groups = tuple(sorted(h5.keys()))

        def visit(name: str, item: Any) -> None:
            nonlocal count
            if isinstance(item, h5py.Dataset):
                item[()]
                count += 1

        h5.visititems(visit)
    if not count:
        raise ValueError("it holds no weights")
    return {"bytes": size, "sha256": digest.hexdigest(), "groups": groups}


def check_weights(run_dir: str, checkpoint: Checkpoint) -> None:
    """ValueError saying how ``checkpoint``'s weights file is damaged (missing, another size or sha256 than it
    was written with, not HDF5, groups missing); nothing when it is intact."""
    path = os.path.join(run_dir, checkpoint.weights)
    if not os.path.exists(path):
        raise ValueError("missing")
    size = os.path.getsize(path)
    if checkpoint.bytes is not None and size != checkpoint.bytes:
        raise ValueError(f"{'empty' if size == 0 else f'{size:,} bytes'}, written with {checkpoint.bytes:,}")
    try:
        facts = read_back(path)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ValueError(f"not a whole weights file: {' '.join(str(err).split())[:160]}") from None
    if checkpoint.sha256 is not None and facts["sha256"] != checkpoint.sha256:
        raise ValueError("its contents changed since it was written (sha256 differs)")
    missing = sorted(set(checkpoint.groups or ()) - set(facts["groups"]))
    if missing:
        raise ValueError(f"it lacks the groups {missing}")


def read_checkpoints(run_dir: str) -> list[Checkpoint]:
    """The checkpoints ``checkpoint.json`` records, newest first ([] for a fresh run); TrainError (one line naming
    the file) when it is damaged."""
    path = os.path.join(run_dir, CHECKPOINT_STATE_NAME)
    if not os.path.exists(path):
        return []
    data = state_files.read_json(path, _FIX, error=TrainError, label="unreadable checkpoint state")
    newest = Checkpoint.from_json(data, path)
    previous = data.get("previous")
    return [newest] + ([Checkpoint.from_json(previous, path)] if previous is not None else [])


def usable_checkpoint(run_dir: str, log: Callable[[str], None] = print) -> Checkpoint | None:
    """The newest intact checkpoint (None for a fresh run). A damaged newest one gives one log line and the one
    before; none intact is one TrainError line naming the files."""
    damaged = []
    for checkpoint in read_checkpoints(run_dir):
        try:
            check_weights(run_dir, checkpoint)
        except ValueError as err:
            damaged.append(f"{os.path.join(run_dir, checkpoint.weights)} ({err})")
            continue
        if damaged:
            log(f"{run_dir}: the newest checkpoint is damaged: {'; '.join(damaged)}; resuming from "
                f"{checkpoint.weights} (epoch {checkpoint.epochs_done}) instead")
        return checkpoint
    if damaged:
        raise TrainError(f"no intact checkpoint to resume from: {'; '.join(damaged)}; delete "
                         f"{os.path.join(run_dir, CHECKPOINT_STATE_NAME)} and the checkpoint-*.weights.h5 files to "
                         "train the run from its start")
    return None


def save_checkpoint(model: Any, run_dir: str, epochs_done: int, processes: list[dict[str, Any]]) -> None:
    """``checkpoint-<epoch>.weights.h5`` (model and optimizer), read back from disk, then the JSON that names it
    and the one before, both atomic; older checkpoints go only after that, so a kill or a full disk at any moment
    leaves the last two consistent checkpoints (or the one there was).

    The JSON also holds the dropout RNG states (not part of Keras weights files), so a resumed run
    draws the same dropout masks as an uninterrupted one, and the records of the processes so far.
    """
    name = f"checkpoint-{epochs_done}.weights.h5"
    path = os.path.join(run_dir, name)
    seeds = [np.asarray(g.state.value).tolist() for g in seed_generators(model)]
    previous = f"epoch {epochs_done - 1}'s checkpoint is intact" if epochs_done > 1 else "nothing is lost"
    try:
        older = [c for c in _recorded(run_dir) if c.weights != name][:KEEP - 1]
        with staged(path) as temp:
            model.save_weights(temp, overwrite=True)
            _sync(temp)
            try:
                facts = read_back(temp)
            except (OSError, ValueError, KeyError, RuntimeError) as err:
                raise TrainError(f"{run_dir}: the checkpoint of epoch {epochs_done} does not read back "
                                 f"({' '.join(str(err).split())[:160]}); {previous}: check the disk and rerun to "
                                 "resume") from None
        newest = Checkpoint(epochs_done, name, seeds, processes, facts["bytes"], facts["sha256"], facts["groups"])
        atomic_write_json(os.path.join(run_dir, CHECKPOINT_STATE_NAME),
                          {**newest.to_json(), **({"previous": older[0].to_json()} if older else {})})
    except OSError as err:  # a full disk, a lost mount: the previous checkpoints and their JSON are untouched
        if name not in {c.weights for c in _recorded(run_dir)}:
            _remove(path)
        raise TrainError(f"{run_dir}: cannot write the checkpoint of epoch {epochs_done} "
                         f"({err.strerror or err}); {previous}: free the space and rerun to resume") from None
    remove_checkpoints(run_dir, keep={name, *(c.weights for c in older)})


def _recorded(run_dir: str) -> list[Checkpoint]:
    """The checkpoints the run's JSON records, whose files exist; [] where it is unreadable (a save then
    starts the list afresh rather than stop the run)."""
    try:
        return [c for c in read_checkpoints(run_dir) if os.path.exists(os.path.join(run_dir, c.weights))]
    except TrainError:
        return []


def _sync(path: str) -> None:
    """The bytes on disk before the JSON names them (h5py closes without fsync)."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def remove_checkpoints(run_dir: str, keep: str | Collection[str] | None = None) -> None:
    """Every checkpoint weights file but ``keep`` (a name or several), and what killed writes left."""
    kept = {keep} if isinstance(keep, str) else set(keep or ())
    for name in os.listdir(run_dir):
        if name.startswith("checkpoint-") and name.endswith(".weights.h5") and name not in kept:
            os.remove(os.path.join(run_dir, name))
        elif name.startswith(".staging-checkpoint-"):  # what a killed write left
            shutil.rmtree(os.path.join(run_dir, name), ignore_errors=True)


def restore_checkpoint(model: Any, run_dir: str, checkpoint: Checkpoint | None = None,
                       log: Callable[[str], None] = print) -> tuple[int, list[dict[str, Any]]]:
    """Epochs already done (0 for a fresh run) and the records of the processes that ran them; the
    model and its optimizer hold their state. ``checkpoint`` is the one to load (default: ``usable_checkpoint``).
    (Checkpoints from before the records have none.)"""
    checkpoint = checkpoint or usable_checkpoint(run_dir, log)
    if checkpoint is None:
        return 0, []
    generators = seed_generators(model)
    if len(checkpoint.seeds) != len(generators):
        raise TrainError(f"{os.path.join(run_dir, CHECKPOINT_STATE_NAME)}: unreadable checkpoint state "
                         f"({len(checkpoint.seeds)} RNG states for {len(generators)} random layers); {_FIX}")
    model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(run_dir, checkpoint.weights))
    for generator, seed in zip(generators, checkpoint.seeds):
        generator.state.assign(np.asarray(seed, dtype=generator.state.dtype))
    return checkpoint.epochs_done, [dict(p) for p in checkpoint.processes]
