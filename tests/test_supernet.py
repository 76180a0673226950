"""Tests for nse_tf.search.supernet (and the compiled steps of nse_tf.search.round_trainer) on a tiny two-cell supernet.

The net: stem (8 ch, 8x8) -> N cell over 3 ops -> R cell over 2 ops -> head (8 ch, 3 classes).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from nse_tf.cost.model import CostModel
from nse_tf.nets.batch_norm import batch_norm_layers
from nse_tf.search import gates
from nse_tf.search import round_trainer as search
from nse_tf.search.supernet import Supernet
from nse_tf.space.macro import MacroSpace

SPACE = MacroSpace(layout="R", counts=(1, 0), channels=(8, 8), input_size=8, input_channels=1, num_classes=3,
                   stem_stride=1, head_channels=8, pool="mac27", mean=(0.0,), std=(1.0,))
SUBSPACES = [[0, 3, 9], [0, 3]]  # N cell: mb_k3_t1, mb_k3_t3, mb_k5_t1; R cell: mb_k3_t1, mb_k3_t3
BATCH = 8


def batch(seed: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(BATCH, 8, 8, 1)).astype(np.float32)
    labels = rng.integers(0, SPACE.num_classes, size=BATCH).astype(np.int32)
    return tf.constant(images), tf.constant(labels)


def randomise(net: Supernet, seed: int) -> None:
    """Random gate logits and non-trivial BN moving statistics, so training=False is not an identity."""
    rng = np.random.default_rng(seed)
    alpha = rng.normal(scale=1.5, size=net.alpha.shape).astype(np.float32)
    net.alpha.assign(alpha)
    for layer in net._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(scale=0.1, size=n).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=n).astype(np.float32))
            layer.gamma.assign(rng.uniform(0.5, 1.5, size=n).astype(np.float32))
            layer.beta.assign(rng.normal(scale=0.1, size=n).astype(np.float32))


@pytest.fixture(scope="module")
def net() -> Supernet:
    net = Supernet(SPACE, SUBSPACES)
    net.build_all()
    randomise(net, 0)
    return net


def np_dps_dalpha(alpha: np.ndarray, s: np.ndarray, u: np.ndarray, active: np.ndarray,
                  choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ps per cell and d ps_c / d alpha_c,i from section 5, in float64."""
    alpha = alpha.astype(np.float64)
    p = gates.gate_probability(alpha)
    sig = 1.0 / (1.0 + np.exp(-alpha))
    dp = 0.999 * sig * (1.0 - sig)

    def dlog(masks: np.ndarray) -> np.ndarray:
        g = masks.astype(np.float64)
        return np.where(active, (g / p - (1.0 - g) / (1.0 - p)) * dp, 0.0)

    ps = np.array([1.0 / (1.0 + np.exp(gates.set_log_prob(u[c], p[c], active[c])
                                       - gates.set_log_prob(s[c], p[c], active[c])))
                   for c in range(len(s))])
    ps = np.where(choice, ps, 1.0)
    dps = (ps * (1.0 - ps))[:, None] * (dlog(s) - dlog(u))
    return ps, np.where(choice[:, None], dps, 0.0)


def two_paths(net: Supernet, seed: int):
    active = net.all_on()
    s, u, choice = gates.sample_two_paths(np.random.default_rng(seed), net.alpha.numpy(), active, net.slots)
    assert choice.all()
    return s, u, choice, active


def reference_dl_dps(net: Supernet, images: tf.Tensor, labels: tf.Tensor, s: np.ndarray, u: np.ndarray,
                     training: bool) -> np.ndarray:
    """dL/dps_c = <dL/dout_c, S_c(x_c) - U_c(x_c)>, with dL/dout_c taken along the S path (mean CE)."""
    with tf.GradientTape() as tape:
        x = net._stem(images, training)
        inputs, outs = [], []
        for c, cell in enumerate(net.cells_):
            inputs.append(x)
            x = cell.call_sampled(x, tf.constant(s[c]), training)
            outs.append(x)
        logits = net._head(x)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    g_outs = tape.gradient(loss, outs)
    dl_dps = []
    for c, cell in enumerate(net.cells_):
        s_out = cell.call_sampled(inputs[c], tf.constant(s[c]), training)
        u_out = cell.call_sampled(inputs[c], tf.constant(u[c]), training)
        dl_dps.append(float(tf.reduce_sum(tf.cast(g_outs[c], tf.float64) * tf.cast(s_out - u_out, tf.float64))))
    return np.array(dl_dps)


