"""Retraining a child network from scratch, or fine-tuning a trained one: Keras 3 + numpy only, so it runs under
any backend.

``KERAS_BACKEND=jax python tools/train.py ...`` runs the same code as the TensorFlow backend: the
input pipeline is a ``keras.utils.PyDataset`` over numpy arrays with numpy augmentation, and the
optimiser, schedule, EMA and losses are Keras's own. A run directory holds everything; rerunning
the same command resumes from the last finished epoch (checkpoints are written atomically), and a
finished run is not retrained.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import time
from typing import Any, Callable

import numpy as np

from nse_tf.data.arrays import ImageArrays
from nse_tf.nets.inference import evaluate_arrays
from nse_tf.space.architecture import NetworkSpec
from nse_tf.train.augment import make_training_dataset, one_hot
from nse_tf.train.bn_recalibration import ema_validation_callback, recalibrate_batch_norm, recalibration_images
from nse_tf.train.checkpoints import (epoch_checkpoint_callback, read_checkpoints, remove_checkpoints,
                                      restore_checkpoint, usable_checkpoint)
from nse_tf.train.config import CHECKPOINT_STATE_NAME, HISTORY_NAME, RESULT_NAME, WEIGHTS_NAME, TrainConfig, TrainError
from nse_tf.train.device import compute_device
from nse_tf.train.fine_tune import FineTuning, Phase, freeze_backbone, initialise, phase_at, phases
from nse_tf.train.optimizers import compile_model
from nse_tf.train.run_dir import check_run_dir, read_result, trim_history
from nse_tf.utils.atomic import atomic_write_json, staged
from nse_tf.utils.run_lock import run_lock


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


def checkpointed_epochs(run_dir: str) -> int:
    """Epochs the run's newest checkpoint holds (0 for none)."""
    try:
        checkpoints = read_checkpoints(run_dir)
    except TrainError:
        return 0  # restore_checkpoint names the damage
    return checkpoints[0].epochs_done if checkpoints else 0


def train(spec: NetworkSpec, config: TrainConfig, run_dir: str, data: ImageArrays, *,
          dataset_name: str | None = None, log: Callable[[str], None] = print, verbose: int = 2,
          fine_tuning: FineTuning | None = None, image_size: int | None = None) -> TrainResult:
    """Train ``spec`` from scratch, or from ``fine_tuning``'s weights (its backbone frozen for its first epochs),
    or resume, and write weights, network, history and result to ``run_dir``. ``image_size`` (the size the
    images were read at, where not native) and ``fine_tuning``'s source are recorded with the recipe. One process
    at a time trains a run directory (``utils.run_lock``); a damaged newest checkpoint falls back to the one before."""
    shape = tuple(int(s) for s in data.x_train.shape[1:])
    if (spec.space.input_size, spec.space.input_size, spec.space.input_channels) != shape:
        raise TrainError(f"network {spec.name} takes {spec.space.input_size}x{spec.space.input_size}x"
                         f"{spec.space.input_channels} images but dataset {data.name} has {shape}")
    if spec.space.num_classes != data.num_classes:
        raise TrainError(f"network {spec.name} has {spec.space.num_classes} classes but dataset {data.name} "
                         f"has {data.num_classes}")
    if len(data.x_test) == 0:
        raise TrainError(f"dataset {data.name} has no test images to evaluate on")
    plan = phases(config, fine_tuning.freeze_epochs if fine_tuning else 0)
    settings = dict(dataset_name=dataset_name, log=log, verbose=verbose, fine_tuning=fine_tuning,
                    image_size=image_size, plan=plan)
    if os.path.exists(os.path.join(run_dir, RESULT_NAME)):
        return _train(spec, config, run_dir, data, **settings)  # finished: read only, no lock (read-only mounts)
    with run_lock(run_dir, what="--run_dir", log=log):  # one process per run directory
        return _train(spec, config, run_dir, data, **settings)


def _train(spec: NetworkSpec, config: TrainConfig, run_dir: str, data: ImageArrays, *, dataset_name: str | None,
           log: Callable[[str], None], verbose: int, fine_tuning: FineTuning | None, image_size: int | None,
           plan: list[Phase]) -> TrainResult:
    import keras

    from nse_tf.nets.child import build_child

    check_run_dir(run_dir, spec, config, dataset_name or data.name,
                  {"image_size": image_size, "init_from": fine_tuning.to_dict() if fine_tuning else None})
    result_path = os.path.join(run_dir, RESULT_NAME)
    if os.path.exists(result_path):
        done = read_result(run_dir)
        log(f"{run_dir} is already trained (test top-1 {done['top1']:.4f}); nothing to do")
        return TrainResult(**{"run_dir": run_dir, **{f.name: done[f.name] for f in dataclasses.fields(TrainResult)
                                                     if f.name in done}})

    keras.utils.set_random_seed(config.seed)
    model = build_child(spec, dropout=config.dropout)
    if fine_tuning is not None and fine_tuning.load is not None:
        initialise(model, fine_tuning.load())
    steps_per_epoch = len(data.x_train) // config.batch_size
    if steps_per_epoch == 0:
        raise TrainError(f"batch_size {config.batch_size} exceeds the {len(data.x_train)} training images")

    def compile_phase(index: int) -> None:
        if fine_tuning is not None:
            freeze_backbone(model, plan[index].frozen)
        compile_model(model, plan[index].recipe, steps_per_epoch)

    resume = usable_checkpoint(run_dir, log)  # the newest intact checkpoint (a damaged newest one: the one before)
    current = phase_at(plan, resume.epochs_done if resume else 0)
    compile_phase(current)  # the optimizer of the phase that wrote the checkpoint, which loads its state
    start_epoch, processes = restore_checkpoint(model, run_dir, resume, log) if resume else (0, [])
    trim_history(run_dir, start_epoch)  # epochs after the checkpoint (a fallback's) are trained again
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
    validation = (data.x_test.astype(np.float32), one_hot(data.y_test, data.num_classes))
    for index in range(current, len(plan)):
        first = max(start_epoch, plan[index].start)
        if first >= plan[index].end:
            continue
        if index != current:
            compile_phase(index)  # a new phase: its own optimizer and schedule
        dataset = make_training_dataset(data.x_train, data.y_train, data.num_classes, config, first)
        model.fit(dataset, epochs=plan[index].end, initial_epoch=first, steps_per_epoch=steps_per_epoch,
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
    result = TrainResult(run_dir=run_dir, top1=metrics["top1"], top5=metrics["top5"], epochs=config.epochs,
                         seconds=round(time.time() - started, 1), backend=keras.backend.backend(),
                         processes=tuple(p for p in processes if p["epochs"][1] >= p["epochs"][0]))
    try:
        with staged(os.path.join(run_dir, WEIGHTS_NAME)) as weights_path:
            final.save_weights(weights_path, overwrite=True)
        atomic_write_json(result_path, result.to_dict())
    except OSError as err:  # a full disk at the end: the last checkpoint is still there, and a rerun resumes it
        raise TrainError(f"{run_dir}: cannot write the trained weights and result ({err.strerror or err}); the "
                         "last epoch's checkpoint is intact: free the space and rerun to finish") from None
    if os.path.exists(os.path.join(run_dir, CHECKPOINT_STATE_NAME)):
        os.remove(os.path.join(run_dir, CHECKPOINT_STATE_NAME))
    remove_checkpoints(run_dir)
    log(f"trained {spec.name}: test top-1 {result.top1:.4f}, top-5 {result.top5:.4f} -> {run_dir}")
    return result
