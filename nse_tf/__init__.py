"""nse_tf: Neural Search-space Evolution (ICCV 2021) in TensorFlow/Keras."""

from __future__ import annotations

import os
from typing import Any

from nse_tf.nets.saving import register_with_keras
from nse_tf.space.architecture import Architecture, ArchitectureError, NetworkSpec
from nse_tf.space.macro import SPACES, CellSpec, MacroSpace, get_space, make_divisible
from nse_tf.space.ops import POOLS, Cost, OpSpec, Pool, get_pool
from nse_tf.space.published import published_names, published_spec

__version__ = "0.1.0"

register_with_keras()  # .keras files of these models load after `import nse_tf` (without importing Keras now)


def resolve_spec(arch_or_name: "str | os.PathLike | NetworkSpec", *, check_size: bool = True,
                 **space_overrides: Any) -> NetworkSpec:
    """A published or zoo name, a network JSON, a search run directory (its ``chosen/best.json``), a
    training run directory (its ``network.json``), or a NetworkSpec, with space fields overridden. A network
    file, or overrides, beyond the limits of ``nse_tf.space.limits`` are refused (``SizeLimitError``, a
    ValueError) unless ``check_size`` is False."""
    from nse_tf.zoo import registry as zoo

    if not isinstance(arch_or_name, (str, os.PathLike, NetworkSpec)):
        raise TypeError(f"arch_or_name must be a model name, a path or a NetworkSpec, got {arch_or_name!r}")
    if not isinstance(check_size, bool):
        raise TypeError(f"check_size must be True or False, got {check_size!r}")
    if isinstance(arch_or_name, NetworkSpec):
        spec = arch_or_name
    elif str(arch_or_name) in published_names():
        spec = published_spec(str(arch_or_name))
    elif zoo.is_entry(str(arch_or_name)):
        spec = zoo.get_entry(str(arch_or_name)).network_spec(check_size=check_size)
    elif os.path.isdir(os.fspath(arch_or_name)):
        chosen = os.path.join(os.fspath(arch_or_name), "chosen", "best.json")
        trained = os.path.join(os.fspath(arch_or_name), "network.json")
        if not os.path.exists(chosen) and not os.path.exists(trained):
            raise ValueError(f"{arch_or_name} is a directory without chosen/best.json (a finished search run) or "
                             "network.json (a training run)")
        spec = NetworkSpec.load(chosen if os.path.exists(chosen) else trained, check_size=check_size)
    elif os.path.exists(os.fspath(arch_or_name)):
        spec = NetworkSpec.load(arch_or_name, check_size=check_size)
    else:
        raise ValueError(f"{arch_or_name!r} is neither a published architecture ({', '.join(published_names())}), "
                         f"a zoo entry ({', '.join(zoo.list_models()) or 'none'}), a search run directory "
                         "nor an existing network JSON file")
    if not space_overrides:
        return spec
    spec = spec.replace_space(**space_overrides)
    if check_size:  # the overridden network (input_size=10**7), before anything is built
        spec.check_size()
    return spec


def build_model(arch_or_name: "str | os.PathLike | NetworkSpec", include_preprocessing: bool = True, *,
                check_size: bool = True, **space_overrides: Any) -> Any:
    """Build a child network as a Keras model, e.g. ``build_model("NSENet-27")`` (224x224, 1000 classes);
    ``check_size=False`` builds one beyond the limits of ``nse_tf.space.limits``."""
    spec = resolve_spec(arch_or_name, check_size=check_size, **space_overrides)  # checked before Keras is imported
    from nse_tf.nets.child import build_child

    return build_child(spec, include_preprocessing=include_preprocessing)


