"""A round's checkpoints (kept two deep, falling back past a damaged one) and weight inheritance between rounds."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import tensorflow as tf

from nse_tf.search.evolution import StateError
from nse_tf.search.round_trainer import RoundState, RoundTrainer
from nse_tf.utils.atomic import atomic_write_json

log = logging.getLogger("nse_tf.search")


class RoundCheckpoint:
    """TF checkpoint of a round plus the host state it belongs to (same number, written first)."""

    def __init__(self, directory: str, trainer: RoundTrainer, iterators: dict[str, Any], writable: bool):
        self.directory = directory
        # Keras 3 does not expose layers held in lists to tf.train.Checkpoint, so the supernet's variables
        # (BN moving statistics included) are tracked explicitly, keyed by their Keras paths.
        variables = {checkpoint_key(v): v.value for v in trainer.net.weights}
        self.checkpoint = tf.train.Checkpoint(net_variables=variables, weight_opt=trainer.weight_opt,
                                              gate_opt=trainer.gate_opt, **iterators)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=2)
        self.writable = writable

    def host_path(self, step: int) -> str:
        return os.path.join(self.directory, f"ckpt-{step}.host.json")

    def save(self, state: RoundState) -> None:
        if not self.writable:
            return
        try:
            atomic_write_json(self.host_path(state.step), state.to_json())
            self.manager.save(checkpoint_number=state.step)
        except (OSError, tf.errors.OpError) as err:  # a full disk: the checkpoints before stay as they were
            message = getattr(err, "strerror", None) or getattr(err, "message", None) or str(err)
            raise StateError(f"{self.directory}: cannot write the checkpoint of step {state.step} ({message}); "
                             "the previous checkpoint is intact: free the space and rerun to resume") from None
        keep = {self.host_path(int(p.rsplit("-", 1)[1])) for p in self.manager.checkpoints}
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            if name.endswith(".host.json") and path not in keep:
                os.unlink(path)

    def restore(self) -> RoundState | None:
        """The newest intact checkpoint's host state (the variables restored); None for a fresh round. A
        damaged newest checkpoint (missing or corrupt files) gives a warning and the one before it."""
        checkpoints = list(self.manager.checkpoints)
        damaged = []
        for path in reversed(checkpoints):
            try:
                host = self._restore_one(path)
            except (OSError, ValueError, KeyError, AssertionError, tf.errors.OpError) as err:
                reason = " ".join(str(err).split())[:200]
                damaged.append(f"{os.path.basename(path)} ({reason})")
                log.warning("checkpoint %s is damaged (%s); trying the one before it", path, reason)
                continue
            if damaged:
                log.warning("resuming from %s, step %d: the newer %s could not be read", path, host.step,
                            "; ".join(damaged))
            return host
        if damaged:
            raise StateError(f"{self.directory}: no intact checkpoint of this round: {'; '.join(damaged)}; "
                             f"delete {self.directory} to restart the round from its beginning")
        return None

    def _restore_one(self, path: str) -> RoundState:
        step = int(path.rsplit("-", 1)[1])
        host_path = self.host_path(step)
        try:
            with open(host_path, encoding="utf-8") as f:
                host = RoundState.from_json(json.load(f))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{host_path}: {err}") from None
        if not os.path.exists(f"{path}.index"):
            raise ValueError(f"{path}.index is missing")
        self.checkpoint.restore(path).assert_existing_objects_matched()
        return host


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
