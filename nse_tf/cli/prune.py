"""Magnitude pruning of a zoo entry: ``python tools/prune.py --model=<zoo entry> [--sparsity=0.5] [--epochs=3]``.

Fine-tunes the entry's network with tfmot's low-magnitude pruning (``nse_tf.train.pruning``; resumable: rerun the
same command), strips it, converts it to a float32 and a full-int8 ``.tflite`` (the int8 one as the entry's
post-training file: uint8 pixels in, float logits out), and measures both with LiteRT on the whole test split,
beside the entry's own files: top-1, bytes, and bytes after gzip (what a download or an app bundle carries).
Writes the files and ``pruning.json`` into the run directory; the zoo entry is left as it is.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.cli import fine_tuning  # noqa: E402
from nse_tf.train.pruning import PruneConfig  # noqa: E402  (numpy only: no TensorFlow import yet)
from nse_tf.train.qat import QatConfig  # noqa: E402
from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402
from nse_tf.utils.output_paths import output_error_line  # noqa: E402
from nse_tf.utils.run_lock import run_lock  # noqa: E402
from nse_tf.utils.settings import define_flags, settings_of  # noqa: E402

F = flags.FLAGS
fine_tuning.define_flags()
define_flags(s for s in settings_of(PruneConfig) if s not in settings_of(QatConfig))  # --sparsity
flags.DEFINE_string("run_dir", None, "Where the checkpoints, the files and pruning.json go "
                    "(default runs/prune/<model>-s<sparsity>; resumes).")


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"prune.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    run_dir = F.run_dir
    try:
        entry = fine_tuning.trained_entry("prune")
        config = fine_tuning.make_config(PruneConfig)
        fine_tuning.set_threads()
        run_dir = run_dir or os.path.join("runs", "prune", f"{entry.name}-s{F.sparsity:g}")
        with run_lock(run_dir, what="--run_dir"):  # one process per run directory
            report = fine_tuning.run_in(prune_and_convert, entry, config, run_dir)
    except FlagError as err:
        print(f"prune.py: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # the run directory in use, unusable or full: one line (other errors are bugs)
        if (line := output_error_line(err, "run_dir", run_dir)) is None:
            raise
        print(f"prune.py: error: {line}", file=sys.stderr)
        return 2
    for fmt in ("float32", "int8"):
        mine, dense = report["pruned"][fmt], report["dense"][fmt]
        print(f"{entry.name} {fmt}: pruned top-1 {mine['top1']:.4f} (dense {dense['top1']:.4f}), "
              f"{mine['gzip_bytes']:,} bytes gzipped (dense {dense['gzip_bytes']:,})")
    print(f"kernel sparsity {report['kernel_sparsity']:.3f}; report {os.path.join(run_dir, 'pruning.json')}")
    return 0


def gzip_size(path: str) -> int:
    import gzip

    with open(path, "rb") as f:
        return len(gzip.compress(f.read(), compresslevel=9, mtime=0))


def prune_and_convert(entry, config, run_dir: str) -> dict:
    import dataclasses

    import numpy as np
    import tensorflow as tf

    from nse_tf.export.convert import configure_int8
    from nse_tf.export.runtimes import tflite_logits
    from nse_tf.train import pruning, qat
    from nse_tf.utils.atomic import atomic_write_bytes, atomic_write_json
    from nse_tf.utils.metrics import top_k_accuracies
    from nse_tf.zoo import registry as zoo

    recipe, data, dense, source = fine_tuning.starting_point(entry)
    model = pruning.prunable(dense, config, steps_per_epoch=len(data.x_train) // config.batch_size)
    qat.fine_tune(model, data, recipe, config, run_dir, log=lambda line: print(line, flush=True), source=source,
                  callbacks=pruning.step_callbacks(), label="pruning")
    stripped = pruning.strip(model)
    calibration = fine_tuning.calibration_images(data, config.num_calibration)
    images = data.x_test.astype(np.float32)
    report: dict = {"entry": entry.name, "config": dataclasses.asdict(config),
                    "kernel_sparsity": pruning.kernel_sparsity(stripped), "test_examples": int(len(data.y_test)),
                    "pruned": {}, "dense": {},
                    "command": fine_tuning.recorded_command("prune.py", sys.argv[1:])}
    for fmt in ("float32", "int8"):
        converter = tf.lite.TFLiteConverter.from_keras_model(stripped)
        if fmt == "int8":
            configure_int8(converter, calibration)
        path = os.path.join(run_dir, f"pruned_{fmt}.tflite")
        atomic_write_bytes(path, converter.convert())
        dense_path = zoo.tflite_path(entry.name, fmt)
        for key, file in (("pruned", path), ("dense", dense_path)):
            report[key][fmt] = {"top1": top_k_accuracies(tflite_logits(file, images), data.y_test)["top1"],
                                "bytes": os.path.getsize(file), "gzip_bytes": gzip_size(file)}
    atomic_write_json(os.path.join(run_dir, "pruning.json"), report)
    return report


def run() -> None:
    """``python tools/prune.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("prune.py"))
