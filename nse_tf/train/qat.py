"""Quantization-aware fine-tuning (tfmot) of a trained child network, and its full-int8 TFLite file.

tfmot quantizes tf_keras (Keras 2) models only, so the network is rebuilt with the builder's tf_keras namespace
(the same layer names, so the trained Keras 3 weights copy over by name), annotated layer by layer
(``annotate``: tfmot's default 8-bit scheme where it has one; the preprocessing and the strided-dilated
subsampling pass values through; the cells' averages quantize their output like tfmot's Add), fine-tuned for a
few epochs with the network's own augmentation and a small cosine learning rate, and converted with the same
settings as the post-training int8 file (uint8 pixels in, float logits out, builtin int8 ops). The fine-tuning
is resumable: one checkpoint per finished epoch, and the data order of epoch e depends only on (seed, e).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator, Sequence

import numpy as np

from nse_tf.data.arrays import ImageArrays
from nse_tf.space.architecture import NetworkSpec
from nse_tf.train.augment import augment_batch
from nse_tf.train.config import TrainConfig, TrainError, TrainSettingError
from nse_tf.utils.atomic import atomic_write_json
from nse_tf.utils.output_paths import disk_error
from nse_tf.utils.state_files import read_json
from nse_tf.utils.settings import at_least, check_fields, positive, setting

STATE_NAME = "qat_state.json"
CHECKPOINT_PREFIX = "qat_ckpt"
# What a fine-tuning's state records, and what to do when it (or its checkpoint) is damaged.
STATE_FIELDS = {"config": dict, "epochs_done": int, "checkpoint": str}
STATE_FIX = f"delete {STATE_NAME} to fine-tune again from the start"


@dataclasses.dataclass(frozen=True)
class QatConfig:
    """The fine-tuning recipe; augmentation and label smoothing come from the network's own training recipe. Each
    field with a flag is the fine-tuning tools' flag of its name (``cli/fine_tuning.py``)."""

    epochs: int = setting(3, "Fine-tuning epochs.", check=at_least(1))
    lr: float = setting(0.005, "Peak learning rate (cosine to 0).", check=positive)  # cosine from the first step
    batch_size: int = setting(128, "Images per step.", check=at_least(1))
    momentum: float = setting(0.9, "SGD Nesterov momentum.", flags=())
    seed: int = setting(0, "Seed of the data order and augmentation.")
    num_calibration: int = setting(500, "Training images that calibrate the int8 file (its input and preprocessing).",
                                   check=at_least(1))

    def __post_init__(self) -> None:
        check_fields(self, TrainSettingError)


def tf_keras_copy(spec: NetworkSpec, model: Any, tile_large_depthwise: bool = True) -> Any:
    """The tf_keras build of ``spec`` holding ``model``'s weights (copied by layer name). With
    ``tile_large_depthwise`` (the default), depthwise convs over 25 taps are built as the TFLite exports run them
    (``nets.layers.TiledDepthwise``): each tile gets its slice of the kernel with the BN after it folded in, so
    that fine-tuning trains, and the int8 file runs, the tiles."""
    from nse_tf.export.tiling import folded_kernel_and_bias
    from nse_tf.nets.child import build_child
    from nse_tf.nets.depthwise_tiles import kernel_tiles
    from nse_tf.nets.layers import Namespace

    namespace = Namespace.tf_keras(tile_large_depthwise)
    copy = build_child(spec, namespace)
    names = {layer.name for layer in copy.layers}
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name in names:
            copy.get_layer(layer.name).set_weights(weights)
        elif f"{layer.name}_pad" in names:  # a tiled conv: its BN (conv_bn's `{prefix}_bn`) folds into the tiles
            kernel, bias = folded_kernel_and_bias(layer, model.get_layer(layer.name.removesuffix("_conv") + "_bn"))
            for index, (r0, r1, c0, c1) in enumerate(kernel_tiles(kernel.shape[0], namespace.tiled_depthwise_taps)):
                if f"{layer.name}_tile{index}" in names:  # absent: it reads only padding
                    tile = copy.get_layer(f"{layer.name}_tile{index}")
                    tile.set_weights([kernel[r0:r1, c0:c1]] + ([bias] if tile.use_bias else []))
        elif not (layer.name.endswith("_bn") and layer.name.removesuffix("_bn") + "_conv_pad" in names):
            # the two builds disagree: a bug, not an input error
            raise RuntimeError(f"layer {layer.name} of {spec.name} has no tf_keras counterpart")
    return copy


def _configs() -> dict[str, Any]:
    """The QuantizeConfigs of the layers tfmot's default scheme does not cover (defined on first use, since
    importing tfmot imports TensorFlow)."""
    import tensorflow_model_optimization as tfmot

    quantize = tfmot.quantization.keras

    class PassThrough(quantize.QuantizeConfig):
        """No weights, no activations, no output quantizer: int8 values pass as they are."""

        def get_weights_and_quantizers(self, layer: Any) -> list:
            return []

        def get_activations_and_quantizers(self, layer: Any) -> list:
            return []

        def set_quantize_weights(self, layer: Any, quantize_weights: list) -> None:
            pass

        def set_quantize_activations(self, layer: Any, quantize_activations: list) -> None:
            pass

        def get_output_quantizers(self, layer: Any) -> list:
            return []

        def get_config(self) -> dict:
            return {}

    class OutputOnly(PassThrough):
        """The output quantized as tfmot's default scheme quantizes an Add's."""

        def get_output_quantizers(self, layer: Any) -> list:
            return [quantize.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                               narrow_range=False)]

    return {"PassThrough": PassThrough, "OutputOnly": OutputOnly}


