"""Retraining a child network from scratch: Keras 3 + numpy only, so it runs under any backend.

``KERAS_BACKEND=jax python tools/train.py ...`` runs the same code as the TensorFlow backend: the
input pipeline is a ``keras.utils.PyDataset`` over numpy arrays with numpy augmentation, and the
optimiser, schedule, EMA and losses are Keras's own. A run directory holds everything; rerunning
the same command resumes from the last finished epoch (checkpoints are written atomically), and a
finished run is not retrained.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import math
import os
import time
from typing import Any, Callable

import numpy as np

from nse_tf.architecture import NetworkSpec
from nse_tf.batch_norm import average_statistics, batch_norm_layers
from nse_tf.io_utils import atomic_write_json

TRAIN_FORMAT = "nse_tf.train_config"
TRAIN_VERSION = 1
WEIGHTS_NAME = "model.weights.h5"
NETWORK_NAME = "network.json"
RESULT_NAME = "result.json"
CONFIG_NAME = "train_config.json"
CHECKPOINT_STATE_NAME = "checkpoint.json"
HISTORY_NAME = "history.csv"
# Training batches (unaugmented, a fixed sample of the training split) over which BN statistics are
# re-estimated for the EMA weights before each validation and for the saved model.
BN_RECALIBRATION_BATCHES = 20


class TrainError(ValueError):
    """A training setting, dataset or run directory is unusable; the message names it."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The whole retraining recipe; saved beside the weights so a zoo entry says how it was trained."""

    epochs: int = 60
    batch_size: int = 128
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum) or "adamw"
    lr: float = 0.1
    warmup_epochs: float = 2.0
    min_lr_fraction: float = 0.0  # the cosine ends at lr * this
    momentum: float = 0.9
    weight_decay: float = 5e-5  # Keras's decoupled decay (var -= lr * wd * var), kernels only
    label_smoothing: float = 0.1
    ema_momentum: float | None = 0.999  # None: no EMA; else the evaluated/saved weights are the EMA
    flip: bool = True
    crop_padding: int = 2
    erase_probability: float = 0.0  # random erasing (cutout-style) of one rectangle per image
    dropout: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}
        for name, value in positive.items():
            if not value > 0:
                raise TrainError(f"{name} must be positive, got {value}")
        if self.optimizer not in ("sgd", "adamw"):
            raise TrainError(f"optimizer must be sgd or adamw, got {self.optimizer!r}")
        ranges = {"warmup_epochs": (self.warmup_epochs, 0.0, float(self.epochs)),
                  "min_lr_fraction": (self.min_lr_fraction, 0.0, 1.0), "momentum": (self.momentum, 0.0, 1.0),
                  "label_smoothing": (self.label_smoothing, 0.0, 1.0),
                  "erase_probability": (self.erase_probability, 0.0, 1.0), "dropout": (self.dropout, 0.0, 0.99)}
        for name, (value, low, high) in ranges.items():
            if not low <= value <= high:
                raise TrainError(f"{name} must be in [{low:g}, {high:g}], got {value}")
        if self.weight_decay < 0:
            raise TrainError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.ema_momentum is not None and not 0.0 < self.ema_momentum < 1.0:
            raise TrainError(f"ema_momentum must be in (0, 1) or None, got {self.ema_momentum}")
        if not 0 <= self.crop_padding <= 8:
            raise TrainError(f"crop_padding must be in [0, 8], got {self.crop_padding}")

    def to_dict(self) -> dict[str, Any]:
        return {"format": TRAIN_FORMAT, "version": TRAIN_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "train config") -> "TrainConfig":
        if data.get("format") != TRAIN_FORMAT or data.get("version") != TRAIN_VERSION:
            raise TrainError(f"{source}: not an nse_tf train config v{TRAIN_VERSION}")
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


