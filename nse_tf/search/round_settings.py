"""How a search round trains: its optimisers and its resource penalty, declared as settings
(``nse_tf.utils.settings``). Kept apart from the round's trainer (TensorFlow), so that flags and saved configs
build them without it and the evolution can name the target's flag."""

from __future__ import annotations

import dataclasses

from nse_tf.utils.settings import Flag, at_least, between, check_fields, positive, setting


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Optimisers of the search (section 5): SGD Nesterov for weights, Adam(beta1=0) for gates."""

    weight_lr: float = setting(0.4, "Peak SGD learning rate (cosine to 0 each round).", check=positive)
    warmup_lr: float = setting(0.1, "Learning rate at the start of warm-up.", check=positive)
    warmup_epochs: float = setting(2.0, "Warm-up epochs per round.", check=at_least(0))
    weight_decay: float = setting(4e-5, "L2 on conv/dense kernels (not BN, not biases).", check=at_least(0))
    momentum: float = setting(0.9, "Nesterov momentum.", check=between(0, 1, high_open=True))
    gate_lr: float = setting(0.005, "Adam learning rate of the gate logits (beta1 0, beta2 0.999).", check=positive)
    gate_beta1: float = setting(0.0, "Adam beta1 of the gate logits.", flags=(), check=between(0, 1, high_open=True))
    gate_beta2: float = setting(0.999, "Adam beta2 of the gate logits.", flags=(),
                                check=between(0, 1, high_open=True))

    def __post_init__(self) -> None:
        check_fields(self)


@dataclasses.dataclass(frozen=True)
class PenaltyConfig:
    """Resource penalty a * |E[cost] - target|^b, in the search's cost unit (M MACs, or ms for latency)."""

    target: float = setting(300.0, "Resource target.", flags=(
        Flag("target_macs", 300.0, "Resource target in M MACs (multiply-accumulates), with {cost}=macs.", "macs"),
        Flag("target_ms", None, "Resource target in ms of the latency table, with {cost}=latency.", "latency")),
        check=positive, label="target cost")
    a: float = setting(1e-5, "Penalty a * |E[cost] - target|^b: a (per M MACs, or per ms).", flag="penalty_a",
                       check=at_least(0), label="a (the penalty factor)")
    # |x|^b with b < 1 has an infinite slope at the target: NaN gate gradients there
    b: float = setting(2.0, "Penalty exponent b.", flag="penalty_b", check=at_least(1),
                       label="b (the penalty exponent)")

    def __post_init__(self) -> None:
        check_fields(self)
