"""Write one zoo entry: ``python tools/make_zoo_entry.py --name=<entry> --train_dir=<run> --command="..."``.

From a finished tools/train.py run: the network JSON, the weights, float32 and int8 TFLite files
(each verified with LiteRT on the whole test split), the test top-1/top-5 of the Keras model as
tools/evaluate.py measures it, a quick check for CI (Keras and int8 top-1 on the first 1000 test
images), MACs, params, LiteRT latency on this CPU, and the sha256 of every file in metadata.json.
From --arch alone (published networks without weights): the network and its metadata. The entry is
staged and then renamed into place, so a crash never leaves half of it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from nse_tf.cli import FlagError, flags_parser  # noqa: E402

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
flags.DEFINE_string("zoo_dir", None, "Zoo folder (default: nse_tf.zoo.zoo_dir()).")
flags.DEFINE_bool("overwrite", False, "Replace an existing entry of that name (its files are deleted).")


def entry_command() -> str:
    """The training command (if any) and this very invocation, so the entry can be rebuilt verbatim."""
    own = "python tools/make_zoo_entry.py " + shlex.join(
        a for a in sys.argv[1:] if not a.startswith(("--zoo_dir", "--command", "--overwrite", "--nooverwrite")))
    return f"{F.command} && {own}" if F.command else own


def preprocessing_note(space) -> dict:
    return {"input": "raw pixel values 0-255 (float32; the int8 TFLite file takes uint8)",
            "inside_model": "Normalization: (x - mean) / std", "mean": list(space.mean), "std": list(space.std),
            "output": "logits"}


def trained_entry(stage: str, train_dir: str) -> dict:
    import json

    import numpy as np

    from nse_tf.cost import count_macs, count_params
    from nse_tf.evaluation import quick_check_figures
    from nse_tf.export import export_model, tflite_latency_ms
    from nse_tf.layers import LEGACY_INITIALIZATION
    from nse_tf.training import (BN_RECALIBRATION_BATCHES, CONFIG_NAME, RESULT_NAME, WEIGHTS_NAME, evaluate_arrays,
                                 load_arrays, load_trained_run, read_history)

    model, dataset = load_trained_run(train_dir)
    if F.flip_average:
        from nse_tf.flip_average import flip_average

        model = flip_average(model)
    with open(os.path.join(train_dir, CONFIG_NAME), encoding="utf-8") as f:
        saved = json.load(f)
    with open(os.path.join(train_dir, RESULT_NAME), encoding="utf-8") as f:
        result = json.load(f)
    shutil.copyfile(os.path.join(train_dir, WEIGHTS_NAME), os.path.join(stage, WEIGHTS_NAME))
    data = load_arrays(dataset)
    metrics = evaluate_arrays(model, data.x_test, data.y_test)
    calibration = data.x_train[np.random.default_rng(0).permutation(len(data.x_train))[:F.num_calibration]]
    exports = export_model(model, os.path.join(stage, ".export"), formats=("float32", "int8"),
                           representative_images=calibration, verify_images=data.x_test,
                           verify_labels=data.y_test, name="model")
    tflite = {}
    for item in exports:
        final = os.path.join(stage, f"{item.format}.tflite")
        os.replace(item.path, final)
        tflite[item.format] = {"size_bytes": item.size_bytes, "top1": item.top1, "keras_top1": item.keras_top1,
                               "max_abs_diff": item.max_abs_diff, "top1_agreement": item.top1_agreement,
                               "input_quantization": item.to_dict()["input_quantization"],
                               "litert_latency_ms": tflite_latency_ms(final, runs=F.latency_runs)}
    shutil.rmtree(os.path.join(stage, ".export"))
    quick = quick_check_figures(model, os.path.join(stage, "int8.tflite"), data.x_test, data.y_test)
    history = read_history(train_dir)
    return {"dataset": dataset, "macs": count_macs(model), "params": count_params(model), "top1": metrics["top1"],
            "top5": metrics["top5"], "test_examples": metrics["examples"], "weights": True,
            **({"flip_average": True} if F.flip_average else {}),
            "training": {"recipe": saved["train"], "epochs_logged": len(history),
                         # runs started before the depthwise fix did not record it
                         "initialization": saved.get("initialization", LEGACY_INITIALIZATION),
                         # train() times the process that finished the run; "processes" times each one
                         "seconds_last_process": result["seconds"],
                         "backend": result["backend"],
                         # where each stretch of epochs ran (backend, device, seconds), as train() recorded it
                         "processes": result.get("processes", []),
                         **({"note": F.training_note} if F.training_note else {}),
                         "weights": ("the EMA of the weights, BN statistics re-estimated for them over "
                                     f"{BN_RECALIBRATION_BATCHES} unaugmented training batches"
                                     if saved["train"].get("ema_momentum") else "the final weights"),
                         "last_epoch": history[-1] if history else None},
            "tflite": tflite, "quick_check": quick}


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"make_zoo_entry.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    from nse_tf import resolve_spec, zoo  # Keras (and TensorFlow) only once the flags are known to be good
    from nse_tf.architecture import NetworkSpec
    from nse_tf.io_utils import atomic_write_json
    from nse_tf.training import CONFIG_NAME, TrainError

    stage = ""
    try:
        if not F.name:
            raise FlagError("name", "is required")
        try:
            zoo.check_entry_name(F.name)
        except zoo.ZooError as err:
            raise FlagError("name", str(err)) from None
        if bool(F.train_dir) == bool(F.arch):
            raise FlagError("train_dir", "give exactly one of --train_dir (trained) or --arch (architecture only)")
        if F.flip_average and not F.train_dir:
            raise FlagError("flip_average", "needs --train_dir: it averages a trained network's two passes")
        root = F.zoo_dir or zoo.zoo_dir()
        final, previous = os.path.join(root, F.name), os.path.join(root, f".previous-{F.name}")
        if os.path.isdir(previous) and not os.path.exists(final):  # a write killed while replacing the entry
            os.replace(previous, final)
        if os.path.exists(final) and not F.overwrite:
            raise FlagError("name", f"zoo entry {F.name} already exists in {root}; pass --overwrite to replace it "
                                    "(its weights and .tflite files are deleted)")
        stage = os.path.join(root, f".staging-{F.name}")
        shutil.rmtree(stage, ignore_errors=True)
        os.makedirs(stage)
        if F.train_dir:
            import json

            config_path = os.path.join(F.train_dir, CONFIG_NAME)
            if not os.path.exists(config_path):
                raise FlagError("train_dir", f"{F.train_dir} is not a tools/train.py run directory")
            with open(config_path, encoding="utf-8") as f:
                spec = NetworkSpec.from_dict(json.load(f)["network"], source=config_path)
            try:
                fields = trained_entry(stage, F.train_dir)
            except TrainError as err:
                raise FlagError("train_dir", str(err)) from None
        else:
            try:
                spec = resolve_spec(F.arch)
            except ValueError as err:
                raise FlagError("arch", str(err)) from None
            from nse_tf.child import build_child
            from nse_tf.cost import count_macs, count_params

            model = build_child(spec)
            fields = {"dataset": "imagenet2012" if spec.space.num_classes == 1000 else None,
                      "macs": count_macs(model), "params": count_params(model), "top1": None, "top5": None,
                      "weights": False, "weights_note": F.weights_note or "architecture only: no trained weights",
                      "tflite": None}
        spec.save(os.path.join(stage, zoo.NETWORK_NAME))
        space = spec.space
        metadata = {"name": F.name, "description": F.description, "architecture": spec.name,
                    "input_shape": [space.input_size, space.input_size, space.input_channels],
                    "num_classes": space.num_classes, "preprocessing": preprocessing_note(space),
                    "command": entry_command(), **fields}
        metadata["files"] = {name: zoo.sha256_file(os.path.join(stage, name)) for name in sorted(os.listdir(stage))}
        atomic_write_json(os.path.join(stage, zoo.METADATA_NAME), metadata)
        shutil.rmtree(previous, ignore_errors=True)
        if os.path.exists(final):
            os.replace(final, previous)
        os.replace(stage, final)
        shutil.rmtree(previous, ignore_errors=True)
    except FlagError as err:
        shutil.rmtree(stage, ignore_errors=True)
        print(f"make_zoo_entry.py: error: {err}", file=sys.stderr)
        return 2
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    print(f"wrote {final}: top-1 {metadata['top1']}, {metadata['macs'] / 1e6:.2f} M MACs, "
          f"{metadata['params']:,} params")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("make_zoo_entry.py"))