@dataclasses.dataclass(frozen=True)
class ImageArrays:
    """A labelled image classification dataset in memory: uint8 NHWC images, int labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def load_arrays(dataset: str = "fashion_mnist", data_dir: str | None = None) -> ImageArrays:
    """``fashion_mnist`` (the Debian IDX files) or ``npz:<path>`` with x_train/y_train/x_test/y_test."""
    if dataset == "fashion_mnist":
        from nse_tf.data.idx import load_fashion_mnist

        data = load_fashion_mnist(data_dir)
        return ImageArrays(data.x_train, data.y_train, data.x_test, data.y_test, "fashion_mnist")
    if dataset.startswith("npz:"):
        return _load_npz(dataset[4:])
    raise TrainError(f"dataset {dataset!r} is not supported by retraining: use fashion_mnist or npz:<path>")


def _load_npz(path: str) -> ImageArrays:
    import zipfile

    if not os.path.exists(path):
        raise TrainError(f"dataset file {path} does not exist")
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in keys if k in f}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise TrainError(f"{path}: not a readable .npz file ({err})") from None
    except (AttributeError, TypeError):  # np.load returned an array: a .npy file, not an archive
        raise TrainError(f"{path}: not an .npz archive of x_train, y_train, x_test, y_test") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise TrainError(f"{path} lacks arrays {missing}")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim == 3:
            x = arrays[f"x_{split}"] = x[..., None]
        if x.ndim != 4 or min(x.shape, default=0) < 1:
            raise TrainError(f"{path}: x_{split} must be (N, H, W[, C]) images, got shape {x.shape}")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise TrainError(f"{path}: y_{split} must be a vector of integer labels, got {y.dtype} {y.shape}")
        if len(x) != len(y):
            raise TrainError(f"{path}: x_{split} has {len(x)} images but y_{split} has {len(y)} labels")
        if y.size and y.min() < 0:
            raise TrainError(f"{path}: y_{split} holds a negative label ({int(y.min())})")
    return ImageArrays(name=f"npz:{os.path.basename(path)}", **arrays)


def heldout_arrays(data: ImageArrays, heldout: int, seed: int) -> ImageArrays:
    """The training images split as a search splits them (``heldout_split``): train on the rest, and the
    held-out images take the test split's place, so a run never sees the test set (ranking, selection).

    A search's round r carves its held-out split with data seed + 1000 r (``SearchRun.round_splits``)."""
    from nse_tf.data.idx import heldout_split

    try:
        train_idx, heldout_idx = heldout_split(len(data.x_train), heldout, seed)
    except ValueError as err:
        raise TrainError(f"heldout_examples: {err}") from None
    if heldout == 0:
        raise TrainError("heldout_examples must be positive to evaluate on a held-out split")
    return ImageArrays(data.x_train[train_idx], data.y_train[train_idx], data.x_train[heldout_idx],
                       data.y_train[heldout_idx], heldout_name(data.name, heldout, seed))


def heldout_name(dataset: str, heldout: int, seed: int) -> str:
    """The dataset name a held-out retraining records (and a rerun must match)."""
    return f"{dataset}:heldout={heldout},seed={seed}"


