"""Measuring a zoo entry or a training run on the test split: the one function behind tools/evaluate.py
and the top-1 written into zoo metadata, so the two always agree."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from nse_tf.utils.metrics import top_k_accuracies


class EvaluationError(ValueError):
    """The model or the TFLite variant asked for cannot be evaluated; ``flag`` names the CLI flag at fault."""

    def __init__(self, flag: str, message: str):
        super().__init__(message)
        self.flag = flag


QUICK_CHECK_EXAMPLES = 1000


def quick_check_figures(model: Any, int8_path: str, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Top-1 of the Keras model and of the int8 file on the first ``QUICK_CHECK_EXAMPLES`` test images.

    A zoo entry records these beside its whole-split figures so that CI can confirm in seconds that the
    committed files and today's code still give them; ``measure`` on the whole split takes up to a minute
    for a searched network, too long to run for every entry on every change."""
    from nse_tf.export.runtimes import tflite_logits
    from nse_tf.nets.inference import predict_logits

    x, y = images[:QUICK_CHECK_EXAMPLES], labels[:QUICK_CHECK_EXAMPLES]
    return {"examples": int(len(y)), "keras_top1": top_k_accuracies(predict_logits(model, x), y)["top1"],
            "int8_top1": top_k_accuracies(tflite_logits(int8_path, x), y)["top1"]}


def _trained_entry(name: str) -> Any:
    """The zoo entry ``name``, which must have weights to be measured."""
    from nse_tf.zoo import registry as zoo

    entry = zoo.get_entry(name)
    if not entry.has_weights:
        raise EvaluationError("model", f"zoo entry {name} has no weights to evaluate "
                                       f"({entry.metadata.get('weights_note', 'architecture only')})")
    return entry


def quick_check(name: str, check_size: bool = True) -> dict[str, Any]:
    """``quick_check_figures`` of a trained zoo entry, from its committed files (``check_size``: as
    ``registry.load``'s)."""
    from nse_tf.data.arrays import load_arrays
    from nse_tf.zoo import registry as zoo

    entry = _trained_entry(name)
    data = load_arrays(entry.metadata["dataset"], image_size=entry.metadata.get("image_size"))
    return quick_check_figures(zoo.load(name, weights="pretrained", check_size=check_size),
                               zoo.tflite_path(name, "int8"), data.x_test, data.y_test)


def measure(source: str, tflite: str | None = None, dataset: str | None = None,
            data_dir: str | None = None, image_size: int | None = None, *, allow_0_1_pixels: bool = False,
            check_size: bool = True) -> dict:
    """Top-1/top-5 on the whole test split, MACs and params of a zoo entry (its Keras model, or with
    ``tflite`` its ``float32``/``int8`` file under LiteRT) or of a tools/train.py run directory; for a
    zoo entry also whether the top-1 equals its metadata's. The images are read at ``image_size``, by default
    the size the entry or run recorded (where it read them at another than their native one). ``allow_0_1_pixels``:
    npz float pixels in [0, 1] are meant (``load_arrays``). A network beyond the limits of ``nse_tf.space.limits``
    is refused before it is built unless ``check_size`` is False."""
    from nse_tf.data.arrays import DatasetError, load_arrays
    from nse_tf.data.idx import DataFileError, DataNotFoundError
    from nse_tf.nets.counting import count_macs, count_params
    from nse_tf.nets.inference import evaluate_arrays
    from nse_tf.train.run_dir import load_trained_run, read_run_config
    from nse_tf.zoo import registry as zoo

    if zoo.is_entry(source):
        entry = _trained_entry(source)
        model = zoo.load(source, weights="pretrained", check_size=check_size)
        dataset = dataset or entry.metadata["dataset"]
        files = entry.metadata.get("tflite") or {}
        if tflite is not None and tflite not in files:
            raise EvaluationError("tflite", f"zoo entry {source} has no {tflite} file (it has: "
                                            f"{', '.join(sorted(files)) or 'none'})")
        expected = entry.metadata["top1"] if tflite is None else files[tflite]["top1"]
        image_size = image_size or entry.metadata.get("image_size")
    elif os.path.isdir(source):
        if tflite:
            raise EvaluationError("tflite", "needs a zoo entry (a training run has no TFLite files)")
        model, run_dataset = load_trained_run(source, check_size)
        dataset, entry, expected = dataset or run_dataset, None, None
        image_size = image_size or read_run_config(source).get("image_size")
    else:
        raise EvaluationError("model", f"{source!r} is neither a zoo entry ({', '.join(zoo.list_models())}) "
                                       "nor a training run directory")
    try:
        data = load_arrays(dataset, data_dir, image_size, allow_0_1_pixels=allow_0_1_pixels)
    except DataNotFoundError:
        raise  # the IDX files' directory: --data_dir
    except DataFileError as err:  # a damaged IDX file (--data_dir), or an image of a folder dataset
        if not dataset.startswith("folder:"):
            raise
        raise EvaluationError("dataset", str(err)) from None
    except (DatasetError, FileNotFoundError) as err:
        raise EvaluationError("dataset", str(err)) from None
    if not len(data.y_test):
        raise EvaluationError("dataset", f"{dataset} has no test images")
    shape = tuple(int(d) for d in data.x_test.shape[1:])
    if tuple(model.input_shape[1:]) != shape:
        raise EvaluationError("image_size" if image_size else "dataset",
                              f"{source} takes {'x'.join(map(str, model.input_shape[1:]))} images but {dataset} "
                              f"gives {'x'.join(map(str, shape))}")
    report = {"model": source, "dataset": dataset, "examples": int(len(data.y_test)), "macs": count_macs(model),
              "params": count_params(model), "evaluated": f"tflite:{tflite}" if tflite else "keras"}
    if tflite:
        from nse_tf.export.runtimes import tflite_logits

        report.update(top_k_accuracies(tflite_logits(zoo.tflite_path(source, tflite), data.x_test), data.y_test))
    else:
        report.update({k: v for k, v in evaluate_arrays(model, data.x_test, data.y_test).items() if k != "examples"})
    if entry is not None and entry.flip_average:
        report["flip_average"] = True  # the two-pass model: why its MACs are twice its network's
    if entry is not None:
        report["metadata_top1"] = expected
        report["matches_metadata"] = expected == report["top1"]
    return report