def create_model(name: "str | os.PathLike | NetworkSpec", pretrained: bool = False, num_classes: int | None = None,
                 input_shape: tuple[int, int, int] | None = None, include_top: bool = True,
                 pooling: str | None = None, *, check_size: bool = True) -> Any:
    """A Keras 3 model that takes raw 0-255 pixels and returns logits, timm-style: ``name`` is a zoo entry
    (``mobilenetv2-style-fmnist``, with a tag ``mobilenetv2-style-fmnist.e60``, an old alias, or a recipe
    of seeds ``nse-fmnist-latency``: its lowest seed), a published architecture (``NSENet-27``), a network JSON, a
    search or training run directory, or a NetworkSpec. ``pretrained`` loads a zoo entry's trained weights
    (and its flip averaging, where its config says so).

    For another task, as timm's ``create_model(pretrained=True, num_classes=N, in_chans=C)``: ``num_classes``
    loads every weight but the classifier, which starts as a fresh model's; ``input_shape=(H, H, C)`` with
    another (square) size loads every weight, and with another channel count adapts the stem's kernel as timm's
    ``adapt_input_conv``: 1 -> 3 channels repeats it and divides by 3 (1 -> C: by C), 3 -> 1 sums it over the
    input channels. Normalisation is the model's first layer: its mean/std follow, a single-channel mean/std
    repeated for every channel, 3 -> 1 their average. ``include_top=False`` returns the backbone (the head's
    1x1 conv and activation, no classifier), with ``pooling`` None (feature map), ``"avg"`` or ``"max"``, as
    Keras Applications do. Arguments are checked by type: ``num_classes=2.7`` is refused, not cut. A network beyond the limits
    of ``nse_tf.space.limits`` is refused before anything is built unless ``check_size`` is False."""
    from nse_tf.nets.child import build_child
    from nse_tf.nets.transfer import backbone, check_head, check_num_classes, retarget
    from nse_tf.zoo import registry

    if not isinstance(name, (str, os.PathLike, NetworkSpec)):
        raise TypeError(f"name must be a model name, a path or a NetworkSpec, got {name!r}")
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be True or False, got {pretrained!r}")
    if not isinstance(check_size, bool):
        raise TypeError(f"check_size must be True or False, got {check_size!r}")
    num_classes = check_num_classes(num_classes)
    check_head(include_top, pooling, num_classes)
    if isinstance(name, str) and registry.is_entry(name):
        return registry.load(name, weights="pretrained" if pretrained else None, num_classes=num_classes,
                             input_shape=input_shape, include_top=include_top, pooling=pooling, transfer=True,
                             check_size=check_size)
    if pretrained:
        raise registry.ZooError(f"{name!r} is not a zoo entry, so it has no pretrained weights; entries with weights: "
                                f"{', '.join(list_models(pretrained=True)) or 'none'}")
    spec = retarget(resolve_spec(name, check_size=check_size), num_classes, input_shape)
    if check_size:  # another input size or class count, before anything is built
        spec.check_size()
    model = build_child(spec)
    return model if include_top else backbone(model, pooling)


def list_models(pattern: str = "*", pretrained: bool = False, include_seeds: bool = False) -> list[str]:
    """Names ``create_model`` takes, matching the shell-style ``pattern``: the zoo's entries and the published
    architectures; with ``pretrained``, only entries with trained weights. A comparison's seeds
    (``nse-fmnist-latency-s0``, ``-s1``) are listed once, by their recipe's name (``nse-fmnist-latency``: the
    lowest seed); ``include_seeds`` lists each seed too (all load by name either way)."""
    import fnmatch

    from nse_tf.zoo import registry

    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a shell-style string such as '*fmnist*', got {pattern!r}")
    for argument, value in (("pretrained", pretrained), ("include_seeds", include_seeds)):
        if not isinstance(value, bool):
            raise TypeError(f"{argument} must be True or False, got {value!r}")
    names = set(registry.listed_models(include_seeds=include_seeds))
    if pretrained:
        names = {n for n in names if registry.get_entry(n).has_weights}
    else:
        names |= set(published_names())
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def run_search(flagfile: str | None = None, run_dir: str | None = None, **settings: Any) -> Any:
    """Run (or resume) an NSE search from Python, as ``tools/search.py`` does: ``flagfile`` and ``settings`` are
    its flags. Returns a ``SearchResult``: ``best`` (the chosen ``NetworkSpec``), ``front`` (``(NetworkSpec, cost,
    held-out top-1)``, cheapest first), ``unit``, ``report`` and ``verification`` (``--verify_top``)::

        result = nse_tf.run_search("configs/fashion_mnist_quick.flags", run_dir="runs/quick")
        model = nse_tf.create_model(result.best)
    """
    from nse_tf.cli.search import search

    return search(flagfile, run_dir, **settings)


def count_macs(model: Any) -> int:
    """Multiply-accumulates of one forward pass of a built Keras model (conv and dense layers)."""
    from nse_tf.nets.counting import count_macs as _count

    return _count(model)


def count_params(model: Any) -> int:
    """Trainable parameters of a built Keras model."""
    from nse_tf.nets.counting import count_params as _count

    return _count(model)


__all__ = [
    "Architecture", "ArchitectureError", "CellSpec", "Cost", "MacroSpace", "NetworkSpec", "OpSpec", "POOLS", "Pool",
    "SPACES", "build_model", "count_macs", "count_params", "create_model", "get_pool", "get_space", "list_models",
    "make_divisible",
    "published_names", "published_spec", "resolve_spec", "run_search",
]
