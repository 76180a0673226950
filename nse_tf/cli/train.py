"""Retrain an architecture from scratch: ``python tools/train.py --flagfile=configs/train_<x>.flags``; or
fine-tune a zoo entry on your own data: ``python tools/train.py --init_from=<entry> --dataset=folder:<path>``.

--arch takes a zoo or published name, a network JSON, or a search run directory (its
chosen/best.json). --dataset takes every kind the search reads (fashion_mnist, folder:, tfds:) and npz:,
read as the search reads it (--image_size as the search's), so a searched pick retrains on its search's data.
--init_from starts from a zoo entry's weights (every weight but a new classifier's, the stem adapted to the
channels: ``nse_tf.create_model(pretrained=True, num_classes=, input_shape=)``), trains the classifier alone for
--freeze_epochs, then everything, with fine-tuning defaults where a flag is not given (``train.fine_tune``); the
run's config records the entry and its weights' sha256. Backend-agnostic: ``KERAS_BACKEND=jax python
tools/train.py ...`` works where TensorFlow is absent (tfds: needs it). Rerunning with the same --run_dir resumes
after the last finished epoch. Bad flags end with one line naming the flag and exit code 2.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.train.config import TrainConfig  # noqa: E402  (numpy only: no Keras import yet)
from nse_tf.train.fine_tune import DEFAULT_FREEZE_EPOCHS, FINE_TUNING_DEFAULTS  # noqa: E402
from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402
from nse_tf.utils.settings import SettingError, define_flags, flag_values, settings_of  # noqa: E402

RECIPE = settings_of(TrainConfig)  # a flag per recipe field, its name and default the field's
FT = FINE_TUNING_DEFAULTS  # ... but where --init_from fine-tunes an entry and the flag is not given

F = flags.FLAGS
flags.DEFINE_string("arch", None, "Zoo/published name, network JSON, or search run directory (chosen/best.json).")
flags.DEFINE_string("run_dir", None, "Output directory: weights, network, history, result (resumes).")
flags.DEFINE_string("init_from", None, "Fine-tune this zoo entry's weights (instead of --arch): its network for "
                    "--dataset's classes and image shape, every weight but the classifier's loaded.")
flags.DEFINE_integer("freeze_epochs", None, "With --init_from: the first epochs train the classifier alone, the "
                     f"backbone frozen (default {DEFAULT_FREEZE_EPOCHS}; 0: none).")
flags.DEFINE_string("dataset", "fashion_mnist", "fashion_mnist, npz:<path> (x_train, y_train, x_test, y_test), "
                    "folder:<path> (one sub-folder per class, under train/ and test/) or tfds:<name>.")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST IDX directory (default: the Debian package's), or the "
                    "tfds data_dir of a tfds: dataset.")
flags.DEFINE_integer("image_size", None, "Resize images to this square size as the search's --image_size does "
                     "(default: native; a folder's images then take its first image's size).")
flags.DEFINE_integer("heldout_examples", 0, "Carve this many held-out images from the training split (as a search "
                     "does) and evaluate on them instead of the test split (0: train on all, evaluate on test).")
flags.DEFINE_integer("heldout_seed", 0, "Seed of the held-out split (a search's round r uses its --seed + 1000 r).")
flags.DEFINE_bool("allow_0_1_pixels", False, "Accept npz: float pixels that all lie in [0, 1] as they are (the "
                  "networks expect 0-255 pixels: without this flag such images are refused as scaled to 0-1).")
flags.DEFINE_float("scale", None, "Width multiplier applied to the architecture's space.")
flags.DEFINE_bool("allow_large", False, "Build a network beyond the size limits of nse_tf.space.limits (refused "
                  "without this flag before anything is allocated).")
define_flags(RECIPE, helps={  # the recipe's flags, saying where fine-tuning (--init_from) changes the default
    "epochs": f"Training epochs (fine-tuning: {FT['epochs']}).",
    "lr": f"Peak learning rate (linear warm-up, then cosine; fine-tuning: {FT['lr']}).",
    "warmup_epochs": f"Warm-up epochs (fine-tuning: {FT['warmup_epochs']:g}, after the frozen epochs).",
    "ema_momentum": "EMA of the weights (0 turns it off; fine-tuning: off); the EMA is what is saved."})
flags.DEFINE_integer("threads", 0, "TensorFlow CPU threads (intra- and inter-op pools); 0: TensorFlow's default. "
                     "Two runs side by side with --threads=1 each train faster in total on 2 cores.")
flags.DEFINE_integer("verbose", 2, "Keras fit verbosity (0 silent, 1 progress bar, 2 one line per epoch).")


def build_config():  # -> TrainConfig
    values = flag_values(RECIPE, {name: F[name].value for name in F})
    if F.init_from:  # the fine-tuning recipe where a flag is not given (on the command line or in a flagfile)
        values.update({name: value for name, value in FINE_TUNING_DEFAULTS.items() if not F[name].present})
    try:
        return TrainConfig(**values)
    except SettingError as err:  # the field names its flag
        flag = next((item.flag() for item in RECIPE if item.path == err.field), None)
        raise FlagError(flag.name if flag else "flagfile", err.message) from None


def load_data():  # -> ImageArrays: --dataset, --data_dir, --image_size and --heldout_examples
    from nse_tf.data.arrays import DatasetError, heldout_arrays, load_arrays
    from nse_tf.data.idx import DataFileError, DataNotFoundError

    if F.image_size is not None and F.image_size < 1:
        raise FlagError("image_size", f"must be positive, got {F.image_size}")
    try:
        data = load_arrays(F.dataset, F.data_dir, F.image_size, allow_0_1_pixels=F.allow_0_1_pixels)
    except DataNotFoundError as err:
        raise FlagError("data_dir", str(err)) from None
    except DataFileError as err:  # a damaged IDX file (--data_dir), or an image of the folder (--dataset)
        raise FlagError("dataset" if F.dataset.startswith("folder:") else "data_dir", str(err)) from None
    except (DatasetError, FileNotFoundError) as err:
        raise FlagError("dataset", str(err)) from None
    if F.heldout_examples:
        try:
            data = heldout_arrays(data, F.heldout_examples, F.heldout_seed)
        except DatasetError as err:
            raise FlagError("heldout_examples", str(err).removeprefix("heldout_examples: ")) from None
    if len(data.x_test) == 0:
        raise FlagError("dataset", f"{F.dataset} has no test images: give it a test/ (or val/) folder beside "
                                   "train/, or evaluate on a held-out split (--heldout_examples)")
    return data


def fine_tuning_source(data, freeze_epochs: int):  # -> (NetworkSpec, FineTuning)
    """--init_from: the entry's network for the data's classes and image shape, and where its weights come from."""
    import nse_tf
    from nse_tf.nets.transfer import retarget
    from nse_tf.space.limits import SizeLimitError, error_line
    from nse_tf.space.architecture import ArchitectureError
    from nse_tf.train.fine_tune import FineTuning
    from nse_tf.zoo import registry as zoo

    try:
        entry = zoo.get_entry(F.init_from)
        if not entry.has_weights:
            raise FlagError("init_from", f"zoo entry {entry.name} has no trained weights to fine-tune "
                                         f"({entry.metadata.get('weights_note', 'architecture only')})")
        if entry.flip_average:
            raise FlagError("init_from", f"{entry.name} is a flip-averaged configuration of "
                                         f"{entry.config.weights_from or 'its weights'}: fine-tune the single-pass "
                                         "entry")
        sha = zoo.sha256_file(entry.weights_file())
        spec = entry.network_spec(check_size=not F.allow_large)
    except (zoo.ZooError, ArchitectureError) as err:  # beyond the size limits: --allow_large builds it
        raise FlagError("init_from", error_line(err)) from None
    shape = tuple(int(d) for d in data.x_train.shape[1:])
    try:
        spec = retarget(spec, data.num_classes, shape)
        if not F.allow_large:  # the entry's network for these images and classes, before anything is built
            spec.check_size()
    except (TypeError, ValueError) as err:
        raise FlagError("image_size" if F.image_size else "dataset",
                        f"{F.dataset}'s {shape[0]}x{shape[1]}x{shape[2]} images: {error_line(err)}") from None

    def load():  # called by the training loop once seeded: the fresh classifier is the seed's
        return nse_tf.create_model(entry.name, pretrained=True, num_classes=data.num_classes, input_shape=shape,
                                   check_size=not F.allow_large)

    return spec, FineTuning(entry.name, sha, freeze_epochs, load)


def check_fits(spec, data) -> None:
    """The network takes the dataset's images and classes (or the flag to change says so)."""
    shape = tuple(int(d) for d in data.x_train.shape[1:])
    space = spec.space
    if (space.input_size, space.input_size, space.input_channels) != shape:
        raise FlagError("image_size" if F.image_size else "dataset",
                        f"network {spec.name} takes {space.input_size}x{space.input_size}x{space.input_channels} "
                        f"images but {F.dataset} gives {shape[0]}x{shape[1]}x{shape[2]}; read them at the "
                        "network's size (--image_size, as the search's) or fine-tune an entry (--init_from)")
    if space.num_classes != data.num_classes:
        raise FlagError("dataset", f"network {spec.name} has {space.num_classes} classes but {F.dataset} has "
                                   f"{data.num_classes}; fine-tune an entry for them (--init_from)")


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"train.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    from nse_tf import resolve_spec
    from nse_tf.space.architecture import ArchitectureError
    from nse_tf.space.limits import SizeLimitError, error_line
    from nse_tf.train.config import TrainError
    from nse_tf.train.device import set_cpu_threads
    from nse_tf.train.loop import train
    from nse_tf.utils.memory import keep_freed_memory

    keep_freed_memory()  # CPU steps otherwise re-fault their activations (2x slower here)
    try:
        if F.init_from and (F.arch or F.scale is not None):
            raise FlagError("init_from", f"fine-tunes the entry's own network: drop --{'arch' if F.arch else 'scale'}")
        if not F.arch and not F.init_from:
            raise FlagError("arch", "is required (or --init_from, to fine-tune a zoo entry)")
        if not F.run_dir:
            raise FlagError("run_dir", "is required")
        if F.freeze_epochs is not None and not F.init_from:
            raise FlagError("freeze_epochs", "needs --init_from: it freezes a trained backbone")
        freeze_epochs = DEFAULT_FREEZE_EPOCHS if F.freeze_epochs is None else F.freeze_epochs
        config = build_config()
        if F.init_from and not 0 <= freeze_epochs <= config.epochs:
            raise FlagError("freeze_epochs", f"must be in [0, --epochs={config.epochs}], got {freeze_epochs}")
        try:
            set_cpu_threads(F.threads)
        except TrainError as err:
            raise FlagError("threads", str(err)) from None
        fine_tuning = None
        if F.arch:
            try:
                spec = resolve_spec(F.arch, check_size=not F.allow_large,
                                    **({"scale": F.scale} if F.scale is not None else {}))
            except (ValueError, ArchitectureError) as err:  # a refused --scale names its field
                scaled = getattr(err, "field", None) == "scale" or F.scale is not None and (  # within the limits until --scale
                    isinstance(err, SizeLimitError) and not isinstance(err, ArchitectureError))
                raise FlagError("scale" if scaled else "arch", error_line(err)) from None
            data = load_data()
            check_fits(spec, data)
        else:
            data = load_data()
            spec, fine_tuning = fine_tuning_source(data, freeze_epochs)
        result = train(spec, config, F.run_dir, data, dataset_name=data.name if F.heldout_examples else F.dataset,
                       verbose=F.verbose, fine_tuning=fine_tuning, image_size=F.image_size)
    except (FlagError, TrainError) as err:
        print(f"train.py: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # --run_dir in use by another process, unusable, or its disk full: one line
        from nse_tf.utils.output_paths import output_error_line

        if (line := output_error_line(err, "run_dir", F.run_dir)) is None:
            raise
        print(f"train.py: error: {line}", file=sys.stderr)
        return 2
    split = "held-out" if F.heldout_examples else "test"
    print(f"{split} top-1 {result.top1:.4f} top-5 {result.top5:.4f} ({result.backend}, {result.seconds:.0f} s)")
    return 0


def run() -> None:
    """The console script ``nse-train`` and ``python tools/train.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("train.py"))