def quantize(model: Any) -> Any:
    """The quantization-aware model of a tf_keras child network (``tf_keras_copy``), weights kept."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    from nse_tf.nets.tf_keras_layers import Subsample

    quantize_keras = tfmot.quantization.keras
    configs = _configs()

    def annotate(layer: Any) -> Any:
        if isinstance(layer, (tf_keras.layers.Normalization, Subsample)):
            return quantize_keras.quantize_annotate_layer(layer, configs["PassThrough"]())
        if isinstance(layer, tf_keras.layers.Average):
            return quantize_keras.quantize_annotate_layer(layer, configs["OutputOnly"]())
        return quantize_keras.quantize_annotate_layer(layer)

    # clone_model wraps the original layer objects, so the annotated model keeps their weights
    annotated = tf_keras.models.clone_model(model, clone_function=annotate)
    with quantize_keras.quantize_scope({**configs, "Subsample": Subsample}):
        return quantize_keras.quantize_apply(annotated)


def _batches(data: ImageArrays, recipe: TrainConfig, config: QatConfig, epoch: int) -> Iterator[tuple]:
    rng = np.random.default_rng([config.seed, epoch, 0x9A7])
    order = rng.permutation(len(data.x_train))
    for start in range(0, len(order) - config.batch_size + 1, config.batch_size):  # full batches only
        index = order[start:start + config.batch_size]
        yield augment_batch(data.x_train[index], recipe, rng), data.y_train[index]


def fine_tune(qat_model: Any, data: ImageArrays, recipe: TrainConfig, config: QatConfig, run_dir: str, *,
              log: Any = print, source: dict | None = None, callbacks: Sequence[Any] = (), label: str = "QAT") -> int:
    """Fine-tune ``qat_model`` in ``run_dir`` (resuming after its last finished epoch); returns the epochs done.
    ``source`` (say, the entry and its weights' sha256) is recorded, and a run directory of another source or
    recipe is refused rather than resumed. ``callbacks`` (tf_keras callbacks, such as tfmot's pruning step) see
    the train begin after the restore, every batch begin and every epoch end, as under ``fit``."""
    import tensorflow as tf
    import tf_keras

    os.makedirs(run_dir, exist_ok=True)
    steps = len(data.x_train) // config.batch_size
    schedule = tf_keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=config.epochs * steps)
    optimizer = tf_keras.optimizers.SGD(schedule, momentum=config.momentum, nesterov=True)
    qat_model.compile(optimizer=optimizer,
                      loss=tf_keras.losses.CategoricalCrossentropy(from_logits=True,
                                                                  label_smoothing=recipe.label_smoothing))
    optimizer.build(qat_model.trainable_variables)  # its slots exist before a restore, so momentum comes back
    checkpoint = tf.train.Checkpoint(model=qat_model, optimizer=optimizer)
    identity = {"config": dataclasses.asdict(config), "source": source}
    state_path = os.path.join(run_dir, STATE_NAME)
    done = 0
    if os.path.exists(state_path):
        state = read_json(state_path, STATE_FIX, fields=STATE_FIELDS, error=TrainError)
        if {"config": state["config"], "source": state.get("source")} != identity:
            raise TrainError(f"{run_dir} holds a QAT run with other settings or of other weights "
                             f"({state['config']}, {state.get('source')}); use another --run_dir or delete it")
        done = int(state["epochs_done"])
        if done:
            prefix = os.path.join(run_dir, os.path.basename(state["checkpoint"]))
            try:
                checkpoint.restore(prefix).expect_partial()  # write() saves no counter
            except (OSError, ValueError, KeyError, IndexError, RuntimeError, AssertionError,
                    tf.errors.OpError) as err:  # a truncated or missing checkpoint (TF's errors for each)
                raise TrainError(f"{prefix}: the checkpoint of epoch {done} does not read back "
                                 f"({' '.join(str(err).split())[:160]}); {STATE_FIX}") from None
    eye = np.eye(int(data.y_train.max()) + 1, dtype=np.float32)
    for callback in callbacks:
        callback.set_model(qat_model)
        callback.on_train_begin()
    for epoch in range(done, config.epochs):
        losses = []
        for batch, (x, y) in enumerate(_batches(data, recipe, config, epoch)):
            for callback in callbacks:
                callback.on_train_batch_begin(batch)
            losses.append(float(qat_model.train_on_batch(x, eye[y])))
        for callback in callbacks:
            callback.on_epoch_end(epoch)
        try:
            prefix = checkpoint.write(os.path.join(run_dir, f"{CHECKPOINT_PREFIX}-{epoch + 1}"))
            atomic_write_json(state_path, {**identity, "epochs_done": epoch + 1,
                                           "checkpoint": os.path.basename(prefix)})
        except Exception as err:  # a full disk: the state still names the previous epoch's checkpoint, intact
            refused = disk_error(err)
            if refused is None:
                raise
            raise TrainError(f"{run_dir}: cannot write the {label} checkpoint of epoch {epoch + 1} "
                             f"({refused.strerror}); the previous one is intact: free the space and rerun to "
                             "resume") from None
        for old in os.listdir(run_dir):  # keep the newest checkpoint only
            if old.startswith(f"{CHECKPOINT_PREFIX}-") and not old.startswith(os.path.basename(prefix) + "."):
                os.remove(os.path.join(run_dir, old))
        log(f"{label} epoch {epoch + 1}/{config.epochs}: training loss {np.mean(losses):.4f}")
    return config.epochs


def convert(qat_model: Any, calibration_images: np.ndarray) -> bytes:
    """The full-int8 TFLite file of the QAT model: uint8 pixels in (scale 1, zero point 0), float logits out."""
    import tensorflow as tf

    from nse_tf.export.convert import configure_int8

    converter = tf.lite.TFLiteConverter.from_keras_model(qat_model)
    configure_int8(converter, calibration_images)
    return converter.convert()
