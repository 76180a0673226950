"""A round's checkpoints (kept two deep; an older one is deleted only once a newer one has been read back from
disk; a damaged newest one, or a damaged ``checkpoint`` list, falls back to the newest intact one) and weight
inheritance between rounds."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from typing import Any

import tensorflow as tf

from nse_tf.search.evolution import StateError
from nse_tf.search.round_trainer import RoundState, RoundTrainer
from nse_tf.utils.atomic import atomic_write_json, atomic_write_text

log = logging.getLogger("nse_tf.search")

KEEP = 2  # checkpoints a round keeps: the newest, and the one before in case the newest is damaged
STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's list of a directory's checkpoints
# Every file of checkpoint N: TF's index and data, the host state, and the folder a save writes into first.
_CHECKPOINT_FILE = re.compile(r"ckpt-(\d+)(\.index|\.data-\d{5}-of-\d{5}|\.host\.json|_temp)")
# Temporary files a save killed mid-write leaves: TF's (``checkpoint.tmp<hex>``) and utils.atomic's (``.tmp-*``).
_TEMPORARY_FILE = re.compile(r"checkpoint\.tmp[0-9a-f]+|\.tmp-.*(checkpoint|\.host\.json)")
# What reading a damaged checkpoint raises: the TF reader turns a short read into IndexError and other codes
# into RuntimeError or ValueError, restore ops raise OpError, a missing object AssertionError.
DAMAGE = (OSError, ValueError, KeyError, IndexError, RuntimeError, AssertionError, tf.errors.OpError)


def _reason(err: BaseException) -> str:
    message = getattr(err, "strerror", None) or getattr(err, "message", None) or str(err)
    return " ".join(str(message).split())[:200]


class RoundCheckpoint:
    """TF checkpoint of a round plus the host state it belongs to (same number, written first)."""

    def __init__(self, directory: str, trainer: RoundTrainer, iterators: dict[str, Any], writable: bool):
        self.directory = directory
        # Keras 3 does not expose layers held in lists to tf.train.Checkpoint, so the supernet's variables
        # (BN moving statistics included) are tracked explicitly, keyed by their Keras paths.
        variables = {checkpoint_key(v): v.value for v in trainer.net.weights}
        self.checkpoint = tf.train.Checkpoint(net_variables=variables, weight_opt=trainer.weight_opt,
                                              gate_opt=trainer.gate_opt, **iterators)
        self.writable = writable
        # Opened over a checkpoint list known to be sound (a manager reading a garbled one would start empty
        # and overwrite intact checkpoints); max_to_keep=None: old ones are deleted here, after the read-back.
        self.manager: tf.train.CheckpointManager | None = None
        if writable:
            self._remove_partial_saves()

    def host_path(self, step: int) -> str:
        return os.path.join(self.directory, f"ckpt-{step}.host.json")

    def prefix(self, step: int) -> str:
        return os.path.join(self.directory, f"ckpt-{step}")

    def save(self, state: RoundState) -> None:
        """Write checkpoint ``state.step``, read it back, and only then delete the ones beyond the newest KEEP."""
        if not self.writable:
            return
        manager = self._open()
        step = state.step
        try:
            atomic_write_json(self.host_path(step), state.to_json())
            manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as err:  # a full disk: the checkpoints before stay as they were
            self._remove_failed_save(step)
            raise StateError(f"{self.directory}: cannot write the checkpoint of step {step} ({_reason(err)}); "
                             "the previous checkpoint is intact: free the space and rerun to resume") from None
        try:
            self._verify(step)
        except DAMAGE as err:
            raise StateError(f"{self.directory}: the checkpoint of step {step} does not read back ({_reason(err)}); "
                             "the previous checkpoint is intact: check the disk and rerun to resume") from None
        kept = sorted({_step(p) for p in self.manager.checkpoints} | {step})[-KEEP:]
        self._track(kept)
        self._remove_untracked(kept)

    def restore(self) -> RoundState | None:
        """The newest intact checkpoint's host state (the variables restored); None for a fresh round. A
        damaged newest checkpoint (missing, truncated or corrupt files) gives a warning and the one before it;
        so does a damaged ``checkpoint`` list, the round's checkpoint files on disk being read instead."""
        listed, problem = self._listed()
        if problem is not None:
            log.warning("%s is damaged (%s); looking for the round's checkpoints among its files instead",
                        os.path.join(self.directory, STATE_FILE), problem)
        steps = sorted(set(listed) | set(self._on_disk()), reverse=True)
        damaged = []
        for step in steps:
            path = self.prefix(step)
            try:
                host = self._restore_one(path)
            except DAMAGE as err:
                reason = _reason(err)
                damaged.append(f"{os.path.basename(path)} ({reason})")
                log.warning("checkpoint %s is damaged (%s); trying the one before it", path, reason)
                continue
            if damaged:
                log.warning("resuming from %s, step %d: the newer %s could not be read", path, host.step,
                            "; ".join(damaged))
            if self.writable:  # the damaged ones leave the list: deleted once a newer checkpoint reads back
                older = [s for s in steps if s < step and os.path.exists(f"{self.prefix(s)}.index")]
                kept = sorted(older[:KEEP - 1]) + [step]
                if kept != listed or problem is not None:
                    self._track(kept)
            return host
        if damaged:
            raise StateError(f"{self.directory}: no intact checkpoint of this round: {'; '.join(damaged)}; "
                             f"delete {self.directory} to restart the round from its beginning")
        return None

    def _restore_one(self, path: str) -> RoundState:
        step = _step(path)
        host = self._read_host(step)
        if not os.path.exists(f"{path}.index"):
            raise ValueError(f"{path}.index is missing")
        self.checkpoint.restore(path).assert_existing_objects_matched()
        return host

    def _read_host(self, step: int) -> RoundState:
        host_path = self.host_path(step)
        try:
            with open(host_path, encoding="utf-8") as f:
                return RoundState.from_json(json.load(f))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{host_path}: {err}") from None

    def _verify(self, step: int) -> None:
        """Read checkpoint ``step`` back from disk, every tensor with its checksum, and its host state."""
        self._read_host(step)
        read_back(self.prefix(step))

    def _listed(self) -> tuple[list[int], str | None]:
        return listed_steps(self.directory)

    def _on_disk(self) -> list[int]:
        return steps_on_disk(self.directory)

    def _open(self) -> tf.train.CheckpointManager:
        if self.manager is None:
            _, problem = self._listed()
            if problem is not None:  # saved without a restore: list what is on disk rather than nothing
                self._track(self._on_disk())
            else:
                self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=None)
        return self.manager

    def _track(self, steps: list[int]) -> None:
        """Rewrite the ``checkpoint`` list as ``steps`` (oldest first; relative names, as the manager writes
        them, so a run directory may move) and reopen the manager over it."""
        path = os.path.join(self.directory, STATE_FILE)
        if steps:
            now = time.time()
            lines = [f'model_checkpoint_path: "ckpt-{steps[-1]}"']
            lines += [f'all_model_checkpoint_paths: "ckpt-{s}"' for s in steps]
            lines += [f"all_model_checkpoint_timestamps: {now!r}" for _ in steps]
            lines.append(f"last_preserved_timestamp: {now - 1:.6f}")  # older than every entry: none is dropped
            atomic_write_text(path, "\n".join(lines) + "\n")
        elif os.path.exists(path):
            os.unlink(path)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=None)

    def _remove_untracked(self, kept: list[int]) -> None:
        """Every checkpoint file but those of ``kept``: older checkpoints, damaged ones, failed saves."""
        for name in os.listdir(self.directory):
            match = _CHECKPOINT_FILE.fullmatch(name)
            if match is not None and int(match.group(1)) not in kept:
                _remove(os.path.join(self.directory, name))

    def _remove_failed_save(self, step: int) -> None:
        """What a save that failed part-way wrote (its host state, TF's ``_temp`` folder), unless an earlier
        checkpoint of the same step is listed."""
        tracked = {_step(p) for p in self.manager.checkpoints} if self.manager is not None else set()
        try:
            _remove(f"{self.prefix(step)}_temp")
            if step not in tracked:
                _remove(self.host_path(step))
        except OSError as err:
            log.warning("cannot remove what the failed save of step %d left (%s)", step, _reason(err))

    def _remove_partial_saves(self) -> None:
        """A process killed, or stopped by a full disk, while saving leaves TF's ``ckpt-N_temp`` folder and
        temporary files; they are never read, so the next run removes them."""
        if not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            match = _CHECKPOINT_FILE.fullmatch(name)
            if (match is not None and match.group(2) == "_temp") or _TEMPORARY_FILE.fullmatch(name):
                _remove(os.path.join(self.directory, name))