def augment_batch(images: np.ndarray, config: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """Random horizontal flip, random crop from a zero-padded image, optional random erasing."""
    x = images.astype(np.float32)
    n, h, w, _ = x.shape
    if config.flip:
        flip = rng.random(n) < 0.5
        x[flip] = x[flip, :, ::-1]
    if config.crop_padding:
        p = config.crop_padding
        padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        dy, dx = rng.integers(0, 2 * p + 1, size=(2, n))
        rows = dy[:, None] + np.arange(h)[None, :]
        cols = dx[:, None] + np.arange(w)[None, :]
        x = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    if config.erase_probability > 0:
        for i in np.flatnonzero(rng.random(n) < config.erase_probability):
            area = rng.uniform(0.02, 0.25) * h * w
            ratio = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
            eh, ew = min(h, int(round(math.sqrt(area * ratio)))), min(w, int(round(math.sqrt(area / ratio))))
            y0, x0 = rng.integers(0, h - eh + 1), rng.integers(0, w - ew + 1)
            x[i, y0:y0 + eh, x0:x0 + ew] = rng.uniform(0, 255, size=(eh, ew, x.shape[3]))
    return x


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


def make_training_dataset(images: np.ndarray, labels: np.ndarray, num_classes: int, config: TrainConfig,
                          start_epoch: int = 0) -> Any:
    """An endless PyDataset whose item ``i`` is batch ``i % steps`` of epoch ``start_epoch + i // steps``.

    Keras reads an endless PyDataset with one generator across epochs (``fit(steps_per_epoch=...)``),
    so the item index is the only state: batch contents depend on (seed, epoch, batch) alone and a
    resumed run sees the same data as an uninterrupted one. (A finite PyDataset gets its batches
    shuffled by Python's global RNG and ``on_epoch_end`` calls that do not line up with epochs.)
    """
    import keras

    steps = len(images) // config.batch_size  # drop the remainder: fixed batch shape, one trace

    class ShuffledAugmented(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False, max_queue_size=4)
            self._orders: dict[int, np.ndarray] = {}

        @property
        def num_batches(self) -> None:
            return None

        def steps_per_epoch(self) -> int:
            return steps

        def order(self, epoch: int) -> np.ndarray:
            if epoch not in self._orders:
                self._orders = {epoch: np.random.default_rng([config.seed, epoch]).permutation(len(images))}
            return self._orders[epoch]

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            epoch, batch = start_epoch + index // steps, index % steps
            take = self.order(epoch)[batch * config.batch_size:(batch + 1) * config.batch_size]
            rng = np.random.default_rng([config.seed, epoch, batch, 1])
            return augment_batch(images[take], config, rng), one_hot(labels[take], num_classes)

    return ShuffledAugmented()


def build_optimizer(config: TrainConfig, steps_per_epoch: int) -> Any:
    import keras

    total = config.epochs * steps_per_epoch
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.lr if warmup == 0 else config.lr * 0.01, decay_steps=max(1, total - warmup),
        alpha=config.min_lr_fraction, warmup_target=None if warmup == 0 else config.lr, warmup_steps=warmup)
    ema = {"use_ema": config.ema_momentum is not None, "ema_momentum": config.ema_momentum or 0.99}
    wd = config.weight_decay or None
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=config.momentum, nesterov=True, weight_decay=wd, **ema)
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay, **ema)
    # Decay only conv/dense kernels: not BN scales/offsets, not biases (as the search does).
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def set_cpu_threads(threads: int) -> None:
    """Size TensorFlow's CPU thread pools (intra- and inter-op) before it runs its first op.

    Small networks do not keep two cores busy from one process: on this 2-core machine one run took
    505 ms per step of batch 128 with TensorFlow's default pools, and two runs side by side with one
    thread each took 686 ms per step apiece, 1.47x the images per second in total. So several zoo
    models train faster side by side with ``threads=1`` than one after another. ``0`` keeps the default.
    """
    if threads < 0:
        raise TrainError(f"threads must be >= 0, got {threads}")
    if threads == 0:
        return
    import keras  # only now: a tool checking its flags starts no backend for the default

    if keras.backend.backend() != "tensorflow":
        raise TrainError(f"threads sizes TensorFlow's thread pools; the {keras.backend.backend()} backend "
                         "does not use them (leave it 0)")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def use_xla() -> bool | str:
    """XLA except for the TensorFlow backend on CPU only, where it made a training step of a 6 M-MAC
    network 4.4x slower (2283 vs 518 ms at batch 128 on 2 cores) than TF's own kernels."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return "auto"
    import tensorflow as tf

    return "auto" if tf.config.list_physical_devices("GPU") else False


def compile_model(model: Any, config: TrainConfig, steps_per_epoch: int) -> None:
    import keras

    model.compile(
        optimizer=build_optimizer(config, steps_per_epoch),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="top1"), keras.metrics.TopKCategoricalAccuracy(5, "top5")],
        jit_compile=use_xla())


def compute_device() -> str:
    """What this process trains on, for the record: ``"gpu: NVIDIA H200"`` or ``"cpu: 2 cores"``."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return f"{device.platform}: {device.device_kind}"
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return f"gpu: {tf.config.experimental.get_device_details(gpus[0]).get('device_name', gpus[0].name)}"
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"gpu: {torch.cuda.get_device_name(0)}"
    return f"cpu: {os.cpu_count()} cores"


def epoch_checkpoint_callback(run_dir: str, processes: list[dict[str, Any]]) -> Any:
    """A Keras callback that checkpoints model, optimizer and RNG states after every epoch.

    ``processes[-1]`` is this process's record (backend, device, epochs, seconds); it advances with
    each checkpoint and is saved in the same atomic write, so a resumed run knows where every epoch ran.
    """
    import keras

    record, started = processes[-1], time.time()

    class EpochCheckpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            record["epochs"][1] = epoch + 1
            record["seconds"] = round(time.time() - started, 1)
            save_checkpoint(self.model, run_dir, epoch + 1, processes)

    return EpochCheckpoint()