# ---------------------------------------------------------------- (a) forward values


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_path_forward_equals_s_path(net, seed):
    images, _ = batch(seed)
    s, u, choice, active = two_paths(net, seed)
    ps, pu = net.path_probabilities(tf.constant(s), tf.constant(u), tf.constant(active), tf.constant(choice))
    two = net.forward_two_path(images, tf.constant(s), tf.constant(u), ps, pu, training=False)
    one = net.forward_sampled(images, tf.constant(s), training=False)
    np.testing.assert_allclose(two.numpy(), one.numpy(), atol=1e-5, rtol=0)
    other = net.forward_sampled(images, tf.constant(u), training=False)
    assert np.abs(other.numpy() - one.numpy()).max() > 1e-4  # S and U really differ


def test_path_probabilities_match_numpy(net):
    active = net.all_on()
    s = np.array([[True, False, True], [False, True, False]])
    u = np.array([[False, False, False], [True, True, False]])
    for choice in (np.array([True, True]), np.array([True, False])):
        ps, pu = net.path_probabilities(tf.constant(s), tf.constant(u), tf.constant(active), tf.constant(choice))
        want, _ = np_dps_dalpha(net.alpha.numpy(), s, u, active, choice)
        np.testing.assert_allclose(ps.numpy(), want, rtol=1e-5)
        np.testing.assert_allclose(pu.numpy(), 1.0 - want, rtol=1e-5, atol=1e-7)
    assert ps.numpy()[1] == 1.0 and pu.numpy()[1] == 0.0


# ---------------------------------------------------------------- (b) gate gradients


@pytest.mark.parametrize("seed", [0, 3])
def test_gate_gradient_of_ce_matches_section5(net, seed):
    images, labels = batch(seed)
    s, u, choice, active = two_paths(net, seed)
    with tf.GradientTape() as tape:
        ps, pu = net.path_probabilities(tf.constant(s), tf.constant(u), tf.constant(active), tf.constant(choice))
        logits = net.forward_two_path(images, tf.constant(s), tf.constant(u), ps, pu, training=False)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    got = tape.gradient(loss, net.alpha).numpy()

    dl_dps = reference_dl_dps(net, images, labels, s, u, training=False)
    _, dps = np_dps_dalpha(net.alpha.numpy(), s, u, active, choice)
    want = dl_dps[:, None] * dps
    assert np.abs(want).max() > 1e-4
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-6)
    assert got[1, 2] == 0.0  # the padded column of the R cell


def latency_like_model() -> CostModel:
    """Made-up per-op milliseconds, unrelated to MACs: what a latency table gives the trainer."""
    rng = np.random.default_rng(11)
    return CostModel("latency", rng.uniform(0.05, 0.6, (len(SPACE.cells()), len(SPACE.get_pool()))).tolist(), 0.2)


