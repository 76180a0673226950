"""Retrain an architecture from scratch: ``python tools/train.py --flagfile=configs/train_<x>.flags``.

--arch takes a zoo or published name, a network JSON, or a search run directory (its
chosen/best.json). Backend-agnostic: ``KERAS_BACKEND=jax python tools/train.py ...`` works where
TensorFlow is absent. Rerunning with the same --run_dir resumes after the last finished epoch.
Bad flags end with one line naming the flag and exit code 2.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.train.config import TrainConfig  # noqa: E402  (numpy only: no Keras import yet)
from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402

D = TrainConfig()  # the flags' defaults are the recipe's defaults

F = flags.FLAGS
flags.DEFINE_string("arch", None, "Zoo/published name, network JSON, or search run directory (chosen/best.json).")
flags.DEFINE_string("run_dir", None, "Output directory: weights, network, history, result (resumes).")
flags.DEFINE_string("dataset", "fashion_mnist", "fashion_mnist or npz:<path> (x_train, y_train, x_test, y_test).")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST IDX directory (default: the Debian package's).")
flags.DEFINE_integer("heldout_examples", 0, "Carve this many held-out images from the training split (as a search "
                     "does) and evaluate on them instead of the test split (0: train on all, evaluate on test).")
flags.DEFINE_integer("heldout_seed", 0, "Seed of the held-out split (a search's round r uses its --seed + 1000 r).")
flags.DEFINE_float("scale", None, "Width multiplier applied to the architecture's space.")
flags.DEFINE_integer("epochs", D.epochs, "Training epochs.")
flags.DEFINE_integer("batch_size", D.batch_size, "Batch size.")
flags.DEFINE_enum("optimizer", D.optimizer, ["sgd", "adamw"], "sgd (Nesterov momentum) or adamw.")
flags.DEFINE_float("lr", D.lr, "Peak learning rate (linear warm-up, then cosine).")
flags.DEFINE_float("warmup_epochs", D.warmup_epochs, "Warm-up epochs.")
flags.DEFINE_float("min_lr_fraction", D.min_lr_fraction, "The cosine ends at lr times this.")
flags.DEFINE_float("momentum", D.momentum, "SGD Nesterov momentum.")
flags.DEFINE_float("weight_decay", D.weight_decay, "Decoupled weight decay of conv/dense kernels.")
flags.DEFINE_float("label_smoothing", D.label_smoothing, "Label smoothing of the cross-entropy.")
flags.DEFINE_float("ema_momentum", D.ema_momentum or 0.0,
                   "EMA of the weights (0 turns it off); the EMA is what is saved.")
flags.DEFINE_boolean("flip", D.flip, "Random horizontal flips.")
flags.DEFINE_integer("crop_padding", D.crop_padding,
                     "Random crops from images zero-padded by this many pixels (0: off).")
flags.DEFINE_float("erase_probability", D.erase_probability, "Probability of random erasing per image.")
flags.DEFINE_float("dropout", D.dropout, "Dropout before the classifier.")
flags.DEFINE_integer("seed", D.seed, "Seed of weight init, data order and augmentation.")
flags.DEFINE_integer("threads", 0, "TensorFlow CPU threads (intra- and inter-op pools); 0: TensorFlow's default. "
                     "Two runs side by side with --threads=1 each train faster in total on 2 cores.")
flags.DEFINE_integer("verbose", 2, "Keras fit verbosity (0 silent, 1 progress bar, 2 one line per epoch).")


def build_config():  # -> TrainConfig
    from nse_tf.train.config import TrainError

    values = {name: getattr(F, name) for name in (
        "epochs", "batch_size", "optimizer", "lr", "warmup_epochs", "min_lr_fraction", "momentum", "weight_decay",
        "label_smoothing", "flip", "crop_padding", "erase_probability", "dropout", "seed")}
    values["ema_momentum"] = F.ema_momentum or None
    try:
        return TrainConfig(**values)
    except TrainError as err:
        flag = next((k for k in values if str(err).startswith(k)), "flagfile")
        raise FlagError(flag, str(err)) from None


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"train.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    from nse_tf import resolve_spec
    from nse_tf.data.arrays import DatasetError, load_arrays
    from nse_tf.data.idx import DataFileError, DataNotFoundError
    from nse_tf.space.architecture import ArchitectureError
    from nse_tf.train.config import TrainError
    from nse_tf.train.device import set_cpu_threads
    from nse_tf.train.loop import train
    from nse_tf.utils.memory import keep_freed_memory

    keep_freed_memory()  # CPU steps otherwise re-fault their activations (2x slower here)
    try:
        if not F.arch:
            raise FlagError("arch", "is required")
        if not F.run_dir:
            raise FlagError("run_dir", "is required")
        config = build_config()
        try:
            set_cpu_threads(F.threads)
        except TrainError as err:
            raise FlagError("threads", str(err)) from None
        try:
            spec = resolve_spec(F.arch, **({"scale": F.scale} if F.scale is not None else {}))
        except (ValueError, ArchitectureError) as err:
            raise FlagError("arch" if F.scale is None or "scale" not in str(err) else "scale", str(err)) from None
        try:
            data = load_arrays(F.dataset, F.data_dir)
        except (DataNotFoundError, DataFileError) as err:
            raise FlagError("data_dir", str(err)) from None
        except DatasetError as err:
            raise FlagError("dataset", str(err)) from None
        if F.heldout_examples:
            from nse_tf.data.arrays import heldout_arrays

            try:
                data = heldout_arrays(data, F.heldout_examples, F.heldout_seed)
            except DatasetError as err:
                raise FlagError("heldout_examples", str(err).removeprefix("heldout_examples: ")) from None
        result = train(spec, config, F.run_dir, data, dataset_name=data.name if F.heldout_examples else F.dataset,
                       verbose=F.verbose)
    except (FlagError, TrainError) as err:
        print(f"train.py: error: {err}", file=sys.stderr)
        return 2
    split = "held-out" if F.heldout_examples else "test"
    print(f"{split} top-1 {result.top1:.4f} top-5 {result.top5:.4f} ({result.backend}, {result.seconds:.0f} s)")
    return 0


def run() -> None:
    """The console script ``nse-train`` and ``python tools/train.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("train.py"))
