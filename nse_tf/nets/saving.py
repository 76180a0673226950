"""Registering the project's Keras classes, so that ``keras.models.load_model("x.keras")`` finds them.

Keras looks a saved class up by its registered name (``nse_tf>ImageModel``) and imports no module of ours
itself, so the classes must be registered before a file loads. ``import nse_tf`` cannot import Keras for it:
with the TensorFlow backend that imports TensorFlow, which the search's host logic and the JAX path must not
(``tests/test_evolution.py``, ``tests/test_data.py``). So ``import nse_tf`` calls ``register_with_keras()``:
it imports the modules of the classes now if Keras is already imported, else as soon as Keras is.

Keras may first be imported from inside any of our modules, half-imported then; so the modules listed
import only Keras and modules free of it at their top (``tests/test_keras_saving.py`` checks), and each
imports cleanly whichever of them is half-imported (it registers its own classes when it completes).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import threading
from typing import Any

# Every module that defines a class the models of ``create_model`` may hold (all under package "nse_tf").
KERAS_MODULES = ("nse_tf.nets.image_model", "nse_tf.nets.layers", "nse_tf.nets.flip_average")


def import_keras_modules() -> None:
    """Import the modules of the registered classes (their decorators register them)."""
    for module in KERAS_MODULES:
        importlib.import_module(module)


class _LoaderThenRegister(importlib.abc.Loader):
    """Keras's own loader, then ``import_keras_modules`` once Keras is in place."""

    def __init__(self, loader: Any):
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        import_keras_modules()

    def __getattr__(self, name: str) -> Any:  # resources, get_code, ...: as the real loader
        return getattr(self.loader, name)


class _WhenKerasImports(importlib.abc.MetaPathFinder):
    """Finds ``keras`` as the other finders do and wraps its loader; it answers no other name."""

    def __init__(self) -> None:
        self.busy = threading.local()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "keras" or getattr(self.busy, "on", False):
            return None
        self.busy.on = True
        try:
            spec = importlib.util.find_spec("keras")
        finally:
            self.busy.on = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _LoaderThenRegister(spec.loader)
        return spec


def register_with_keras() -> None:
    """Make the project's Keras classes known to Keras now (Keras imported) or when Keras is imported."""
    if "keras" in sys.modules:
        import_keras_modules()
    elif not any(isinstance(finder, _WhenKerasImports) for finder in sys.meta_path):
        sys.meta_path.insert(0, _WhenKerasImports())