@pytest.mark.parametrize("side", ["cost above the target", "cost below the target"])
def test_trainer_gate_step_gradient_ce_plus_penalty(side):
    """The trainer's gate loss (mean CE + a (E - target)^b) has the gradient of section 5, with the costs of
    its cost model (here a latency table's made-up milliseconds; MACs are one more such table).

    The gate optimiser is swapped for SGD(lr=1), so alpha moves by exactly minus the gradient.
    The target lies below the tiny net's cost and ``a`` is large, so the penalty part is of the
    same size as the CE part.
    """
    model = latency_like_model()
    dearest = model.fixed + sum(sum(row) for row in model.op_costs)  # no path costs more
    penalty = search.PenaltyConfig(target=0.01 if side == "cost above the target" else dearest + 1.0, a=0.3, b=2.0)
    trainer = search.RoundTrainer(SPACE, SUBSPACES, search.OptimConfig(), penalty,
                                  search.RoundConfig(steps=10, steps_per_epoch=5, batch_size=BATCH),
                                  cost_model=model)
    for c, sub in enumerate(SUBSPACES):
        np.testing.assert_allclose(trainer.op_costs[c, :len(sub)], [model.op_costs[c][i] for i in sub], rtol=1e-6)
    assert trainer.fixed_cost == model.fixed
    net = trainer.net
    randomise(net, 5)
    trainer.gate_opt = keras.optimizers.SGD(learning_rate=1.0)
    trainer.gate_opt.build([net.alpha])
    images, labels = batch(7)
    s, u, choice, active = two_paths(net, 7)
    alpha0 = net.alpha.numpy().copy()

    dl_dps = reference_dl_dps(net, images, labels, s, u, training=True)  # the gate step runs BN in training mode
    ps, dps = np_dps_dalpha(alpha0, s, u, active, choice)
    ce_grad = dl_dps[:, None] * dps
    cost_s = np.sum(np.where(s, trainer.op_costs, 0.0), axis=1)
    cost_u = np.sum(np.where(u, trainer.op_costs, 0.0), axis=1)
    expected = trainer.fixed_cost + np.sum(cost_s * ps + cost_u * (1.0 - ps))
    assert (expected > penalty.target) == (side == "cost above the target")
    gap = expected - penalty.target  # d|gap|^b/dgap = b sign(gap) |gap|^(b-1): it pushes up from below the target
    pen_grad = (penalty.a * penalty.b * np.sign(gap) * abs(gap) ** (penalty.b - 1)
                * (cost_s - cost_u)[:, None] * dps)
    assert np.abs(pen_grad).max() > 0.1 * np.abs(ce_grad).max()

    loss, got_expected = trainer.gate_step(images, labels, tf.constant(s), tf.constant(u), tf.constant(choice),
                                           tf.constant(active))
    assert float(got_expected) == pytest.approx(expected, rel=1e-5)
    assert float(loss) > penalty.a * abs(expected - penalty.target) ** penalty.b
    grad = alpha0 - net.alpha.numpy()
    np.testing.assert_allclose(grad, ce_grad + pen_grad, rtol=2e-3, atol=2e-6)
    # penalty alone (CE part removed): what is left is a (E - target)^b differentiated through ps, pu
    np.testing.assert_allclose(grad - ce_grad, pen_grad, rtol=5e-3, atol=5e-6)


@pytest.mark.parametrize("protected", [False, True])
def test_self_simplification_inside_the_step(protected):
    """An op whose logit falls below --prune_threshold leaves at the end of the step and is never sampled again,
    by weight or gate steps; unless it is in the previous optimized subset (--preserve_prev), which protects it."""
    trainer = search.RoundTrainer(SPACE, SUBSPACES, search.OptimConfig(), search.PenaltyConfig(target=1.0, a=0.0),
                                  search.RoundConfig(steps=8, steps_per_epoch=8, batch_size=BATCH, gate_every=1,
                                                     prune_threshold=-1.0))
    alpha = np.zeros(trainer.net.alpha.shape, np.float32)
    alpha[0, 1] = -8.0  # cell 0's mb_k3_t3: far below the threshold, and the gate steps cannot lift it
    trainer.net.alpha.assign(alpha)
    state = search.new_round_state(trainer, [[3], []] if protected else [[], []], seed=0)
    masks = []
    weight_step, gate_step = trainer.weight_step, trainer.gate_step

    def record_weight(images, labels, m):
        masks.append(m.numpy())
        return weight_step(images, labels, m)

    def record_gate(images, labels, s, u, choice, active):
        masks.extend([s.numpy(), u.numpy()])
        return gate_step(images, labels, s, u, choice, active)

    trainer.weight_step, trainer.gate_step = record_weight, record_gate
    counts = []
    for step in range(8):
        before = len(masks)
        trainer.step(state, batch(step), lambda: batch(100 + step))
        counts.append(sum(bool(m[0, 1]) for m in masks[before:]))
    assert bool(state.active[0, 1]) == protected
    assert state.active[0, [0, 2]].all() and state.active[1, :2].all()  # the others are above the threshold
    if not protected:
        assert counts[1:] == [0] * 7
    else:
        assert sum(counts) > 0


