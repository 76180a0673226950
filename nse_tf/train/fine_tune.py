"""Fine-tuning a trained network on another dataset (``tools/train.py --init_from=<zoo entry>``): the weights it
starts from, the recipe's fine-tuning defaults, and the schedule's phases (the backbone frozen first, then all).

A fresh classifier on top of trained features gives large gradients at first; training it alone for a few epochs
(the backbone frozen, its BN layers in inference mode, as Keras's transfer-learning guide does) keeps them from
wrecking the features, and the whole network then trains at a learning rate well below a from-scratch run's.
Each phase has its own optimizer and schedule (warm-up, cosine over the phase's epochs), so a run killed in
either phase resumes with the optimizer state of that phase (``Phase``, ``phase_at``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from nse_tf.nets.transfer import CLASSIFIER
from nse_tf.train.config import TrainConfig, TrainError

# The recipe where a fine-tuning run leaves a flag unset: a tenth of the from-scratch peak learning rate, no
# warm-up (the frozen epochs warm the classifier up), no EMA (a short run's EMA without bias correction lags
# far behind its weights), one frozen epoch.
FINE_TUNING_DEFAULTS: dict[str, Any] = {"epochs": 10, "lr": 0.01, "warmup_epochs": 0.0, "ema_momentum": None}
DEFAULT_FREEZE_EPOCHS = 1


@dataclasses.dataclass(frozen=True)
class FineTuning:
    """Where a run's weights start: a zoo entry (its name and its weights' sha256, recorded in the run's config so
    that a rerun resumes only from the same weights), and the epochs its backbone stays frozen.

    ``load`` builds the entry's network for the run's data with every reusable weight
    (``nse_tf.create_model(entry, pretrained=True, num_classes=..., input_shape=...)``); the training loop calls
    it after seeding, so the fresh classifier is the same on every run of one seed."""

    entry: str
    weights_sha256: str
    freeze_epochs: int = 0
    load: Callable[[], Any] | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.freeze_epochs, bool) or not isinstance(self.freeze_epochs, int) or self.freeze_epochs < 0:
            raise TrainError(f"freeze_epochs must be a whole number >= 0, got {self.freeze_epochs!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.entry, "weights_sha256": self.weights_sha256, "freeze_epochs": self.freeze_epochs}


@dataclasses.dataclass(frozen=True)
class Phase:
    """Epochs ``[start, end)`` of a run trained with one optimizer: ``recipe`` is the run's recipe over the
    phase's epochs, ``frozen`` whether only the classifier trains."""

    start: int
    end: int
    frozen: bool
    recipe: TrainConfig


def phases(config: TrainConfig, freeze_epochs: int = 0) -> list[Phase]:
    """The run's phases: ``freeze_epochs`` with the backbone frozen (cosine from ``lr``, no warm-up), then the rest
    with everything training (the recipe's warm-up, then cosine); a from-scratch run is one phase, its recipe."""
    if freeze_epochs > config.epochs:
        raise TrainError(f"freeze_epochs ({freeze_epochs}) must not exceed epochs ({config.epochs})")
    if not freeze_epochs:
        return [Phase(0, config.epochs, False, config)]
    plan = [Phase(0, freeze_epochs, True, dataclasses.replace(config, epochs=freeze_epochs, warmup_epochs=0.0))]
    rest = config.epochs - freeze_epochs
    if rest:
        plan.append(Phase(freeze_epochs, config.epochs, False, dataclasses.replace(
            config, epochs=rest, warmup_epochs=min(config.warmup_epochs, float(rest)))))
    return plan


def phase_at(plan: list[Phase], epochs_done: int) -> int:
    """The index of the phase that wrote the checkpoint after ``epochs_done`` epochs (the first phase for none):
    the optimizer a resumed run must build before it loads that checkpoint."""
    return next((i for i, p in enumerate(plan) if p.start < epochs_done <= p.end), 0)


def freeze_backbone(model: Any, frozen: bool) -> None:
    """Every layer but the classifier frozen (BN then in inference mode), or everything trainable again."""
    for layer in model.layers:
        if layer.weights:
            layer.trainable = not frozen or layer.name == CLASSIFIER


def initialise(model: Any, pretrained: Any) -> None:
    """``model`` (the run's network, with its dropout) given every weight of ``pretrained`` (the same network,
    built by ``FineTuning.load``), layer by layer name; any layer it lacks is an error, never a silent fresh one."""
    source = {layer.name: layer for layer in pretrained.layers if layer.weights}
    missing = [layer.name for layer in model.layers if layer.weights and (
        layer.name not in source or [tuple(w.shape) for w in source[layer.name].weights]
        != [tuple(w.shape) for w in layer.weights])]
    if missing:
        raise TrainError(f"the pretrained network has no weights for {', '.join(missing[:5])}"
                         f"{', ...' if len(missing) > 5 else ''}")
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(source[layer.name].get_weights())
