"""Where and how retraining runs: CPU threads, XLA, and the device a run records."""

from __future__ import annotations

import os

from nse_tf.train.config import TrainError


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
