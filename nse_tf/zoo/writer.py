"""Writing one zoo entry: staged beside its final folder, every file hashed into metadata.json, then renamed
into place, so a crash never leaves half an entry and an entry is replaced only when asked (``overwrite``; a
write killed while replacing one leaves the old files in ``.previous-<name>``, restored by the next write).

A trained entry (from a finished tools/train.py run, trained from scratch or fine-tuned from another entry, on any
dataset the tools read) gets the weights, float32 and int8 TFLite files (each verified with LiteRT on the whole
test split), the test top-1/top-5 of the Keras model as tools/evaluate.py
measures it, a quick check for CI (Keras and int8 top-1 on the first 1000 test images), MACs, params and
LiteRT latency on this CPU. An entry with ``weights_from`` runs another entry's weights (flip averaging, say):
it records their sha256 instead of a second copy.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Callable

from nse_tf.space.architecture import NetworkSpec
from nse_tf.utils.atomic import atomic_write_json, staged
from nse_tf.utils.run_lock import entry_lock_name, run_lock
from nse_tf.zoo import registry


# What an entry records of its run's result.json (older results hold no more than this).
RESULT_FIELDS = {"seconds": (int, float), "backend": str}


def entry_lock(root: str, name: str) -> Any:
    """Zoo entry ``name`` locked for one writer (``utils.run_lock``): two writes of one name would delete each
    other's staging folder."""
    return run_lock(root, entry_lock_name(name), what="--name",
                    subject=f"zoo entry {name} ({os.path.join(root, name)})")


def preprocessing_note(space: Any) -> dict:
    return {"input": "raw pixel values 0-255 (float32; the int8 TFLite file takes uint8)",
            "inside_model": "Normalization: (x - mean) / std", "mean": list(space.mean), "std": list(space.std),
            "output": "logits"}


def export_tflite_files(model: Any, data: Any, stage: str, num_calibration: int, latency_runs: int
                        ) -> tuple[dict, dict]:
    """Write ``float32.tflite`` and ``int8.tflite`` into ``stage`` (int8 calibrated on ``num_calibration`` shuffled
    training images), each verified on the whole test split and timed; their metadata figures per form, and the
    quick check of the Keras model and the int8 file."""
    import numpy as np

    from nse_tf.export.exporter import export_model
    from nse_tf.export.timing import tflite_latency_ms
    from nse_tf.zoo.evaluation import quick_check_figures

    calibration = data.x_train[np.random.default_rng(0).permutation(len(data.x_train))[:num_calibration]]
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
                               "litert_latency_ms": tflite_latency_ms(final, runs=latency_runs)}
    shutil.rmtree(os.path.join(stage, ".export"))
    quick = quick_check_figures(model, os.path.join(stage, "int8.tflite"), data.x_test, data.y_test)
    return tflite, quick


def trained_fields(stage: str, train_dir: str, *, flip_average: bool = False, weights_from: str | None = None,
                   num_calibration: int = 500, latency_runs: int = 200, training_note: str | None = None,
                   data_dir: str | None = None, allow_0_1_pixels: bool = False, check_size: bool = True) -> dict:
    """Metadata fields of a trained entry; its weights and TFLite files are written into ``stage``. The run's
    dataset is read as the run read it (its ``image_size``; ``data_dir`` where its files are on this machine);
    a fine-tuned run's entry records the entry it started from (``training.init_from``); ``allow_0_1_pixels``: the
    run's npz float pixels in [0, 1] are meant, as its training was told."""
    from nse_tf.data.arrays import load_arrays
    from nse_tf.nets.counting import count_macs, count_params
    from nse_tf.nets.inference import evaluate_arrays
    from nse_tf.nets.layers import LEGACY_INITIALIZATION
    from nse_tf.train.config import BN_RECALIBRATION_BATCHES, WEIGHTS_NAME
    from nse_tf.train.run_dir import load_trained_run, read_history, read_result, read_run_config

    model, dataset = load_trained_run(train_dir, check_size)  # check_size=False: --allow_large
    if flip_average:
        from nse_tf.nets.flip_average import flip_average as two_pass

        model = two_pass(model)
    saved = read_run_config(train_dir)
    image_size = saved.get("image_size")
    result = read_result(train_dir, RESULT_FIELDS)
    shared: dict[str, Any] = {}
    if weights_from is None:
        shutil.copyfile(os.path.join(train_dir, WEIGHTS_NAME), os.path.join(stage, WEIGHTS_NAME))
    else:
        source = registry.get_entry(weights_from)
        sha = registry.sha256_file(os.path.join(train_dir, WEIGHTS_NAME))
        if source.config.files.get(registry.WEIGHTS_NAME) != sha:
            raise registry.ZooError(f"weights_from: {weights_from}'s weights are not those of {train_dir}")
        shared = {"weights_from": source.name, "weights_sha256": sha}
    data = load_arrays(dataset, data_dir, image_size, allow_0_1_pixels=allow_0_1_pixels)
    metrics = evaluate_arrays(model, data.x_test, data.y_test)
    tflite, quick = export_tflite_files(model, data, stage, num_calibration, latency_runs)
    history = read_history(train_dir)
    return {"dataset": dataset, **({"image_size": image_size} if image_size else {}), "macs": count_macs(model),
            "params": count_params(model), "top1": metrics["top1"], "top5": metrics["top5"],
            "test_examples": metrics["examples"], "weights": True,
            **({"flip_average": True} if flip_average else {}), **shared,
            "training": {"recipe": saved["train"], "epochs_logged": len(history),
                         # runs started before the depthwise fix did not record it
                         "initialization": saved.get("initialization", LEGACY_INITIALIZATION),
                         # a fine-tuning's starting point: the entry and its weights' sha256, frozen epochs
                         **({"init_from": saved["init_from"]} if saved.get("init_from") else {}),
                         # train() times the process that finished the run; "processes" times each one
                         "seconds_last_process": result["seconds"],
                         "backend": result["backend"],
                         # where each stretch of epochs ran (backend, device, seconds), as train() recorded it
                         "processes": result.get("processes", []),
                         **({"note": training_note} if training_note else {}),
                         "weights": ("the EMA of the weights, BN statistics re-estimated for them over "
                                     f"{BN_RECALIBRATION_BATCHES} unaugmented training batches"
                                     if saved["train"].get("ema_momentum") else "the final weights"),
                         "last_epoch": history[-1] if history else None},
            "tflite": tflite, "quick_check": quick}


