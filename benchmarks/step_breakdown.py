"""Where the supernet weight step's extra time goes (issue 15): the branches' dispatch or the optimizer update.

    python benchmarks/step_breakdown.py [--space=small --counts=1,1,1,1,1,1 --ops_per_cell=5 ...]

The configuration of ``tools/benchmark.py supernet`` (its flags, same defaults: ``nse_tf.search.step_timing``). Times, interleaved in one
process on one sampled path: the standalone child's train step and the supernet weight step (as the
benchmark), each also without its optimizer update (gradients summed instead), and the weight step with the
update compiled by XLA (``jit_compile`` on the decay and the fused momentum kernels), and the weight step with the
cells' previous form (``call_zeros_then_sum``: zeros for untaken branches, then one sum). The differences say what
the supernet adds in the forward/backward pass (its ``tf.cond`` branches) and in the update (every branch's
variables, untaken ones included). The last line of stdout is JSON of the medians in ms.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app  # noqa: E402

from nse_tf.search.step_timing import (StepBench, bench_space, child_train_step, random_subspaces,  # noqa: E402
                                       synthetic_batch, timed)
from nse_tf.utils.cli import flags_parser  # noqa: E402
from nse_tf.utils.settings import define_flags, settings_of  # noqa: E402

FLAGS = define_flags(settings_of(StepBench))  # the supernet benchmark's settings, as tools/benchmark.py's


def _loss(logits, labels, batch: float):
    import keras
    import tensorflow as tf

    return tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)) / batch


def without_update(forward, variables, batch: float):
    """A train step's forward and backward pass only: the gradients are summed, nothing is applied."""
    import tensorflow as tf

    def step(*args):
        *inputs, labels = args
        with tf.GradientTape() as tape:
            loss = _loss(forward(*inputs), labels, batch)
        grads = tape.gradient(loss, variables)
        return loss, tf.add_n([tf.reduce_sum(g) for g in grads if g is not None])

    return tf.function(step, autograph=False)


def with_xla_update(trainer, batch: float):
    """The weight step with its update (weight decay plus the fused momentum kernels) compiled by XLA."""
    import tensorflow as tf

    variables, decay, opt, wd = trainer.weight_vars, trainer._decay, trainer.weight_opt, trainer.optim.weight_decay

    @tf.function(jit_compile=True, autograph=False)
    def update(grads):
        opt.apply_gradients(zip([g + wd * v if d and wd else g for g, v, d in zip(grads, variables, decay)],
                                variables))

    def step(images, masks, labels):
        with tf.GradientTape() as tape:
            loss = _loss(trainer.net.forward_sampled(images, masks, training=True), labels, batch)
        update(tape.gradient(loss, variables))
        return loss, loss

    return tf.function(step, autograph=False)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"step_breakdown.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    import numpy as np
    import tensorflow as tf

    from nse_tf.nets.child import build_child
    from nse_tf.nets.layers import Namespace
    from nse_tf.search import gates, round_trainer
    from nse_tf.search.round_trainer import OptimConfig, PenaltyConfig, RoundConfig, RoundTrainer
    from nse_tf.space.architecture import Architecture, NetworkSpec

    bench = StepBench(**{name: holder.value for name, holder in FLAGS.items()})
    for name in ("batch_size", "repeats", "ops_per_cell", "warmup"):
        if getattr(bench, name) < 1:
            print(f"step_breakdown.py: error: --{name} must be >= 1, got {getattr(bench, name)}", file=sys.stderr)
            return 2
    rng = np.random.default_rng(bench.seed)
    space = bench_space(bench.space, bench.counts, bench.channels)
    subspaces = random_subspaces(space, bench.ops_per_cell, rng)
    batch = bench.batch_size
    images, labels = synthetic_batch(space, batch, rng)
    config = RoundConfig(steps=bench.steps, steps_per_epoch=bench.steps, batch_size=batch)
    # one trainer per variant, so that no variant's updates move another's weights
    trainers = [RoundTrainer(space, subspaces, OptimConfig(), PenaltyConfig(), config) for _ in range(5)]
    for cell in trainers[3].net.cells_:  # the previous form of the cells: zeros for untaken branches, one sum
        cell.call_sampled = cell.call_zeros_then_sum
    net = trainers[0].net
    mask = gates.sample_uniform(rng, net.all_on(), net.slots)
    arch = Architecture(tuple(tuple(sub[j] for j in range(len(sub)) if mask[c, j])
                              for c, sub in enumerate(net.subspaces)))
    child = build_child(NetworkSpec(space, arch, name="breakdown_child"), Namespace.supernet())
    mask_t = tf.constant(mask)
    with_optionals = tf.function(trainers[4]._weight_step, autograph=False)
    plain_gradients = lambda tape, loss, variables: tape.gradient(loss, variables)  # noqa: E731
    with mock.patch.object(round_trainer, "branch_gradients", plain_gradients):
        timed(with_optionals, images, labels, mask_t)  # traced here, with plain tape.gradient
    calls = {
        "child": (child_train_step(child, trainers[0]), (images, labels)),
        "weight": (trainers[0].weight_step, (images, labels, mask_t)),
        "child_no_update": (without_update(lambda x: child(x, training=True), child.trainable_variables, batch),
                            (images, labels)),
        "weight_no_update": (without_update(lambda x, m: trainers[1].net.forward_sampled(x, m, training=True),
                                            trainers[1].weight_vars, batch), (images, mask_t, labels)),
        "weight_xla_update": (with_xla_update(trainers[2], batch), (images, mask_t, labels)),
        "weight_zeros_then_sum": (trainers[3].weight_step, (images, labels, mask_t)),
        "weight_with_optionals": (with_optionals, (images, labels, mask_t)),
    }
    for fn, args in calls.values():
        for _ in range(bench.warmup):  # the first call traces
            timed(fn, *args)
    samples: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(bench.repeats):
        for key, (fn, args) in calls.items():
            samples[key].append(timed(fn, *args))
    med = {key: 1e3 * statistics.median(v) for key, v in samples.items()}
    print(f"supernet step breakdown: {len(space.cells())} cells x {bench.ops_per_cell} ops, batch {batch}, "
          f"{int(mask.sum())} ops on the timed path; {len(trainers[0].weight_vars)} supernet variables against "
          f"{len(child.trainable_variables)} of the child; {bench.repeats} interleaved rounds, medians")
    for key, value in med.items():
        print(f"  {key:<22} {value:8.2f} ms  {value / med['child']:.3f}x the child step")
    print(f"  forward/backward the supernet adds: {med['weight_no_update'] - med['child_no_update']:.2f} ms; "
          f"its update adds: {(med['weight'] - med['weight_no_update']) - (med['child'] - med['child_no_update']):.2f}"
          f" ms")
    print(json.dumps({key: round(value, 3) for key, value in med.items()}))
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("step_breakdown.py"))
