"""A table's piece, or a whole network, as a ``.tflite`` of the table's form: what the latency table times.

The converter setting is the project's one setting of each form (``nse_tf.export.convert.configure``), the
exported files' own: ``float32``, or ``int8`` with full integer quantization (int8 tensors between operations,
the stem taking uint8 pixels and the head giving float logits, like the exported files). Large depthwise
kernels are tiled as the zoo's files run them (``nse_tf.export.tiling``). What is table-specific is the
calibration: random inputs (pixels for the stem, unit-scale activations elsewhere), since the timing does not
depend on the scales.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator

from nse_tf.cost.latency_table import TFLITE_FORMATS
from nse_tf.cost.pieces import TablePiece


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The converter prints each model's signature and logs at INFO: noise, hundreds of times per table."""
    from absl import logging as absl_logging

    verbosity = absl_logging.get_verbosity()
    with open(os.devnull, "w", encoding="utf-8") as devnull, contextlib.redirect_stdout(devnull):
        absl_logging.set_verbosity(absl_logging.WARNING)
        try:
            yield
        finally:
            absl_logging.set_verbosity(verbosity)


def _random_calibration(model: Any, pixels_in: bool) -> Callable[[], Iterator[list[Any]]]:
    """Eight random inputs of the model's shapes (a network's free batch dimension taken as 1): pixels in 0-255
    for a model that takes pixels, standard normal activations otherwise."""
    import numpy as np

    rng = np.random.default_rng(0)
    shapes = [tuple(1 if d is None else int(d) for d in x.shape) for x in model.inputs]  # a network: batch None

    def representative() -> Iterator[list[Any]]:
        for _ in range(8):
            yield [(rng.uniform(0, 255, shape) if pixels_in else rng.normal(size=shape)).astype(np.float32)
                   for shape in shapes]

    return representative


def _converter(model: Any, tflite_format: str, pixels_in: bool = False, logits_out: bool = False,
               tile: bool = True) -> Any:
    """The TFLite converter of one measured piece in the table's form (``export.convert.configure``), int8
    calibrated on random inputs. ``tile``: large depthwise kernels in the form the zoo's files run them
    (``export.tiling``)."""
    import tensorflow as tf

    from nse_tf.export.convert import configure
    from nse_tf.export.tiling import tile_large_depthwise

    if tflite_format not in TFLITE_FORMATS:
        raise ValueError(f"tflite_format must be one of {', '.join(TFLITE_FORMATS)}, got {tflite_format!r}")
    if tile:
        model = tile_large_depthwise(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    configure(converter, tflite_format,
              _random_calibration(model, pixels_in) if tflite_format == "int8" else None,
              pixels_in=pixels_in, logits_out=logits_out)
    return converter


def convert_piece(model: Any, piece: TablePiece, tflite_format: str) -> bytes:
    """The piece's .tflite, in the table's form (see ``_converter``)."""
    with _quiet():
        return _converter(model, tflite_format, piece.pixels_in, piece.logits_out).convert()


def convert_piece_model(model: Any, tflite_format: str, tile: bool = True) -> bytes:
    """Any Keras model's .tflite in the table's form for a piece inside a network (int8 in and out for int8);
    ``tile=False`` keeps large depthwise kernels whole, to measure what tiling gives."""
    with _quiet():
        return _converter(model, tflite_format, tile=tile).convert()


def convert_network(model: Any, tflite_format: str, tile: bool = True) -> bytes:
    """A whole child network's .tflite in the table's form (uint8 pixels in and float logits out for int8, as the
    zoo's files): what a table's prediction is checked against."""
    with _quiet():
        return _converter(model, tflite_format, pixels_in=True, logits_out=True, tile=tile).convert()
