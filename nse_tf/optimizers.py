"""SGD with (Nesterov) momentum as one fused TensorFlow kernel per variable.

Keras 3's SGD spells its update as about ten separate ops per variable; a supernet has hundreds of
variables (every branch of every cell), so on CPU the update alone took a fifth of a weight step.
``ResourceApplyKerasMomentum`` computes exactly Keras's formula (m = mu m - lr g; w += mu m - lr g with
Nesterov, w += m without) in one kernel.
"""

from __future__ import annotations

from typing import Any

import keras


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
