"""The optimizers: retraining's (the shared warm-up cosine, the one weight-decay rule), and the search's SGD
with (Nesterov) momentum as one fused TensorFlow kernel per variable.

Keras 3's SGD spells its update as about ten separate ops per variable; a supernet has hundreds of
variables (every branch of every cell), so on CPU the update alone took a fifth of a weight step.
``ResourceApplyKerasMomentum`` computes exactly Keras's formula (m = mu m - lr g; w += mu m - lr g with
Nesterov, w += m without) in one kernel.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras

from nse_tf.train.config import TrainConfig
from nse_tf.train.device import use_xla
from nse_tf.train.schedules import WarmupCosine


def is_decayed(variable: Any) -> bool:
    """The one weight-decay rule of search and retraining: conv, depthwise and dense kernels, never BN scales
    and offsets or biases. (The search adds it to the gradient, as the method's SGD does; retraining uses
    Keras's decoupled decay. Both decay the same variables.)"""
    return variable.path.split("/")[-1] == "kernel"


def build_optimizer(config: TrainConfig, steps_per_epoch: int, variables: Sequence[Any]) -> Any:
    """The retraining optimizer over ``variables`` (a model's trainable variables): warm-up from 1% of the
    peak, then the shared cosine (``WarmupCosine``); decay on ``is_decayed`` variables only."""
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total)
    schedule = WarmupCosine(config.lr, total, warmup, warmup_lr=config.lr * 0.01,
                            min_lr_fraction=config.min_lr_fraction)
    ema = {"use_ema": config.ema_momentum is not None, "ema_momentum": config.ema_momentum or 0.99}
    wd = config.weight_decay or None
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=config.momentum, nesterov=True, weight_decay=wd, **ema)
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, **ema)
    optimizer.exclude_from_weight_decay(var_list=[v for v in variables if not is_decayed(v)])
    return optimizer


def compile_model(model: Any, config: TrainConfig, steps_per_epoch: int) -> None:
    import keras

    model.compile(
        optimizer=build_optimizer(config, steps_per_epoch, model.trainable_variables),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="top1"), keras.metrics.TopKCategoricalAccuracy(5, "top5")],
        jit_compile=use_xla())


@keras.saving.register_keras_serializable(package="nse_tf")
class FusedSGD(keras.optimizers.SGD):
    """``keras.optimizers.SGD``, same arguments and results; fused on the TensorFlow backend."""

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if self.momentum == 0 or keras.backend.backend() != "tensorflow":
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        momentum = self.momentums[self._get_variable_index(variable)]
        var = variable.value if isinstance(variable, keras.Variable) else variable
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=var.handle, accum=momentum.value.handle, lr=tf.cast(learning_rate, var.dtype),
            grad=tf.cast(gradient, var.dtype), momentum=tf.cast(self.momentum, var.dtype),
            use_nesterov=self.nesterov)
        return None
