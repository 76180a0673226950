"""Write one zoo entry: ``python tools/make_zoo_entry.py --name=<entry> --train_dir=<run> --command="..."``.

From a finished tools/train.py run (from scratch or fine-tuned with --init_from, on any dataset the tools read:
its dataset is read again as the run read it, --data_dir saying where on this machine), or from --arch alone
(published networks without weights); what an entry holds and how it is written: ``nse_tf.zoo.writer``. Names
may carry a tag (``<architecture>.<tag>``, e.g. ``mobilenetv2-style-fmnist.e60``), so one architecture keeps
several trained weights;
``--flip_average --weights_from=<entry>`` makes a second configuration of an entry's weights without a copy.
``--reexport=<entry>`` alone rewrites an existing entry's float32/int8 .tflite files from its weights with today's
exporter (``writer.reexport_tflite``).
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("name", None, "Entry name (a folder under the zoo).")
flags.DEFINE_string("train_dir", None, "A finished tools/train.py run directory.")
flags.DEFINE_string("arch", None, "Architecture only (published name or network JSON), no weights.")
flags.DEFINE_string("command", None, "The training command(s) before this one; metadata records both.")
flags.DEFINE_string("description", "", "One line describing the entry.")
flags.DEFINE_string("weights_note", None, "Why an --arch entry has no weights.")
flags.DEFINE_string("training_note", None, "What the run directory does not record about the training "
                    "(e.g. epochs run before per-process records existed).")
flags.DEFINE_integer("num_calibration", 500, "Training images that calibrate the int8 file.")
flags.DEFINE_integer("latency_runs", 200, "Timed LiteRT invocations (one image, one thread).")
flags.DEFINE_bool("flip_average", False, "The trained network run on each image and its mirror, logits "
                  "averaged (twice the MACs, same weights): metadata, exports and top-1 are the two-pass model's.")
flags.DEFINE_string("weights_from", None, "With --flip_average: the zoo entry that holds this run's weights; the "
                    "new entry records their sha256 instead of a second copy.")
flags.DEFINE_string("zoo_dir", None, "Zoo folder (default: nse_tf.zoo.zoo_dir()).")
flags.DEFINE_string("data_dir", None, "Where the run's dataset lives on this machine: the Fashion-MNIST IDX "
                    "directory, or the tfds data_dir of a tfds: dataset (default: as the run's tools read it).")
flags.DEFINE_bool("allow_0_1_pixels", False, "The run's npz: float pixels that all lie in [0, 1] are meant (as "
                  "tools/train.py --allow_0_1_pixels read them).")
flags.DEFINE_string("reexport", None, "A trained entry whose float32/int8 .tflite files to rewrite from its committed "
                    "weights with today's exporter (figures, quick check and hashes updated; alone, or with "
                    "--num_calibration/--latency_runs/--zoo_dir).")
flags.DEFINE_bool("allow_large", False, "Build a network beyond the size limits of nse_tf.space.limits (refused "
                  "without this flag before anything is allocated).")
flags.DEFINE_bool("overwrite", False, "Replace an existing entry of that name (its files are deleted).")


def entry_command() -> str:
    """The training command (if any) and this very invocation, so the entry can be rebuilt verbatim."""
    own = "python tools/make_zoo_entry.py " + shlex.join(a for a in sys.argv[1:] if not a.startswith(
        ("--zoo_dir", "--command", "--overwrite", "--nooverwrite", "--data_dir")))
    return f"{F.command} && {own}" if F.command else own


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"make_zoo_entry.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    from nse_tf import resolve_spec  # Keras (and TensorFlow) only once the flags are known to be good
    from nse_tf.space.architecture import ArchitectureError, NetworkSpec
    from nse_tf.space.limits import error_line
    from nse_tf.data.idx import DataFileError, DataNotFoundError, DatasetError
    from nse_tf.train.config import CONFIG_NAME, TrainError
    from nse_tf.train.run_dir import read_result, read_run_config
    from nse_tf.utils.output_paths import output_error
    from nse_tf.zoo import registry as zoo
    from nse_tf.zoo import writer

    try:
        if F.reexport is not None:
            return reexport(writer, zoo)
        if not F.name:
            raise FlagError("name", "is required")
        try:
            zoo.check_entry_name(F.name)
            aliases = zoo.aliases()
        except zoo.ZooError as err:
            raise FlagError("name", str(err)) from None
        if F.name in aliases:
            raise FlagError("name", f"{F.name} is an alias of {aliases[F.name]} (zoo/aliases.json): write under the "
                                    "current name, or remove the alias first")
        if bool(F.train_dir) == bool(F.arch):
            raise FlagError("train_dir", "give exactly one of --train_dir (trained) or --arch (architecture only)")
        if F.flip_average and not F.train_dir:
            raise FlagError("flip_average", "needs --train_dir: it averages a trained network's two passes")
        if F.weights_from is not None:
            if not F.train_dir:
                raise FlagError("weights_from", "needs --train_dir: the run whose weights the other entry holds")
            try:
                if not zoo.get_entry(F.weights_from).has_weights:
                    raise FlagError("weights_from", f"{F.weights_from} has no weights")
            except zoo.ZooError as err:
                raise FlagError("weights_from", str(err)) from None
        root = F.zoo_dir or zoo.zoo_dir()
        if F.train_dir:
            config_path = os.path.join(F.train_dir, CONFIG_NAME)
            if not os.path.exists(config_path):
                raise FlagError("train_dir", f"{F.train_dir} is not a tools/train.py run directory")
            try:  # a finished run, its files whole, before any work
                saved = read_run_config(F.train_dir)
                read_result(F.train_dir, writer.RESULT_FIELDS)
                spec = NetworkSpec.from_dict(saved["network"], source=config_path, check_size=not F.allow_large)
            except (TrainError, ArchitectureError) as err:  # beyond the size limits: --allow_large builds it
                raise FlagError("train_dir", error_line(err)) from None

            def fields(stage: str) -> dict:
                return writer.trained_fields(stage, F.train_dir, flip_average=F.flip_average,
                                             weights_from=F.weights_from, num_calibration=F.num_calibration,
                                             latency_runs=F.latency_runs, training_note=F.training_note,
                                             data_dir=F.data_dir, allow_0_1_pixels=F.allow_0_1_pixels,
                                             check_size=not F.allow_large)
        else:
            try:
                spec = resolve_spec(F.arch, check_size=not F.allow_large)
            except ValueError as err:
                raise FlagError("arch", error_line(err)) from None

            def fields(stage: str) -> dict:
                return writer.architecture_fields(spec, F.weights_note)
        try:
            metadata = writer.write_entry(root, F.name, spec, fields, entry_command(), description=F.description,
                                          overwrite=F.overwrite)
        except FileExistsError:
            raise FlagError("name", f"zoo entry {F.name} already exists in {root}; pass --overwrite to replace it "
                                    "(its weights and .tflite files are deleted)") from None
        except DataNotFoundError as err:  # the IDX files are elsewhere on this machine
            raise FlagError("data_dir", str(err)) from None
        except (TrainError, DatasetError, DataFileError, FileNotFoundError) as err:  # its run, or its dataset
            raise FlagError("train_dir", f"{F.train_dir}: {err}" if isinstance(err, (DataFileError, FileNotFoundError))
                            else str(err)) from None
        except zoo.ZooError as err:
            raise FlagError("weights_from", str(err).removeprefix("weights_from: ")) from None
        except Exception as err:  # the entry is being written by another process, or its folder cannot be written
            if (failure := output_error(err, os.path.join(root, F.name))) is None:
                raise
            raise FlagError("zoo_dir" if F.zoo_dir else "name", str(failure)) from None
    except FlagError as err:
        print(f"make_zoo_entry.py: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {os.path.join(root, F.name)}: top-1 {metadata['top1']}, {metadata['macs'] / 1e6:.2f} M MACs, "
          f"{metadata['params']:,} params")
    return 0


def reexport(writer: Any, zoo: Any) -> int:
    """``--reexport=<entry>``: that entry's .tflite files again, from its weights."""
    from nse_tf.data.idx import DatasetError

    given = [flag for flag in ("name", "train_dir", "arch", "command", "weights_from", "description", "weights_note",
                               "training_note", "flip_average", "overwrite") if getattr(F, flag)]
    if given:
        raise FlagError("reexport", f"takes no --{given[0]}: it rewrites an existing entry's .tflite files")
    if F.num_calibration < 1:
        raise FlagError("num_calibration", f"must be at least 1, got {F.num_calibration}")
    if F.latency_runs < 1:
        raise FlagError("latency_runs", f"must be at least 1, got {F.latency_runs}")
    if F.zoo_dir:
        os.environ[zoo.ZOO_ENV] = F.zoo_dir  # this process only: the registry reads the zoo from there
    try:
        name = zoo.canonical_name(F.reexport)
        command = "python tools/make_zoo_entry.py " + shlex.join(
            a for a in sys.argv[1:] if not a.startswith("--zoo_dir"))
        figures = writer.reexport_tflite(name, command, F.num_calibration, F.latency_runs)
    except (zoo.ZooError, DatasetError) as err:
        raise FlagError("reexport", str(err)) from None
    except Exception as err:  # the entry is being written by another process, or its folder cannot be written
        from nse_tf.utils.output_paths import output_error

        if (failure := output_error(err, os.path.join(zoo.zoo_dir(), F.reexport))) is None:
            raise
        raise FlagError("reexport", str(failure)) from None
    print(f"re-exported {name}: top-1 float32 {figures['before']['float32']} -> {figures['after']['float32']}, "
          f"int8 {figures['before']['int8']} -> {figures['after']['int8']}")
    return 0


def run() -> None:
    """The console script ``nse-zoo`` and ``python tools/make_zoo_entry.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("make_zoo_entry.py"))