def read_back(prefix: str) -> None:
    """Read checkpoint ``prefix`` back from disk, every tensor with its checksum (iterator states included, which
    the reader's get_tensor cannot give); one of ``DAMAGE`` when it does not read back whole."""
    dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
    names = sorted(dtypes)
    with tf.device("/cpu:0"):
        tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                             dtypes=[dtypes[n] for n in names])


def listed_steps(directory: str) -> tuple[list[int], str | None]:
    """The steps the ``checkpoint`` list of ``directory`` names, and what is wrong with it (None when sound or
    absent)."""
    if not os.path.exists(os.path.join(directory, STATE_FILE)):
        return [], None
    try:  # None when it does not parse; ValueError when it names no checkpoint or is not UTF-8
        state = tf.train.get_checkpoint_state(directory)
    except (ValueError, tf.errors.OpError) as err:
        return [], _reason(err)
    if state is None:
        return [], "not a checkpoint list"
    steps = []
    for path in [*state.all_model_checkpoint_paths, state.model_checkpoint_path]:
        match = re.fullmatch(r"ckpt-(\d+)", os.path.basename(path))
        if match is None:
            return [], f"it names {path!r}"
        steps.append(int(match.group(1)))
    return sorted(set(steps)), None


def steps_on_disk(directory: str) -> list[int]:
    """The steps whose checkpoint index file is in ``directory``, listed or not."""
    if not os.path.isdir(directory):
        return []
    return sorted(int(m.group(1)) for m in map(_CHECKPOINT_FILE.fullmatch, os.listdir(directory))
                  if m is not None and m.group(2) == ".index")