def recalibration_images(images: np.ndarray, config: TrainConfig) -> np.ndarray:
    """The fixed, unaugmented training images over which BN statistics are re-estimated."""
    count = min(len(images), BN_RECALIBRATION_BATCHES * config.batch_size)
    take = np.sort(np.random.default_rng([config.seed, 7]).permutation(len(images))[:count])
    return images[take].astype(np.float32)


def recalibrate_batch_norm(model: Any, images: np.ndarray, batch_size: int) -> None:
    """Re-estimate every BN layer's moving mean and variance for the model's current weights: the
    cumulative average over ``images`` in batches, in training mode (as SWA's ``update_bn`` does).

    An EMA of the weights needs it. BN's moving statistics follow the raw weights, not their average:
    at epoch 3 of the 6 M-MAC baseline, the EMA weights scored 9.9% top-1 with the moving statistics
    and 86.7% with recalibrated ones (raw weights: 88.4%). The dropout RNG states are left as they were,
    so recalibrating does not change the rest of a run.
    """
    generators = _seed_generators(model)
    states = [np.asarray(g.state.value) for g in generators]
    try:
        average_statistics(batch_norm_layers(model), lambda batch: model(batch, training=True),
                           (images[start:start + batch_size]
                            for start in range(0, len(images) - batch_size + 1, batch_size)))
    finally:
        for generator, state in zip(generators, states):
            generator.state.assign(state)


def ema_validation_callback(images: np.ndarray, batch_size: int) -> Any:
    """Keras's ``SwapEMAWeights`` that also re-estimates BN statistics for the EMA weights before
    validating, and puts the training ones back afterwards (training goes on exactly as without it)."""
    import keras

    class EMAValidation(keras.callbacks.SwapEMAWeights):
        def on_test_begin(self, logs: dict | None = None) -> None:
            super().on_test_begin(logs)
            self._moving = [(v, keras.ops.convert_to_numpy(v)) for layer in batch_norm_layers(self.model)
                            for v in (layer.moving_mean, layer.moving_variance)]
            recalibrate_batch_norm(self.model, images, batch_size)

        def on_test_end(self, logs: dict | None = None) -> None:
            for variable, value in getattr(self, "_moving", []):
                variable.assign(value)
            self._moving = []
            super().on_test_end(logs)

    return EMAValidation(swap_on_epoch=False)


def _seed_generators(model: Any) -> list[Any]:
    return [g for layer in model._flatten_layers() for g in getattr(layer, "_seed_generators", [])]


def save_checkpoint(model: Any, run_dir: str, epochs_done: int, processes: list[dict[str, Any]]) -> None:
    """``checkpoint-<epoch>.weights.h5`` (model and optimizer), then the JSON that names it, both atomic;
    older checkpoints go only after that, so a kill at any moment leaves one consistent checkpoint.

    The JSON also holds the dropout RNG states (not part of Keras weights files), so a resumed run
    draws the same dropout masks as an uninterrupted one, and the records of the processes so far.
    """
    name = f"checkpoint-{epochs_done}.weights.h5"
    tmp = os.path.join(run_dir, f".tmp-{name}")
    seeds = [np.asarray(g.state.value).tolist() for g in _seed_generators(model)]
    try:
        model.save_weights(tmp, overwrite=True)
        os.replace(tmp, os.path.join(run_dir, name))
        atomic_write_json(os.path.join(run_dir, CHECKPOINT_STATE_NAME),
                          {"epochs_done": epochs_done, "weights": name, "seeds": seeds, "processes": processes})
    except OSError as err:  # a full disk, a lost mount: the previous checkpoint and its JSON are untouched
        if os.path.exists(tmp):
            os.remove(tmp)
        previous = f"epoch {epochs_done - 1}'s checkpoint is intact" if epochs_done > 1 else "nothing is lost"
        raise TrainError(f"{run_dir}: cannot write the checkpoint of epoch {epochs_done} "
                         f"({err.strerror or err}); {previous}: free the space and rerun to resume") from None
    remove_checkpoints(run_dir, keep=name)


def remove_checkpoints(run_dir: str, keep: str | None = None) -> None:
    for name in os.listdir(run_dir):
        if name.startswith(("checkpoint-", ".tmp-checkpoint-")) and name.endswith(".weights.h5") and name != keep:
            os.remove(os.path.join(run_dir, name))