def test_weight_decay_reaches_conv_and_dense_kernels_only():
    """The search's rule (search.is_decayed) and the retraining optimiser decay exactly the convolution,
    depthwise and dense kernels: never BN scales and offsets, biases or the normalisation statistics."""
    from nse_tf.nets.child import build_child
    from nse_tf.train.config import TrainConfig
    from nse_tf.train.optimizers import build_optimizer
    from tests.helpers import TINY

    def kernels(layers) -> set[str]:
        kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
        return {layer.kernel.path for layer in layers if isinstance(layer, kinds)}

    net = Supernet(SPACE, SUBSPACES)
    net.build_all()
    variables = net.weight_variables
    decayed = {v.path for v in variables if search.is_decayed(v)}
    assert decayed == kernels(net._flatten_layers()) and len(decayed) < len(variables)

    model = build_child(TINY, dropout=0.1)
    optimizer = build_optimizer(TrainConfig(epochs=1, lr=0.5, warmup_epochs=0, weight_decay=0.1, ema_momentum=None,
                                            momentum=0.0), steps_per_epoch=10, variables=model.trainable_variables)
    before = {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_variables}
    optimizer.apply_gradients([(keras.ops.zeros_like(v), v) for v in model.trainable_variables])
    moved = {v.path for v in model.trainable_variables if not np.array_equal(keras.ops.convert_to_numpy(v), before[v.path])}
    assert moved == kernels(model._flatten_layers()) and moved
    assert all(np.allclose(keras.ops.convert_to_numpy(v), before[v.path] * (1 - 0.5 * 0.1)) for v in model.trainable_variables
               if v.path in moved)


# ---------------------------------------------------------------- (c) branches and combination


def branch_variables(net: Supernet, c: int, j: int) -> list:
    return [v for layer in net.cells_[c].branches[j].all_layers() for v in layer.trainable_variables]


def test_switched_off_branch_gets_no_gradient(net):
    images, labels = batch(1)
    masks = np.array([[True, False, True], [False, True, False]])
    with tf.GradientTape() as tape:
        logits = net.forward_sampled(images, tf.constant(masks), training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    variables = net.weight_variables
    grads = dict(zip([id(v) for v in variables], tape.gradient(loss, variables)))
    assert all(id(v) in grads for c in range(2) for j in range(len(SUBSPACES[c])) for v in branch_variables(net, c, j))
    for c, row in enumerate(masks):
        for j in range(len(SUBSPACES[c])):
            branch_grads = [grads[id(v)] for v in branch_variables(net, c, j)]
            if row[j]:
                assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in branch_grads), (c, j)
            else:
                assert all(g is None or float(tf.reduce_max(tf.abs(g))) == 0.0 for g in branch_grads), (c, j)


@pytest.mark.parametrize("subspaces", [[[0, 3, 9, 12, 18], [0, 3, 9]], [[0], [3]]],
                         ids=["chains of several branches", "one branch per cell"])
def test_running_sums_train_the_same_weights_as_zeros_then_sum(subspaces):
    """The weight step sums a cell's branches inside their conds (``switched_sum``); the plain form returns
    zeros for untaken branches and adds every output (``branch_outputs`` + ``combine``). Ten weight steps on
    changing paths from the same start, momentum and weight decay moving untaken branches too: the same
    weights and BN statistics to float tolerance."""
    config = search.RoundConfig(steps=10, steps_per_epoch=10, batch_size=BATCH)
    new, plain = (search.RoundTrainer(SPACE, subspaces, search.OptimConfig(weight_lr=0.2, warmup_epochs=0),
                                      search.PenaltyConfig(), config) for _ in range(2))
    randomise(new.net, 5)
    start = new.net.get_weights()
    plain.net.set_weights(start)
    for cell in plain.net.cells_:
        cell.call_sampled = cell.call_zeros_then_sum
    rng = np.random.default_rng(7)
    for step in range(10):
        masks = tf.constant(gates.sample_uniform(rng, new.net.all_on(), new.net.slots))
        images, labels = batch(step)
        losses = [float(trainer.weight_step(images, labels, masks)[0]) for trainer in (new, plain)]
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for variable, want, first in zip(new.net.weights, plain.net.get_weights(), start, strict=True):
        got = keras.ops.convert_to_numpy(variable)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=variable.path)
        if search.is_decayed(variable):  # weight decay moves every kernel, taken or not
            assert not np.allclose(got, first), variable.path


