"""One search round under tf.distribute: weight steps and gate steps on the supernet (section 5).

The host draws every branch set from one seeded numpy generator and hands the masks to the
compiled steps as tensors; each replica gets a slice of the same global batch, so a
MirroredStrategy or MultiWorkerMirroredStrategy run follows exactly the path a one-device run
would. Losses are summed per replica and divided by the global batch, so the all-reduced
gradients equal the one-device gradients.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from nse_tf.cost.model import CostModel, macs_model
from nse_tf.nets.batch_norm import average_statistics, batch_norm_layers
from nse_tf.search import gates
from nse_tf.search.round_settings import OptimConfig, PenaltyConfig  # re-exported: TF-free, live there
from nse_tf.search.supernet import Supernet, branch_gradients
from nse_tf.space.macro import MacroSpace
from nse_tf.train.optimizers import FusedSGD, is_decayed
from nse_tf.train.schedules import WarmupCosine
from nse_tf.utils.settings import SettingError  # re-exported: what this module raises


@dataclasses.dataclass(frozen=True)
class RoundConfig:
    """How long one round trains and how it steps."""

    steps: int
    steps_per_epoch: int
    batch_size: int
    gate_every: int = 2
    prune_threshold: float = -2.0
    gate_warmup_steps: int = 0  # the round's first steps train weights only (TuNAS freezes its controller so)

    def __post_init__(self) -> None:
        for name in ("steps", "steps_per_epoch", "batch_size", "gate_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.gate_warmup_steps <= self.steps:
            raise ValueError(f"gate_warmup_steps must be in [0, steps], got {self.gate_warmup_steps}")


@dataclasses.dataclass
class RoundState:
    """Host-side state of a round in progress: what a checkpoint needs beyond the TF variables."""

    subspaces: list[list[int]]
    active: np.ndarray
    protected: np.ndarray
    step: int
    rng: np.random.Generator
    inherited: int = 0  # supernet variables copied from the previous round (inherit_weights)

    def to_json(self) -> dict[str, Any]:
        return {"subspaces": self.subspaces, "active": self.active.tolist(), "protected": self.protected.tolist(),
                "step": self.step, "rng": self.rng.bit_generator.state, "inherited": self.inherited}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RoundState":
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = data["rng"]
        return cls([list(s) for s in data["subspaces"]], np.array(data["active"], dtype=bool),
                   np.array(data["protected"], dtype=bool), int(data["step"]), rng, int(data.get("inherited", 0)))


@dataclasses.dataclass
class StepStats:
    step: int
    loss: float
    accuracy: float
    gate_loss: float | None = None
    gate_cost: float | None = None
    expected_cost: float = 0.0
    active_ops: int = 0


def split_batch(strategy: tf.distribute.Strategy, images: tf.Tensor, labels: tf.Tensor) -> tuple[Any, Any]:
    """Give each replica (global id r) the r-th slice of the global batch."""
    n = strategy.num_replicas_in_sync
    if n == 1:
        return images, labels
    per = int(images.shape[0]) // n

    def part(tensor: tf.Tensor) -> Any:
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tensor[ctx.replica_id_in_sync_group * per:(ctx.replica_id_in_sync_group + 1) * per])

    return part(images), part(labels)


class RoundTrainer:
    """Builds the supernet of one round under ``strategy`` and runs its weight and gate steps."""

    def __init__(self, space: MacroSpace, subspaces: Sequence[Sequence[int]], optim: OptimConfig,
                 penalty: PenaltyConfig, config: RoundConfig, strategy: tf.distribute.Strategy | None = None, *,
                 cost_model: CostModel | None = None):
        self.space, self.optim, self.penalty, self.config = space, optim, penalty, config
        self.cost_model = cost_model or macs_model(space)
        self.strategy = strategy or tf.distribute.get_strategy()
        if config.batch_size % self.strategy.num_replicas_in_sync:
            raise SettingError("data.batch_size", f"batch_size {config.batch_size} is not divisible by the "
                                                  f"{self.strategy.num_replicas_in_sync} replicas")
        with self.strategy.scope():
            self.net = Supernet(space, subspaces)
            self.net.build_all()
            warmup = int(round(optim.warmup_epochs * config.steps_per_epoch))
            schedule = WarmupCosine(optim.weight_lr, config.steps, min(warmup, config.steps), optim.warmup_lr)
            self.weight_opt = FusedSGD(schedule, momentum=optim.momentum, nesterov=True)
            self.gate_opt = keras.optimizers.Adam(optim.gate_lr, beta_1=optim.gate_beta1, beta_2=optim.gate_beta2,
                                                  epsilon=1e-8)
            self.weight_vars = self.net.weight_variables
            self.weight_opt.build(self.weight_vars)
            self.gate_opt.build([self.net.alpha])
        costs = self.cost_model.op_costs
        self.op_costs = self.net.padded([[costs[c][i] for i in sub]
                                         for c, sub in enumerate(self.net.subspaces)])
        self.fixed_cost = self.cost_model.fixed
        self._decay = [is_decayed(v) for v in self.weight_vars]
        self.weight_step = tf.function(self._weight_step, autograph=False)
        self.gate_step = tf.function(self._gate_step, autograph=False)

    # ----------------------------------------------------------------- compiled steps
    def _weight_step(self, images: Any, labels: Any, masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch, replicas = float(self.config.batch_size), float(self.strategy.num_replicas_in_sync)
        wd = self.optim.weight_decay / replicas

        def replica_fn(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.GradientTape() as tape:
                logits = self.net.forward_sampled(images, masks, training=True)
                loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
                loss = loss / batch
            grads = branch_gradients(tape, loss, self.weight_vars)
            grads = [g + wd * v if decay and wd else g for g, v, decay in zip(grads, self.weight_vars, self._decay)]
            self.weight_opt.apply_gradients(zip(grads, self.weight_vars))
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                                                     tf.cast(labels, tf.int32)), tf.float32))
            return loss, correct

        loss, correct = self.strategy.run(replica_fn, args=(images, labels))
        reduce = tf.distribute.ReduceOp.SUM
        return self.strategy.reduce(reduce, loss, axis=None), self.strategy.reduce(reduce, correct, axis=None)

    def _gate_step(self, images: Any, labels: Any, s_masks: tf.Tensor, u_masks: tf.Tensor, choice: tf.Tensor,
                   active: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch, replicas = float(self.config.batch_size), float(self.strategy.num_replicas_in_sync)
        op_costs = tf.constant(self.op_costs)

        def replica_fn(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.GradientTape() as tape:
                ps, pu = self.net.path_probabilities(s_masks, u_masks, active, choice)
                logits = self.net.forward_two_path(images, s_masks, u_masks, ps, pu, training=True)
                ce = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
                cost_s = tf.reduce_sum(tf.cast(s_masks, tf.float32) * op_costs, axis=1)
                cost_u = tf.reduce_sum(tf.cast(u_masks, tf.float32) * op_costs, axis=1)
                expected = self.fixed_cost + tf.reduce_sum(ps * cost_s + pu * cost_u)
                penalty = self.penalty.a * tf.abs(expected - self.penalty.target) ** self.penalty.b
                loss = ce / batch + penalty / replicas
            grads = branch_gradients(tape, loss, [self.net.alpha])
            self.gate_opt.apply_gradients(zip(grads, [self.net.alpha]))
            return loss, expected / replicas

        loss, expected = self.strategy.run(replica_fn, args=(images, labels))
        reduce = tf.distribute.ReduceOp.SUM
        return self.strategy.reduce(reduce, loss, axis=None), self.strategy.reduce(reduce, expected, axis=None)

    # ----------------------------------------------------------------- host loop
    def alpha(self) -> np.ndarray:
        return np.asarray(self.net.alpha.numpy())

    def step(self, state: RoundState, train_batch: tuple[tf.Tensor, tf.Tensor],
             heldout_batch: Callable[[], tuple[tf.Tensor, tf.Tensor]]) -> StepStats:
        """One iteration: a weight step, a gate step when step % gate_every == 0 (after the gate warm-up), then
        self-simplification."""
        slots = self.net.slots
        masks = gates.sample_uniform(state.rng, state.active, slots)
        images, labels = split_batch(self.strategy, *train_batch)
        loss, correct = self.weight_step(images, labels, tf.constant(masks))
        stats = StepStats(state.step, float(loss), float(correct) / self.config.batch_size)
        if state.step >= self.config.gate_warmup_steps and state.step % self.config.gate_every == 0:
            s, u, choice = gates.sample_two_paths(state.rng, self.alpha(), state.active, slots)
            images, labels = split_batch(self.strategy, *heldout_batch())
            gate_loss, expected = self.gate_step(images, labels, tf.constant(s), tf.constant(u), tf.constant(choice),
                                                 tf.constant(state.active))
            stats.gate_loss, stats.gate_cost = float(gate_loss), float(expected)
        alpha = self.alpha()
        state.active = gates.simplify(alpha, state.active, state.protected, slots, self.config.prune_threshold)
        state.step += 1
        stats.expected_cost = gates.expected_cost(alpha, state.active, self.op_costs, self.fixed_cost)
        stats.active_ops = int(state.active.sum())
        return stats

    # ----------------------------------------------------------------- evaluation
    def masks_for(self, cells: Sequence[Sequence[int]]) -> np.ndarray:
        """Padded masks of an architecture given as per-cell pool indices (all must be in the sub-spaces)."""
        masks = np.zeros((len(self.net.subspaces), self.net.max_ops), dtype=bool)
        for c, (cell, sub) in enumerate(zip(cells, self.net.subspaces)):
            for op in cell:
                if op not in sub:
                    raise ValueError(f"cell {c}: operation {op} is not in this round's sub-space {list(sub)}")
                masks[c, sub.index(op)] = True
        return masks

    @tf.function(autograph=False, reduce_retracing=True)
    def _recalibrate_step(self, images: tf.Tensor, masks: tf.Tensor) -> tf.Tensor:
        return self.net.forward_sampled(images, masks, training=True)[:1, :1]

    @tf.function(autograph=False, reduce_retracing=True)
    def _correct(self, images: tf.Tensor, labels: tf.Tensor, masks: tf.Tensor) -> tf.Tensor:
        logits = self.net.forward_sampled(images, masks, training=False)
        hits = tf.equal(tf.argmax(logits, -1, output_type=tf.int32), tf.cast(labels, tf.int32))
        return tf.reduce_sum(tf.cast(hits, tf.int32))

    def bn_statistics(self) -> list[np.ndarray]:
        """The supernet's BN moving statistics, to restore before each path (``evaluate``'s ``start``)."""
        return [keras.ops.convert_to_numpy(v) for v in self._bn_statistic_variables()]

    def _bn_statistic_variables(self) -> list[Any]:
        return [v for layer in batch_norm_layers(self.net) for v in (layer.moving_mean, layer.moving_variance)]

    def evaluate(self, masks: np.ndarray, recalibration: Sequence[tf.Tensor], heldout: Any,
                 bn_mode: str = "ema", bn_batch_size: int = 512, start: Sequence[np.ndarray] | None = None) -> float:
        """Top-1 of one path with shared weights: BN statistics first re-estimated from the ``recalibration``
        batches (``ema``: forward passes in training mode, moving averages not reset, the method's procedure,
        from ``start`` (``bn_statistics()``) when given, else from what the previous path left; ``exact``: the
        mean of their statistics, in equal passes of at most ``bn_batch_size`` images, nothing of the previous
        path's left), then held-out accuracy with BN in inference mode."""
        mask_tensor = tf.constant(masks)
        with self.strategy.scope():
            if start is not None:
                for variable, value in zip(self._bn_statistic_variables(), start, strict=True):
                    variable.assign(value)
            if bn_mode == "exact":  # eager passes: average_statistics sets the momentum before each
                images = tf.concat(list(recalibration), 0)
                passes = -(-int(images.shape[0]) // bn_batch_size)
                size = int(images.shape[0]) // passes
                average_statistics(batch_norm_layers(self.net),
                                   lambda batch: self.net.forward_sampled(batch, mask_tensor, training=True),
                                   (images[i * size:(i + 1) * size] for i in range(passes)))
            else:
                for images in recalibration:
                    self._recalibrate_step(images, mask_tensor)
            correct = total = 0
            for images, labels in heldout:
                correct += int(self._correct(images, labels, mask_tensor))
                total += int(labels.shape[0])
        return correct / max(total, 1)

    def tracing_counts(self) -> tuple[int, int]:
        return self.weight_step.experimental_get_tracing_count(), self.gate_step.experimental_get_tracing_count()


def new_round_state(trainer: RoundTrainer, protected: Sequence[Sequence[int]], seed: int | np.random.Generator
                    ) -> RoundState:
    """Fresh host state: every op of every sub-space active; ``protected`` holds pool indices."""
    net = trainer.net
    prot = net.padded([[i in set(protected[c]) for i in sub] for c, sub in enumerate(net.subspaces)], False, bool)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return RoundState([list(s) for s in net.subspaces], net.all_on(), prot, 0, rng)