def newest_intact_checkpoint(directory: str) -> str | None:
    """The prefix of the newest checkpoint in ``directory`` that reads back whole, for a reader that restores no
    round (a round inheriting the weights of the one before). As ``RoundCheckpoint.restore`` does, a damaged newer
    checkpoint gives a warning and the one before it, and a damaged ``checkpoint`` list gives way to the files on
    disk (``tf.train.latest_checkpoint`` would return the damaged newest one, or nothing). None where the
    directory holds no checkpoint; a StateError where it holds only damaged ones. Nothing is written."""
    listed, problem = listed_steps(directory)
    if problem is not None:
        log.warning("%s is damaged (%s); looking for the checkpoints among its files instead",
                    os.path.join(directory, STATE_FILE), problem)
    damaged = []
    for step in sorted(set(listed) | set(steps_on_disk(directory)), reverse=True):
        prefix = os.path.join(directory, f"ckpt-{step}")
        try:
            read_back(prefix)
        except DAMAGE as err:
            damaged.append(f"{os.path.basename(prefix)} ({_reason(err)})")
            log.warning("checkpoint %s is damaged (%s); trying the one before it", prefix, _reason(err))
            continue
        if damaged:
            log.warning("using %s: the newer %s could not be read", prefix, "; ".join(damaged))
        return prefix
    if damaged:
        raise StateError(f"{directory}: no intact checkpoint: {'; '.join(damaged)}")
    return None


def _step(prefix: str) -> int:
    return int(prefix.rsplit("-", 1)[1])


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def inherit_weights(checkpoint: str, new: RoundTrainer) -> int:
    """Copy into ``new`` every supernet variable that ``checkpoint`` holds with the same path and shape
    (the layers of a cell's op that stays), gates excepted: they restart at 0 as the method's do.

    Read from the round's final checkpoint rather than the previous trainer in memory, so a run resumed
    between two rounds starts exactly as an uninterrupted one (and BN statistics are the training ones,
    not those the last end-of-round evaluation left behind)."""
    reader = tf.train.load_checkpoint(checkpoint)
    shapes = reader.get_variable_to_shape_map()
    copied = 0
    for var in new.net.weights:
        if var.path == new.net.alpha.path:
            continue
        # tf.train.Checkpoint escapes '.' in a dict key as '..' (and '/' as '.S')
        escaped = checkpoint_key(var).replace(".", "..").replace("/", ".S")
        key = f"net_variables/{escaped}/.ATTRIBUTES/VARIABLE_VALUE"
        if key in shapes and tuple(shapes[key]) == tuple(var.shape):
            var.assign(reader.get_tensor(key))
            copied += 1
    return copied


def checkpoint_key(variable: Any) -> str:
    """The key of a supernet variable in a round checkpoint (``RoundCheckpoint`` names them so)."""
    return variable.path.replace("/", ".")