def architecture_fields(spec: NetworkSpec, weights_note: str | None = None) -> dict:
    """Metadata fields of an architecture-only entry (a published network without weights)."""
    from nse_tf.nets.child import build_child
    from nse_tf.nets.counting import count_macs, count_params

    model = build_child(spec)
    return {"dataset": "imagenet2012" if spec.space.num_classes == 1000 else None,
            "macs": count_macs(model), "params": count_params(model), "top1": None, "top5": None,
            "weights": False, "weights_note": weights_note or "architecture only: no trained weights", "tflite": None}


def write_entry(root: str, name: str, spec: NetworkSpec, fields: Callable[[str], dict], command: str, *,
                description: str = "", overwrite: bool = False) -> dict:
    """Stage the entry ``name`` under ``root`` (``fields(stage)`` writes its files and gives its metadata
    fields), hash every file, and rename it into place (``utils.atomic.staged``); returns the metadata."""
    registry.check_entry_name(name)
    if name in registry.aliases():
        raise registry.ZooError(f"{name} is an alias of {registry.aliases()[name]} (zoo/aliases.json): write under "
                                "the current name, or remove the alias first")
    with entry_lock(root, name), staged(os.path.join(root, name), overwrite=overwrite) as stage:
        os.makedirs(stage)
        values = fields(stage)
        spec.save(os.path.join(stage, registry.NETWORK_NAME))
        space = spec.space
        metadata = {"name": name, "description": description, "architecture": spec.name,
                    "input_shape": [space.input_size, space.input_size, space.input_channels],
                    "num_classes": space.num_classes, "preprocessing": preprocessing_note(space),
                    "command": command, **values}
        metadata["files"] = {f: registry.sha256_file(os.path.join(stage, f)) for f in sorted(os.listdir(stage))}
        atomic_write_json(os.path.join(stage, registry.METADATA_NAME), metadata)
    return metadata


def reexport_tflite(name: str, command: str, num_calibration: int = 500, latency_runs: int = 200) -> dict:
    """Rewrite a trained entry's ``float32.tflite`` and ``int8.tflite`` from its committed weights with today's
    exporter (``export_tflite_files``, as a new entry gets them), update their figures, quick check and hashes in
    its metadata, and return the figures before and after. ``int8_qat.tflite`` is left as it is. The entry is
    rebuilt in a staged copy and renamed into place, so a killed run leaves the old entry whole."""
    import datetime

    from nse_tf.data.arrays import load_arrays

    entry = registry.get_entry(name)
    if not entry.has_weights or not entry.metadata.get("tflite"):
        raise registry.ZooError(f"zoo entry {name} has no weights and .tflite files to re-export")
    model = registry.load(name, weights="pretrained")
    data = load_arrays(entry.metadata["dataset"], image_size=entry.metadata.get("image_size"))
    metadata = entry.metadata
    before = {fmt: metadata["tflite"][fmt]["top1"] for fmt in ("float32", "int8")}
    exported = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"), "command": command}
    with entry_lock(os.path.dirname(entry.path), entry.name), staged(entry.path, overwrite=True) as stage:
        shutil.copytree(entry.path, stage)
        tflite, metadata["quick_check"] = export_tflite_files(model, data, stage, num_calibration, latency_runs)
        for fmt, figures in tflite.items():
            metadata["tflite"][fmt].update(figures, exported=exported)
            metadata["files"][f"{fmt}.tflite"] = registry.sha256_file(os.path.join(stage, f"{fmt}.tflite"))
        atomic_write_json(os.path.join(stage, registry.METADATA_NAME), metadata)
    return {"before": before, "after": {fmt: metadata["tflite"][fmt]["top1"] for fmt in ("float32", "int8")}}