def restore_checkpoint(model: Any, run_dir: str) -> tuple[int, list[dict[str, Any]]]:
    """Epochs already done (0 for a fresh run) and the records of the processes that ran them; the
    model and its optimizer hold their state. (Checkpoints from before the records have none.)"""
    state_path = os.path.join(run_dir, CHECKPOINT_STATE_NAME)
    if not os.path.exists(state_path):
        return 0, []
    generators = _seed_generators(model)
    try:
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
        epochs_done, weights, seeds = int(state["epochs_done"]), state["weights"], state["seeds"]
        processes = list(state.get("processes", []))
        if len(seeds) != len(generators):
            raise ValueError(f"{len(seeds)} RNG states for {len(generators)} random layers")
    except (ValueError, KeyError, TypeError) as err:
        raise TrainError(f"{state_path}: unreadable checkpoint state ({err}); delete the run directory to "
                         "start over") from None
    model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(run_dir, weights))
    for generator, seed in zip(generators, seeds):
        generator.state.assign(np.asarray(seed, dtype=generator.state.dtype))
    return epochs_done, processes


def check_run_dir(run_dir: str, spec: NetworkSpec, config: TrainConfig, dataset: str) -> None:
    """A run directory belongs to one network, recipe and dataset: a rerun must not mix them."""
    path = os.path.join(run_dir, CONFIG_NAME)
    wanted = {"train": config.to_dict(), "network": spec.to_dict(), "dataset": dataset}
    if not os.path.exists(path):
        from nse_tf.layers import INITIALIZATION

        os.makedirs(run_dir, exist_ok=True)
        atomic_write_json(path, {**wanted, "initialization": INITIALIZATION})  # how this run's weights started
        spec.save(os.path.join(run_dir, NETWORK_NAME))
        return
    with open(path, encoding="utf-8") as f:
        try:
            saved = json.load(f)
        except json.JSONDecodeError as err:
            raise TrainError(f"{path}: not valid JSON ({err})") from None
    for key in ("network", "dataset", "train"):
        if saved.get(key) != wanted[key]:
            diff = key
            if key == "train":
                diff = ", ".join(k for k in wanted[key] if saved[key].get(k) != wanted[key][k])
            raise TrainError(f"{run_dir} holds a run with a different {key} ({diff}); "
                             "use a new --run_dir or the original settings")


def evaluate_arrays(model: Any, images: np.ndarray, labels: np.ndarray, batch_size: int = 500) -> dict[str, float]:
    """Top-1/top-5 of logits on raw uint8 images (the model normalises inside), deterministic batching."""
    from nse_tf.evaluation import top_k_accuracies

    return {**top_k_accuracies(predict_logits(model, images, batch_size), labels), "examples": int(len(labels))}


