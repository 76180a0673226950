"""The Keras 3 model class of child networks: a functional model that refuses a wrongly shaped batch.

Keras runs a functional model on an input of the wrong rank after a warning: an unbatched 28x28x1 image
is read as 28 images of 28x1, and the traced predict function is then relaxed to an unknown shape, so
every later correct call fails too. Checking before Keras sees the input keeps the model usable.
"""

from __future__ import annotations

from typing import Any

import keras


def check_batch_shape(expected: tuple, x: Any, model_name: str) -> None:
    """A ValueError naming the expected batch shape when ``x`` (array or tensor) cannot be a batch of it."""
    shape = getattr(x, "shape", None)
    if shape is None:  # a dataset, a generator, a dict: Keras checks those itself
        return
    shape = tuple(None if d is None else int(d) for d in shape)
    matches = len(shape) == len(expected) and all(e is None or d is None or d == e
                                                  for d, e in zip(shape[1:], expected[1:]))
    if not matches:
        want = "x".join("?" if e is None else str(e) for e in expected[1:])
        hint = " (one image: add a batch axis, image[None])" if shape == tuple(expected[1:]) else ""
        raise ValueError(f"model {model_name} takes a batch of {want} images, shape (batch, "
                         f"{', '.join(str(e) for e in expected[1:])}); got shape {shape}{hint}")


@keras.saving.register_keras_serializable(package="nse_tf")
class ImageModel(keras.Model):
    """``keras.Model(inputs, outputs)`` whose call, predict and evaluate check the batch's shape first.

    A functional model: its config is the graph's (Keras's ``Functional.get_config``/``from_config``), registered
    so that a ``.keras`` file of it loads back as an ``ImageModel`` (``nse_tf.nets.saving``)."""

    def _check(self, x: Any) -> None:
        if isinstance(x, (list, tuple)) and len(self.inputs) == 1 and len(x) == 1:
            x = x[0]
        check_batch_shape(tuple(self.inputs[0].shape), x, self.name)

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        self._check(inputs)
        return super().__call__(inputs, *args, **kwargs)

    def predict(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        self._check(x)
        return super().predict(x, *args, **kwargs)

    def predict_on_batch(self, x: Any) -> Any:
        self._check(x)
        return super().predict_on_batch(x)

    def evaluate(self, x: Any = None, *args: Any, **kwargs: Any) -> Any:
        if x is not None:
            self._check(x)
        return super().evaluate(x, *args, **kwargs)
