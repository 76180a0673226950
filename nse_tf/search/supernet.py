"""The supernet: multi-branch cells whose branches run only when switched on, and the gate logits.

Branch masks enter the compiled step as a ``[n_cells, max_ops]`` bool tensor and every branch is
guarded by ``tf.cond``, so one trace serves every sampled path and an untaken branch costs
almost nothing (running all branches and multiplying by a 0/1 mask would cost |sub-space| times more).
TensorFlow-only by design: the search runs under ``tf.distribute``; child networks and
retraining (nse_tf.nets.child) stay backend-agnostic.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.eager import context as tf_context

from nse_tf.nets.child import entry_layers, exit_layers
from nse_tf.nets.layers import Namespace, apply_layer, op_layers
from nse_tf.search.gates import GATE_SCALE, GATE_SHIFT, CellSlots
from nse_tf.space.macro import CellSpec, MacroSpace
from nse_tf.space.ops import out_size

# Interleaved running sums per cell in weight steps and evaluation (``SupernetCell.switched_sum``): one
# chain would run a cell's branches one after another; two keep both cores of a small machine busy.
SUM_CHAINS = 2


def branch_gradients(tape: tf.GradientTape, loss: tf.Tensor, variables: Sequence[Any]) -> list[Any]:
    """``tape.gradient`` with the branches' forward intermediates handed to the backward conds directly.

    By default TensorFlow wraps each intermediate that a ``tf.cond``'s gradient reads in an optional (a
    handful of small ops per value, about 21 values per taken branch). Without optionals, as under XLA, an
    untaken branch's slot holds a ``FakeParam`` (one preallocated tensor) that its dead gradient branch
    never reads: the same gradients from fewer ops (cond_v2's own XLA path, chosen here by its switch).
    """
    with tf_context.temporarily_disable_optionals_in_gradients():
        return tape.gradient(loss, variables)


class SupernetCell(keras.layers.Layer):
    """One searchable cell over its sub-space; combines the switched-on branches as in section 4."""

    def __init__(self, cell: CellSpec, space: MacroSpace, subspace: Sequence[int], **kwargs: Any):
        super().__init__(name=cell.name, **kwargs)
        pool = space.get_pool()
        self.cell = cell
        self.subspace = tuple(int(i) for i in subspace)
        self.out_hw = (out_size(cell.input_hw[0], cell.stride), out_size(cell.input_hw[1], cell.stride))
        ns = Namespace.supernet()
        self.branches = [
            op_layers(ns, pool.ops[i], cell.cin, cell.cout, cell.stride, f"{cell.name}_{pool.ops[i].name}",
                      se=space.se, activation=space.activation)
            for i in self.subspace
        ]
        # Keras tracks layers held in list attributes: this makes the branch weights the cell's.
        self.branch_layers = [layer for branch in self.branches for layer in branch.all_layers()]

    def branch_outputs(self, x: tf.Tensor, run: tf.Tensor, training: bool) -> list[tf.Tensor]:
        """Outputs of every branch; a branch whose ``run`` flag is off returns zeros and costs almost nothing."""
        zeros_shape = tf.stack([tf.shape(x)[0], self.out_hw[0], self.out_hw[1], self.cell.cout])
        outs = []
        for j, branch in enumerate(self.branches):
            outs.append(tf.cond(run[j], lambda branch=branch: branch(x, training=training),
                                lambda: tf.zeros(zeros_shape, x.dtype)))
        return outs

    def combine(self, x: tf.Tensor, outs: list[tf.Tensor], weights: tf.Tensor | None, count: tf.Tensor) -> tf.Tensor:
        """N: (x + sum) / (|B| + 1); R/E: sum / |B|. ``weights`` selects branches (None: all outs)."""
        if weights is None:
            total = tf.add_n(outs)
        else:
            total = tf.add_n([out * tf.cast(weights[j], out.dtype) for j, out in enumerate(outs)])
        return self.mean(x + total if self.cell.kind == "N" else total, count)

    def mean(self, total: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
        """The section 4 average of a sum over ``count`` branches (N cells: x is in the sum and counts once)."""
        count = tf.cast(count, total.dtype)
        if self.cell.kind == "N":
            return total / (count + 1.0)
        return total / tf.maximum(count, 1.0)

    def switched_sum(self, x: tf.Tensor, run: tf.Tensor, training: bool) -> tf.Tensor:
        """x (N cells) plus the switched-on branches' outputs, summed inside the branches' conds.

        An untaken branch passes its running sum through instead of returning zeros to be added, so it
        writes and adds no activation-sized zeros. The branches form ``SUM_CHAINS`` interleaved chains,
        summed at the end, so that two branches of a cell can still run at once; only a chain whose first
        branch is off starts from zeros (an N cell's first chain starts from x).
        """
        zeros_shape = tf.stack([tf.shape(x)[0], self.out_hw[0], self.out_hw[1], self.cell.cout])
        totals = []
        for first in range(min(SUM_CHAINS, len(self.branches))):
            chain = list(range(first, len(self.branches), SUM_CHAINS))
            if first == 0 and self.cell.kind == "N":
                total = x
            else:
                j = chain.pop(0)
                total = tf.cond(run[j], lambda branch=self.branches[j]: branch(x, training=training),
                                lambda: tf.zeros(zeros_shape, x.dtype), name=f"{self.cell.name}_branch{j}")
            for j in chain:
                total = tf.cond(run[j],
                                lambda branch=self.branches[j], total=total: total + branch(x, training=training),
                                lambda total=total: tf.identity(total), name=f"{self.cell.name}_branch{j}")
            totals.append(total)
        return tf.add_n(totals) if len(totals) > 1 else totals[0]

    def call_sampled(self, x: tf.Tensor, mask: tf.Tensor, training: bool) -> tf.Tensor:
        if not self.branches:
            return x
        n = len(self.branches)
        return self.mean(self.switched_sum(x, mask[:n], training), tf.reduce_sum(tf.cast(mask[:n], tf.int32)))

    def call_zeros_then_sum(self, x: tf.Tensor, mask: tf.Tensor, training: bool) -> tf.Tensor:
        """``call_sampled``'s plain form (zeros for untaken branches, then one sum): the reference that the
        running sums are checked against (tests/test_supernet.py, benchmarks/step_breakdown.py)."""
        if not self.branches:
            return x
        n = len(self.branches)
        return self.combine(x, self.branch_outputs(x, mask[:n], training), None,
                            tf.reduce_sum(tf.cast(mask[:n], tf.int32)))

    def call_two_path(self, x: tf.Tensor, s_mask: tf.Tensor, u_mask: tf.Tensor, ps: tf.Tensor,
                      pu: tf.Tensor, training: bool) -> tf.Tensor:
        """S(x) (ps + 1 - sg(ps)) + sg(U(x)) (pu - sg(pu)): the value is S(x), the gate gradient flows via ps, pu."""
        if not self.branches:
            return x
        n = len(self.branches)
        s_mask, u_mask = s_mask[:n], u_mask[:n]
        outs = self.branch_outputs(x, tf.logical_or(s_mask, u_mask), training)
        s_out = self.combine(x, outs, s_mask, tf.reduce_sum(tf.cast(s_mask, tf.int32)))
        u_out = tf.stop_gradient(self.combine(x, outs, u_mask, tf.reduce_sum(tf.cast(u_mask, tf.int32))))
        return s_out * (ps + 1.0 - tf.stop_gradient(ps)) + u_out * (pu - tf.stop_gradient(pu))


class Supernet(keras.Model):
    """Stem, searchable cells over their sub-spaces, head; plus ``alpha``, one logit per (cell, op)."""

    def __init__(self, space: MacroSpace, subspaces: Sequence[Sequence[int]], **kwargs: Any):
        super().__init__(name="supernet", **kwargs)
        cells = space.cells()
        if len(subspaces) != len(cells):
            raise ValueError(f"{len(subspaces)} sub-spaces given for {len(cells)} cells")
        self.space = space
        self.subspaces = [tuple(int(i) for i in s) for s in subspaces]
        for cell, sub in zip(cells, self.subspaces):
            if not sub and not cell.may_be_empty:
                raise ValueError(f"cell {cell.index} ({cell.kind}): its sub-space is empty; R/E cells need an op")
        self.max_ops = max(1, max(len(s) for s in self.subspaces))
        ns = Namespace.supernet()
        self.preprocess, *self.stem = entry_layers(ns, space)
        self.cells_ = [SupernetCell(cell, space, sub) for cell, sub in zip(cells, self.subspaces)]
        self.head = exit_layers(ns, space)
        self.alpha = self.add_weight(name="alpha", shape=(len(cells), self.max_ops), initializer="zeros",
                                     trainable=True)
        self.slots = [CellSlots(len(s), c.may_be_empty) for c, s in zip(cells, self.subspaces)]

    @property
    def weight_variables(self) -> list[Any]:
        return [v for v in self.trainable_variables if v is not self.alpha and v.path != self.alpha.path]

    def padded(self, rows: Sequence[Sequence[Any]], fill: Any = 0, dtype: Any = np.float32) -> np.ndarray:
        """A per-cell list of per-op values laid out as ``[n_cells, max_ops]``."""
        out = np.full((len(rows), self.max_ops), fill, dtype=dtype)
        for c, row in enumerate(rows):
            out[c, : len(row)] = row
        return out

    def all_on(self) -> np.ndarray:
        return self.padded([[True] * len(s) for s in self.subspaces], False, bool)

    def build_all(self) -> None:
        """Create every variable eagerly (all branches on), before any tf.function traces."""
        shape = (1, self.space.input_size, self.space.input_size, self.space.input_channels)
        self.forward_sampled(tf.zeros(shape), tf.constant(self.all_on()), training=False)

    def _stem(self, images: tf.Tensor, training: bool) -> tf.Tensor:
        x = self.preprocess(images)
        for layer in self.stem:
            x = apply_layer(layer, x, training)
        return x

    def _head(self, x: tf.Tensor) -> tf.Tensor:
        for layer in self.head:
            x = layer(x)
        return x

    def forward_sampled(self, images: tf.Tensor, masks: tf.Tensor, training: bool) -> tf.Tensor:
        """Logits of the sub-network given by ``masks`` (weight steps, evaluation)."""
        x = self._stem(images, training)
        for c, cell in enumerate(self.cells_):
            x = cell.call_sampled(x, masks[c], training)
        return self._head(x)

    def gate_probability(self) -> tf.Tensor:
        return GATE_SCALE * tf.sigmoid(self.alpha) + GATE_SHIFT

    def path_probabilities(self, s_masks: tf.Tensor, u_masks: tf.Tensor, active: tf.Tensor,
                           choice: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """ps = P(S)/(P(S)+P(U)) and pu = 1 - ps per cell; cells without a choice get ps = 1, pu = 0."""
        p = self.gate_probability()
        log_p, log_q = tf.math.log(p), tf.math.log1p(-p)
        activef = tf.cast(active, p.dtype)

        def log_prob(masks: tf.Tensor) -> tf.Tensor:
            g = tf.cast(masks, p.dtype)
            return tf.reduce_sum(activef * (g * log_p + (1.0 - g) * log_q), axis=1)

        ps = tf.sigmoid(log_prob(s_masks) - log_prob(u_masks))
        ps = tf.where(choice, ps, tf.ones_like(ps))
        return ps, 1.0 - ps

    def forward_two_path(self, images: tf.Tensor, s_masks: tf.Tensor, u_masks: tf.Tensor, ps: tf.Tensor,
                         pu: tf.Tensor, training: bool) -> tf.Tensor:
        x = self._stem(images, training)
        for c, cell in enumerate(self.cells_):
            x = cell.call_two_path(x, s_masks[c], u_masks[c], ps[c], pu[c], training)
        return self._head(x)