def predict_logits(model: Any, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    import keras

    outputs = [keras.ops.convert_to_numpy(model(images[i:i + batch_size].astype(np.float32), training=False))
               for i in range(0, len(images), batch_size)]
    return np.concatenate(outputs).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    run_dir: str
    top1: float
    top5: float
    epochs: int
    seconds: float
    backend: str
    # Where each stretch of epochs ran: [{"backend", "device", "epochs": [first, last], "seconds"}], one
    # per process; empty for runs from before the records (and epochs before them are not listed).
    processes: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def train(spec: NetworkSpec, config: TrainConfig, run_dir: str, data: ImageArrays,
          dataset_name: str | None = None, log: Callable[[str], None] = print, verbose: int = 2) -> TrainResult:
    """Train ``spec`` from scratch (or resume) and write weights, network, history and result to ``run_dir``."""
    import keras

    from nse_tf.child import build_child

    shape = tuple(int(s) for s in data.x_train.shape[1:])
    if (spec.space.input_size, spec.space.input_size, spec.space.input_channels) != shape:
        raise TrainError(f"network {spec.name} takes {spec.space.input_size}x{spec.space.input_size}x"
                         f"{spec.space.input_channels} images but dataset {data.name} has {shape}")
    if spec.space.num_classes != data.num_classes:
        raise TrainError(f"network {spec.name} has {spec.space.num_classes} classes but dataset {data.name} "
                         f"has {data.num_classes}")
    check_run_dir(run_dir, spec, config, dataset_name or data.name)
    result_path = os.path.join(run_dir, RESULT_NAME)
    if os.path.exists(result_path):
        with open(result_path, encoding="utf-8") as f:
            done = json.load(f)
        log(f"{run_dir} is already trained (test top-1 {done['top1']:.4f}); nothing to do")
        return TrainResult(**done)

    keras.utils.set_random_seed(config.seed)
    model = build_child(spec, dropout=config.dropout)
    steps_per_epoch = len(data.x_train) // config.batch_size
    if steps_per_epoch == 0:
        raise TrainError(f"batch_size {config.batch_size} exceeds the {len(data.x_train)} training images")
    compile_model(model, config, steps_per_epoch)
    start_epoch, processes = restore_checkpoint(model, run_dir)
    if start_epoch:
        log(f"resuming {run_dir} after epoch {start_epoch}/{config.epochs}")
    processes.append({"backend": keras.backend.backend(), "device": compute_device(),
                      "epochs": [start_epoch + 1, start_epoch], "seconds": 0.0})
    callbacks = [epoch_checkpoint_callback(run_dir, processes),
                 keras.callbacks.CSVLogger(os.path.join(run_dir, HISTORY_NAME), append=True)]
    calibration = recalibration_images(data.x_train, config)
    if config.ema_momentum is not None:  # validate the EMA weights, with BN statistics of their own
        callbacks.insert(0, ema_validation_callback(calibration, config.batch_size))
    if keras.backend.backend() == "tensorflow" and importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "tb"), update_freq="epoch"))
    started = time.time()
    if start_epoch < config.epochs:
        dataset = make_training_dataset(data.x_train, data.y_train, data.num_classes, config, start_epoch)
        validation = (data.x_test.astype(np.float32), one_hot(data.y_test, data.num_classes))
        model.fit(dataset, epochs=config.epochs, initial_epoch=start_epoch, steps_per_epoch=steps_per_epoch,
                  shuffle=False, validation_data=validation, validation_batch_size=500, callbacks=callbacks,
                  verbose=verbose)
    if config.ema_momentum is not None:
        model.optimizer.finalize_variable_values(model.trainable_variables)  # the EMA becomes the weights
    # The deliverable holds model weights only (no optimizer slots), in a model without dropout: the
    # architecture a user loads with ``build_child(spec)``.
    final = build_child(spec)
    final.set_weights(model.get_weights())
    if config.ema_momentum is not None:
        recalibrate_batch_norm(final, calibration, config.batch_size)
    metrics = evaluate_arrays(final, data.x_test, data.y_test)
    weights_tmp = os.path.join(run_dir, f".tmp-{WEIGHTS_NAME}")
    final.save_weights(weights_tmp, overwrite=True)
    os.replace(weights_tmp, os.path.join(run_dir, WEIGHTS_NAME))
    result = TrainResult(run_dir=run_dir, top1=metrics["top1"], top5=metrics["top5"], epochs=config.epochs,
                         seconds=round(time.time() - started, 1), backend=keras.backend.backend(),
                         processes=tuple(p for p in processes if p["epochs"][1] >= p["epochs"][0]))
    atomic_write_json(result_path, result.to_dict())
    if os.path.exists(os.path.join(run_dir, CHECKPOINT_STATE_NAME)):
        os.remove(os.path.join(run_dir, CHECKPOINT_STATE_NAME))
    remove_checkpoints(run_dir)
    log(f"trained {spec.name}: test top-1 {result.top1:.4f}, top-5 {result.top5:.4f} -> {run_dir}")
    return result


def read_history(run_dir: str) -> list[dict[str, str]]:
    path = os.path.join(run_dir, HISTORY_NAME)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def load_trained_run(run_dir: str) -> tuple[Any, str]:
    """The trained model of a tools/train.py run directory and the dataset it was trained on."""
    from nse_tf.child import build_child

    weights = os.path.join(run_dir, WEIGHTS_NAME)
    if not os.path.exists(weights):
        raise TrainError(f"{run_dir} has no {WEIGHTS_NAME}: training has not finished there")
    with open(os.path.join(run_dir, CONFIG_NAME), encoding="utf-8") as f:
        saved = json.load(f)
    model = build_child(NetworkSpec.from_dict(saved["network"], source=os.path.join(run_dir, CONFIG_NAME)))
    model.load_weights(weights)
    return model, saved["dataset"]