def _conds_pass_optionals(concrete: Any) -> bool:
    """Whether a step graph's conds hand intermediates to the backward pass as optionals (variant outputs).
    (Only the graph's own nodes: its library also holds every function the process has traced.)"""
    return any(tf.variant.as_datatype_enum in node.attr["Tout"].list.type
               for node in concrete.graph.as_graph_def().node if node.op in ("If", "StatelessIf"))


def test_steps_without_optionals_train_bit_for_bit_as_with_them(monkeypatch):
    """``branch_gradients`` hands the conds' intermediates to the backward pass without optionals: no cond of
    the step graphs outputs one, and weight and gate steps on changing paths (untaken branches among them)
    give exactly the weights, BN statistics and gate logits of plain ``tape.gradient``."""
    config = search.RoundConfig(steps=6, steps_per_epoch=6, batch_size=BATCH)
    new, plain = (search.RoundTrainer(SPACE, SUBSPACES, search.OptimConfig(weight_lr=0.2, warmup_epochs=0),
                                      search.PenaltyConfig(), config) for _ in range(2))
    randomise(new.net, 5)
    plain.net.set_weights(new.net.get_weights())
    rng = np.random.default_rng(3)
    all_on = new.net.all_on()
    active = tf.constant(all_on)
    for step in range(6):
        masks = tf.constant(gates.sample_uniform(rng, all_on, new.net.slots))
        s, u, choice = (tf.constant(m) for m in gates.sample_two_paths(rng, new.alpha(), all_on, new.net.slots))
        images, labels = batch(step)
        results = []
        for trainer in (new, plain):
            with monkeypatch.context() as patch:
                if trainer is plain:  # traced on its first call: plain tape.gradient, optionals and all
                    patch.setattr(search, "branch_gradients", lambda tape, loss, v: tape.gradient(loss, v))
                results.append([float(t) for t in trainer.weight_step(images, labels, masks)]
                               + [float(t) for t in trainer.gate_step(images, labels, s, u, choice, active)])
        assert results[0] == results[1], step
    for variable, want in zip(new.net.weights, plain.net.get_weights(), strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), want, err_msg=variable.path)
    for trainer, has_optionals in ((new, False), (plain, True)):  # the switch works, and the test can tell
        traced = (trainer.weight_step.get_concrete_function(images, labels, masks),  # the cached traces
                  trainer.gate_step.get_concrete_function(images, labels, s, u, choice, active))
        assert [_conds_pass_optionals(concrete) for concrete in traced] == [has_optionals] * 2
    assert new.tracing_counts() == plain.tracing_counts() == (1, 1)


def test_cell_combination_rule(net):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(2, 8, 8, 8)).astype(np.float32))
    n_cell, r_cell = net.cells_
    n_outs = [b(x, training=False) for b in n_cell.branches]
    r_outs = [b(x, training=False) for b in r_cell.branches]

    # N cell: (x + sum) / (|B| + 1); empty B is the identity
    np.testing.assert_array_equal(n_cell.call_sampled(x, tf.constant([False, False, False]), False).numpy(), x.numpy())
    got = n_cell.call_sampled(x, tf.constant([True, False, True]), False)
    np.testing.assert_allclose(got.numpy(), ((x + n_outs[0] + n_outs[2]) / 3.0).numpy(), atol=1e-5)
    got = n_cell.call_sampled(x, tf.constant([False, True, False]), False)
    np.testing.assert_allclose(got.numpy(), ((x + n_outs[1]) / 2.0).numpy(), atol=1e-5)
    # R cell: sum / |B|
    got = r_cell.call_sampled(x, tf.constant([True, True]), False)
    assert got.shape == (2, 4, 4, 8)
    np.testing.assert_allclose(got.numpy(), ((r_outs[0] + r_outs[1]) / 2.0).numpy(), atol=1e-5)
    got = r_cell.call_sampled(x, tf.constant([False, True]), False)
    np.testing.assert_allclose(got.numpy(), r_outs[1].numpy(), atol=1e-5)
    # an untaken branch returns zeros of the output shape
    outs = r_cell.branch_outputs(x, tf.constant([True, False]), False)
    assert outs[1].shape == (2, 4, 4, 8) and not np.any(outs[1].numpy())


