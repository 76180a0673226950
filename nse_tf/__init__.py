"""nse_tf: Neural Search-space Evolution (ICCV 2021) in TensorFlow/Keras."""

from __future__ import annotations

import os
from typing import Any

from nse_tf.architecture import Architecture, ArchitectureError, NetworkSpec
from nse_tf.ops import POOLS, Cost, OpSpec, Pool, get_pool
from nse_tf.published import published_names, published_spec
from nse_tf.space import SPACES, CellSpec, MacroSpace, get_space, make_divisible

__version__ = "0.1.0"


def resolve_spec(arch_or_name: "str | os.PathLike | NetworkSpec", **space_overrides: Any) -> NetworkSpec:
    """A published or zoo name, a network JSON, a search run directory (its ``chosen/best.json``), a
    training run directory (its ``network.json``), or a NetworkSpec, with space fields overridden."""
    from nse_tf import zoo

    if isinstance(arch_or_name, NetworkSpec):
        spec = arch_or_name
    elif str(arch_or_name) in published_names():
        spec = published_spec(str(arch_or_name))
    elif str(arch_or_name) in zoo.list_models():
        spec = zoo.get_entry(str(arch_or_name)).network_spec()
    elif os.path.isdir(os.fspath(arch_or_name)):
        chosen = os.path.join(os.fspath(arch_or_name), "chosen", "best.json")
        trained = os.path.join(os.fspath(arch_or_name), "network.json")
        if not os.path.exists(chosen) and not os.path.exists(trained):
            raise ValueError(f"{arch_or_name} is a directory without chosen/best.json (a finished search run) or "
                             "network.json (a training run)")
        spec = NetworkSpec.load(chosen if os.path.exists(chosen) else trained)
    elif os.path.exists(os.fspath(arch_or_name)):
        spec = NetworkSpec.load(arch_or_name)
    else:
        raise ValueError(f"{arch_or_name!r} is neither a published architecture ({', '.join(published_names())}), "
                         f"a zoo entry ({', '.join(zoo.list_models()) or 'none'}), a search run directory "
                         "nor an existing network JSON file")
    return spec.replace_space(**space_overrides) if space_overrides else spec


def build_model(arch_or_name: "str | os.PathLike | NetworkSpec", include_preprocessing: bool = True,
                **space_overrides: Any) -> Any:
    """Build a child network as a Keras model, e.g. ``build_model("NSENet-27")`` (224x224, 1000 classes)."""
    from nse_tf.child import build_child

    return build_child(resolve_spec(arch_or_name, **space_overrides), include_preprocessing=include_preprocessing)


def count_macs(model: Any) -> int:
    """Multiply-accumulates of one forward pass of a built Keras model (conv and dense layers)."""
    from nse_tf.cost import count_macs as _count

    return _count(model)


def count_params(model: Any) -> int:
    """Trainable parameters of a built Keras model."""
    from nse_tf.cost import count_params as _count

    return _count(model)


__all__ = [
    "Architecture", "ArchitectureError", "CellSpec", "Cost", "MacroSpace", "NetworkSpec", "OpSpec", "POOLS", "Pool",
    "SPACES", "build_model", "count_macs", "count_params", "get_pool", "get_space", "make_divisible",
    "published_names", "published_spec", "resolve_spec",
]
