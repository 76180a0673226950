"""Quantization-aware fine-tuning of a zoo entry: ``python tools/qat.py --model=<zoo entry> [--epochs=3]``.

Rebuilds the entry's network with tf_keras layers and its trained weights, fine-tunes it with tfmot's
quantization-aware training (``nse_tf.train.qat``; resumable: rerun the same command), converts it to a full-int8
``.tflite`` (uint8 pixels in, float logits out, as the entry's post-training ``int8.tflite``) and verifies that
file with LiteRT against the QAT Keras model on the whole test split. With ``--write`` (the default) the file
becomes the entry's ``int8_qat.tflite`` and its metadata gains ``tflite.int8_qat`` (top-1, agreement, size) and
``qat`` (the recipe and this command). LiteRT times of it are taken by ``tools/zoo_table.py --retime``.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.cli import fine_tuning  # noqa: E402
from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402
from nse_tf.utils.output_paths import output_error_line  # noqa: E402
from nse_tf.utils.run_lock import run_lock  # noqa: E402

F = flags.FLAGS
fine_tuning.define_flags()
flags.DEFINE_string("run_dir", None, "Where the fine-tuning checkpoints go (default runs/qat/<model>; resumes).")
flags.DEFINE_bool("write", True, "Write int8_qat.tflite and its figures into the zoo entry.")


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"qat.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    run_dir = F.run_dir
    try:
        entry = fine_tuning.trained_entry("fine-tune")
        from nse_tf.train.qat import QatConfig

        config = fine_tuning.make_config(QatConfig)
        fine_tuning.set_threads()
        run_dir = run_dir or os.path.join("runs", "qat", entry.name)
        with run_lock(run_dir, what="--run_dir"):  # one process per run directory
            report = fine_tuning.run_in(fine_tune_and_convert, entry, config, run_dir)
    except FlagError as err:
        print(f"qat.py: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # the run directory in use, unusable or full: one line (other errors are bugs)
        if (line := output_error_line(err, "run_dir", run_dir)) is None:
            raise
        print(f"qat.py: error: {line}", file=sys.stderr)
        return 2
    print(f"{entry.name}: QAT int8 top-1 {report['top1']:.4f} (its QAT Keras model {report['keras_top1']:.4f}, "
          f"agreement {report['top1_agreement']:.4f}); post-training int8 {report['ptq_top1']:.4f}, float32 "
          f"{report['float32_top1']:.4f}")
    return 0


def fine_tune_and_convert(entry, config, run_dir: str) -> dict:
    import numpy as np

    from nse_tf.export.runtimes import tflite_input_quantization, tflite_logits
    from nse_tf.nets.inference import predict_logits
    from nse_tf.train import qat
    from nse_tf.utils.atomic import atomic_write_bytes
    from nse_tf.utils.metrics import top_k_accuracies
    from nse_tf.zoo import registry as zoo

    recipe, data, dense, source = fine_tuning.starting_point(entry)
    model = qat.quantize(dense)
    qat.fine_tune(model, data, recipe, config, run_dir, log=lambda line: print(line, flush=True), source=source)
    keras_logits = predict_logits(model, data.x_test)
    calibration = fine_tuning.calibration_images(data, config.num_calibration)
    path = os.path.join(run_dir, "int8_qat.tflite")
    atomic_write_bytes(path, qat.convert(model, calibration))
    logits = tflite_logits(path, data.x_test.astype(np.float32))
    scale_zero = tflite_input_quantization(path)
    report = {"size_bytes": os.path.getsize(path), "top1": top_k_accuracies(logits, data.y_test)["top1"],
              "keras_top1": top_k_accuracies(keras_logits, data.y_test)["top1"],
              "top1_agreement": float(np.mean(logits.argmax(1) == keras_logits.argmax(1))),
              "input_quantization": None if scale_zero is None else {"scale": scale_zero[0], "zero_point": scale_zero[1]}}
    metadata = zoo.metadata(entry.name)
    report.update(ptq_top1=metadata["tflite"]["int8"]["top1"], float32_top1=metadata["top1"])
    if F.write:
        write_into_entry(entry, path, report, metadata, config, len(data.y_test))
    return report


def write_into_entry(entry, path: str, report: dict, metadata: dict, config, test_examples: int) -> None:
    """The QAT file and its figures into the zoo entry, which no other process writes meanwhile (its lock)."""
    import dataclasses

    from nse_tf.utils.atomic import atomic_write_bytes, atomic_write_json
    from nse_tf.utils.output_paths import OutputError
    from nse_tf.utils.run_lock import entry_lock_name
    from nse_tf.zoo import registry as zoo

    try:
        with run_lock(os.path.dirname(entry.path), entry_lock_name(entry.name), what="--model",
                      subject=f"zoo entry {entry.name}"):
            final = os.path.join(entry.path, "int8_qat.tflite")
            with open(path, "rb") as f:
                atomic_write_bytes(final, f.read())
            metadata["tflite"]["int8_qat"] = {k: report[k] for k in ("size_bytes", "top1", "keras_top1",
                                                                     "top1_agreement", "input_quantization")}
            metadata["qat"] = {"recipe": dataclasses.asdict(config), "test_examples": int(test_examples),
                               "command": fine_tuning.recorded_command("qat.py", sys.argv[1:])}
            metadata["files"]["int8_qat.tflite"] = zoo.sha256_file(final)
            atomic_write_json(os.path.join(entry.path, zoo.METADATA_NAME), metadata)
    except OutputError as err:  # another process writes the entry, or its folder cannot be written
        raise FlagError("model", str(err)) from None
    except OSError as err:
        raise FlagError("model", f"{entry.path}: cannot write there ({err.strerror or err}); the fine-tuning in "
                                 "--run_dir is kept: free the space and rerun (--write)") from None


def run() -> None:
    """``python tools/qat.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("qat.py"))
