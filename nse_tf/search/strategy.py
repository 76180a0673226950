"""tf.distribute strategies of a search: which one, and which worker is the chief."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``mirrored``: all local devices (GPUs, else logical CPUs); ``multi_worker``: TF_CONFIG; ``default``."""
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise ValueError(f"unknown strategy {name!r}; expected mirrored, multi_worker or default")


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is not None and bool(resolver.cluster_spec().as_dict())


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0
                                                      and "chief" not in resolver.cluster_spec().as_dict())


def worker_shard(strategy: tf.distribute.Strategy) -> tuple[int, int]:
    """(this worker's index, number of workers) of a multi-worker strategy, in TensorFlow's order (the chief
    first, then the workers by index); (0, 1) for a single process."""
    if not is_multi_worker(strategy):
        return 0, 1
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    count = strategy.num_replicas_in_sync // len(strategy.extended.worker_devices)
    if resolver.task_type == "chief":
        return 0, count
    return resolver.task_id + (1 if "chief" in spec else 0), count


def sum_across_workers(strategy: tf.distribute.Strategy, values: np.ndarray) -> np.ndarray:
    """The elementwise sum of every worker's ``values`` (float64), on every worker. Each worker contributes once
    (from its first local replica), so a worker's entries, zero elsewhere, come back exactly."""
    local = len(strategy.extended.worker_devices)
    mine = tf.constant(np.asarray(values, np.float64))
    zeros = tf.zeros_like(mine)
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda context: mine if context.replica_id_in_sync_group % local == 0 else zeros)
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy()
