"""The supernet's weight step timed against its child's plain train step: what ``tools/benchmark.py supernet`` and
``benchmarks/step_breakdown.py`` share (their settings, one random sub-space, synthetic batches, the child's step
with the supernet's optimiser). TensorFlow is imported only inside the functions that run steps."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from nse_tf.space.macro import MacroSpace, get_space, parse_int_list
from nse_tf.utils.settings import setting


@dataclasses.dataclass(frozen=True)
class StepBench:
    """The supernet benchmark's settings, each the flag of its name."""

    steps: int = setting(200, "RoundTrainer.step() iterations of the tracing check.")
    batch_size: int = setting(64, "Global batch size of every step.")
    warmup: int = setting(5, "Untimed calls of each step function before timing (the first traces).")
    repeats: int = setting(20, "Interleaved timing rounds; medians are reported.")
    space: str = setting("small", "Named macro space (nse_tf.get_space).")
    counts: str = setting("1,1,1,1,1,1", "N cells per stage (empty: the space's own).")
    channels: str = setting("8,16,24,32,48,64,128", "Stem + R/E channels (empty: the space's own).")
    ops_per_cell: int = setting(5, "Ops of the pool drawn at random into each cell's sub-space.")
    seed: int = setting(0, "Seed of the sub-spaces, the sampled paths and the synthetic data.")


def bench_space(name: str, counts: str, channels: str) -> MacroSpace:
    """The named space with the benchmark's counts and channels (empty text: the space's own)."""
    overrides: dict[str, Any] = {}
    if counts.strip():
        overrides["counts"] = parse_int_list(counts)
    if channels.strip():
        overrides["channels"] = parse_int_list(channels)
    return get_space(name, **overrides)


def random_subspaces(space: Any, ops_per_cell: int, rng: Any) -> list[list[int]]:
    """``ops_per_cell`` distinct pool indices per cell (so R/E cells are never empty)."""
    n_pool = len(space.get_pool())
    k = min(ops_per_cell, n_pool)
    return [sorted(int(i) for i in rng.choice(n_pool, size=k, replace=False)) for _ in space.cells()]


def synthetic_batch(space: Any, batch: int, rng: Any) -> tuple[Any, Any]:
    """Random raw pixels (0-255 floats, as the models' preprocessing expects) and random labels."""
    import numpy as np
    import tensorflow as tf

    shape = (batch, space.input_size, space.input_size, space.input_channels)
    images = rng.integers(0, 256, size=shape).astype(np.float32)
    labels = rng.integers(0, space.num_classes, size=(batch,)).astype(np.int32)
    return tf.constant(images), tf.constant(labels)


def child_train_step(model: Any, trainer: Any) -> Callable[..., Any]:
    """A plain train step of a standalone child: same loss, optimiser, schedule and weight decay as the weight step."""
    import keras
    import tensorflow as tf

    from nse_tf.train.optimizers import is_decayed
    from nse_tf.train.schedules import WarmupCosine

    optim, config = trainer.optim, trainer.config
    warmup = int(round(optim.warmup_epochs * config.steps_per_epoch))
    schedule = WarmupCosine(optim.weight_lr, config.steps, min(warmup, config.steps), optim.warmup_lr)
    opt = type(trainer.weight_opt)(schedule, momentum=optim.momentum, nesterov=True)  # the supernet's optimiser
    variables = model.trainable_variables
    opt.build(variables)
    decay = [is_decayed(v) for v in variables]
    batch, wd = float(config.batch_size), optim.weight_decay

    def step(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)) / batch
        grads = tape.gradient(loss, variables)
        grads = [g + wd * v if d and wd else g for g, v, d in zip(grads, variables, decay)]
        opt.apply_gradients(zip(grads, variables))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32))
        return loss, correct

    return tf.function(step, autograph=False)


def timed(fn: Callable[..., Any], *args: Any) -> float:
    """Seconds for one call, including fetching the results (so the step has really finished)."""
    start = time.perf_counter()
    out = fn(*args)
    for tensor in out:
        tensor.numpy()
    return time.perf_counter() - start
