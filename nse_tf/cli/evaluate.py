"""Measure a model on the test split: ``python tools/evaluate.py --model=<zoo name | training run dir>``.

Reports top-1/top-5 on the whole test split, MACs and params, as JSON. ``--tflite=float32|int8`` runs
the entry's TFLite file with LiteRT instead of the Keras model. For a zoo entry it also says whether the
measured top-1 equals the one in its metadata (exit code 1 if not). Backend-agnostic without --tflite.
``--quick`` checks a trained zoo entry quickly instead: Keras and int8 top-1 on the first 1000 test
images against the ``quick_check`` in its metadata (what CI runs for every entry).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("model", None, "Zoo entry name, or a tools/train.py run directory.")
flags.DEFINE_enum("tflite", None, ["float32", "int8", "int8_qat"], "Evaluate the zoo entry's TFLite file with LiteRT.")
flags.DEFINE_string("dataset", None, "fashion_mnist, npz:<path>, folder:<path> or tfds:<name> (default: the "
                    "entry's / run's dataset).")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST IDX directory (default: the Debian package's), or the tfds "
                    "data_dir of a tfds: dataset.")
flags.DEFINE_integer("image_size", None, "Read the images at this square size, as the search's --image_size does "
                     "(default: the size the entry or run recorded, else native).")
flags.DEFINE_bool("allow_0_1_pixels", False, "Accept npz: float pixels that all lie in [0, 1] as they are (the "
                  "networks expect 0-255 pixels: without this flag such images are refused as scaled to 0-1).")
flags.DEFINE_string("output", None, "Also write the JSON report to this file.")
flags.DEFINE_bool("allow_large", False, "Build a network beyond the size limits of nse_tf.space.limits (refused "
                  "without this flag before anything is allocated).")
flags.DEFINE_bool("quick", False, "Check a trained zoo entry's Keras model and int8 file on the first 1000 test "
                  "images against its metadata's quick_check (a few seconds after start-up).")


def quick_report(name: str) -> dict:
    from nse_tf.zoo import registry as zoo
    from nse_tf.zoo.evaluation import quick_check

    for flag in ("tflite", "dataset", "data_dir", "image_size"):
        if getattr(F, flag) is not None:
            raise FlagError(flag, "does not combine with --quick (it checks Keras and int8 on the entry's dataset)")
    figures = quick_check(name, check_size=not F.allow_large)
    recorded = zoo.metadata(name).get("quick_check")
    if recorded is None:
        raise FlagError("model", f"zoo entry {name} records no quick_check (made before quick checks existed); "
                                 "rebuild it with tools/make_zoo_entry.py or evaluate it without --quick")
    return {"model": name, "quick_check": figures, "metadata_quick_check": recorded,
            "matches_metadata": figures == recorded}


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"evaluate.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    from nse_tf.data.idx import DataFileError, DataNotFoundError
    from nse_tf.data.idx import DatasetError
    from nse_tf.space.limits import SizeLimitError, error_line
    from nse_tf.train.config import TrainError
    from nse_tf.zoo.evaluation import EvaluationError, measure
    from nse_tf.zoo.registry import ZooError

    try:
        if not F.model:
            raise FlagError("model", "is required")
        if F.output:  # written at the end: checked before the measurement
            from nse_tf.utils.output_paths import OutputError, check_file

            try:
                check_file(F.output)
            except OutputError as err:
                raise FlagError("output", str(err)) from None
        try:
            if F.image_size is not None and F.image_size < 1:
                raise FlagError("image_size", f"must be positive, got {F.image_size}")
            report = quick_report(F.model) if F.quick else measure(F.model, F.tflite, F.dataset, F.data_dir,
                                                                   F.image_size,
                                                                   allow_0_1_pixels=F.allow_0_1_pixels,
                                                                   check_size=not F.allow_large)
        except SizeLimitError as err:  # the entry's or the run's network: --allow_large builds it
            raise FlagError("model", error_line(err)) from None
        except EvaluationError as err:
            raise FlagError(err.flag, str(err)) from None
        except (DataNotFoundError, DataFileError) as err:
            raise FlagError("data_dir", str(err)) from None
        except (DatasetError, FileNotFoundError) as err:  # --quick reads the entry's own dataset
            raise FlagError("model", str(err)) from None
        except TrainError as err:
            raise FlagError("dataset" if "dataset" in str(err) else "model", str(err)) from None
        except ZooError as err:
            raise FlagError("model", str(err)) from None
    except FlagError as err:
        print(f"evaluate.py: error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2)
    print(text)
    if F.output:
        from nse_tf.utils.atomic import atomic_write_text
        from nse_tf.utils.output_paths import describe

        try:
            atomic_write_text(F.output, text + "\n")
        except OSError as err:  # the disk filled during the measurement: the report is on stdout above
            print(f"evaluate.py: error: --output: {describe(F.output, err)}", file=sys.stderr)
            return 2
    return 0 if report.get("matches_metadata", True) else 1


def run() -> None:
    """The console script ``nse-evaluate`` and ``python tools/evaluate.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("evaluate.py"))