def test_n_cell_all_off_is_identity_in_the_network(net):
    images, _ = batch(2)
    masks = np.array([[False, False, False], [True, False, False]])
    got = net.forward_sampled(images, tf.constant(masks), training=False)
    x = net._stem(images, False)
    want = net._head(net.cells_[1].call_sampled(x, tf.constant(masks[1]), False))
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)


def test_empty_re_subspace_rejected():
    with pytest.raises(ValueError, match="R/E cells need an op"):
        Supernet(SPACE, [[0], []])


# ---------------------------------------------------------------- (d) one trace for every path


def test_one_trace_serves_every_path(monkeypatch):
    trainer = search.RoundTrainer(SPACE, SUBSPACES, search.OptimConfig(), search.PenaltyConfig(),
                                  search.RoundConfig(steps=10, steps_per_epoch=5, batch_size=BATCH))
    state = search.new_round_state(trainer, [[], []], seed=0)
    drawn = []
    sample = search.gates.sample_uniform

    def recording(*args, **kwargs):
        drawn.append(sample(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(search.gates, "sample_uniform", recording)
    train, heldout = batch(0), batch(1)
    for i in range(6):
        stats = trainer.step(state, train, lambda: heldout)
        assert np.isfinite(stats.loss)
        assert (stats.gate_loss is not None) == (i % 2 == 0)
    assert state.step == 6
    assert len({m.tobytes() for m in drawn}) >= 3  # several different paths went through the one trace
    # paths the sampler may not have produced: the N cell empty, everything on
    trainer.weight_step(*train, tf.constant(np.array([[False, False, False], [True, False, False]])))
    trainer.weight_step(*train, tf.constant(trainer.net.all_on()))
    assert trainer.tracing_counts() == (1, 1)


def test_exact_batch_norm_statistics_forget_the_previous_path():
    """bn_mode="exact": every BN layer on the path ends with the mean of the recalibration images' statistics,
    whatever the previous path left there (the method's batch-by-batch EMA keeps a share of it); the layers'
    momenta are restored, and the held-out accuracy does not depend on the inference batch size."""
    trainer = search.RoundTrainer(SPACE, SUBSPACES, search.OptimConfig(), search.PenaltyConfig(target=1.0, a=0.0),
                                  search.RoundConfig(steps=4, steps_per_epoch=4, batch_size=BATCH))
    randomise(trainer.net, 3)
    recal = [batch(s)[0] for s in range(4)]
    images, labels = batch(9)
    heldout = [(images, labels)]
    path_a = np.array([[True, True, False], [True, False, False]])
    path_b = np.array([[False, True, True], [False, True, False]])

    on_path = [layer for c, cell in enumerate(trainer.net.cells_) for j, branch in enumerate(cell.branches)
               if path_b[c, j] for layer in branch.all_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    on_path += [layer for layer in batch_norm_layers(trainer.net) if layer.name.startswith("stem")]
    assert len(on_path) > 2

    def path_statistics():
        return [keras.ops.convert_to_numpy(v).copy() for layer in on_path
                for v in (layer.moving_mean, layer.moving_variance)]

    results = {}
    for mode in ("exact", "ema"):
        for before in (path_a, np.ones_like(path_a)):
            trainer.evaluate(before, recal, heldout, bn_mode=mode, bn_batch_size=BATCH)
            accuracy = trainer.evaluate(path_b, recal, heldout, bn_mode=mode, bn_batch_size=2 * BATCH)
            results[mode, before.sum()] = (accuracy, path_statistics())
    exact = [results["exact", n][1] for n in (path_a.sum(), path_a.size)]
    for a, b in zip(*exact):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    ema = [results["ema", n][1] for n in (path_a.sum(), path_a.size)]
    assert any(not np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(*ema))
    assert {layer.momentum for layer in batch_norm_layers(trainer.net)} == {0.9}
    # the mean over equal passes: two passes over two batches give the mean of each batch's statistics
    single = []
    for part in (recal[0], recal[1]):
        trainer.evaluate(path_b, [part], heldout, bn_mode="exact", bn_batch_size=BATCH)
        single.append(path_statistics())
    trainer.evaluate(path_a, recal, heldout, bn_mode="ema")
    trainer.evaluate(path_b, recal[:2], heldout, bn_mode="exact", bn_batch_size=BATCH)
    assert any(not np.allclose(a, b) for a, b in zip(*single))  # the two batches differ
    for a, b, both in zip(*single, path_statistics()):
        np.testing.assert_allclose(both, (a + b) / 2, rtol=1e-5, atol=1e-6)
    small = [(images[i:i + 2], labels[i:i + 2]) for i in range(0, BATCH, 2)]
    assert trainer.evaluate(path_b, recal, small, bn_mode="exact") == trainer.evaluate(path_b, recal, heldout,
                                                                                       bn_mode="exact")


def test_a_trained_start_makes_the_ema_evaluation_independent_of_the_order():
    """bn_start="trained": the supernet's statistics are restored before each path, so a path's BN statistics
    (and accuracy) are the same whatever was evaluated before it; the method's default keeps the previous one's
    share, so the statistics differ."""
    trainer = search.RoundTrainer(SPACE, SUBSPACES, search.OptimConfig(), search.PenaltyConfig(target=1.0, a=0.0),
                                  search.RoundConfig(steps=4, steps_per_epoch=4, batch_size=BATCH))
    randomise(trainer.net, 5)
    recal = [batch(s)[0] for s in range(3)]
    heldout = [batch(9)]
    path_a = np.array([[True, True, False], [True, False, False]])
    path_b = np.array([[False, True, True], [False, True, False]])
    start = trainer.bn_statistics()

    def after(first, start_statistics):
        trainer.evaluate(first, recal, heldout, start=start_statistics)
        accuracy = trainer.evaluate(path_b, recal, heldout, start=start_statistics)
        return accuracy, trainer.bn_statistics()

    alone = after(path_b, start)  # path b first, then b again
    behind_a = after(path_a, start)
    assert alone[0] == behind_a[0]
    for x, y in zip(alone[1], behind_a[1]):
        np.testing.assert_array_equal(x, y)
    trainer.evaluate(path_b, recal, heldout, start=start)
    lasting = [after(first, None)[1] for first in (path_a, np.ones_like(path_a))]
    assert any(not np.array_equal(x, y) for x, y in zip(*lasting))


def test_a_full_disk_during_a_round_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    import errno

    from nse_tf.search.checkpoints import RoundCheckpoint
    from nse_tf.search.evolution import StateError

    trainer = search.RoundTrainer(SPACE, SUBSPACES, search.OptimConfig(), search.PenaltyConfig(target=1.0, a=0.0),
                                  search.RoundConfig(steps=4, steps_per_epoch=4, batch_size=BATCH))
    ckpt = RoundCheckpoint(str(tmp_path / "ckpt"), trainer, {}, writable=True)
    state = search.new_round_state(trainer, [[], []], seed=0)
    ckpt.save(state)
    state.step = 2

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.manager, "save", disk_full)
    with pytest.raises(StateError, match=r"cannot write the checkpoint of step 2 \(No space left on device\); the "
                                         r"previous checkpoint is intact"):
        ckpt.save(state)
    monkeypatch.undo()
    assert RoundCheckpoint(str(tmp_path / "ckpt"), trainer, {}, writable=True).restore().step == 0


def test_gate_warmup_steps_train_weights_only():
    """--gate_warmup: the round's first gate_warmup_steps iterations take weight steps and no gate step; the
    gate logits stay where they started until then."""
    trainer = search.RoundTrainer(SPACE, SUBSPACES, search.OptimConfig(), search.PenaltyConfig(target=1.0, a=1.0),
                                  search.RoundConfig(steps=5, steps_per_epoch=5, batch_size=BATCH, gate_every=1,
                                                     gate_warmup_steps=3))
    state = search.new_round_state(trainer, [[], []], seed=0)
    alpha0 = trainer.alpha().copy()
    gate_loss = []
    for step in range(5):
        stats = trainer.step(state, batch(step), lambda: batch(100 + step))
        gate_loss.append(stats.gate_loss is not None)
        if step == 2:
            np.testing.assert_array_equal(trainer.alpha(), alpha0)
    assert gate_loss == [False, False, False, True, True]
    assert not np.array_equal(trainer.alpha(), alpha0)
    with pytest.raises(ValueError, match="gate_warmup_steps"):
        search.RoundConfig(steps=5, steps_per_epoch=5, batch_size=BATCH, gate_warmup_steps=6)
